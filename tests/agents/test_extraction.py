"""Q-guided extraction: the one-step policy climbs the critic, as far from its teacher as
``extraction_alpha`` lets it, and is saved, resumed and exported like the plain copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qipo_agents import QIPOFlow
from qipo_agents.qipo.distillation import TRUST_CHECK_STATES, guard_trusts, promise_concentration, trust_check_gains

from .conftest import TINY, bandit_reward, make_bandit, stop_at
from .test_bandit import BANDIT_CONFIG
from .test_export import _run

EXTRACTION_STEPS = 600
STATES = np.random.default_rng(1).uniform(-1, 1, size=(3000, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def post_critic(tmp_path_factory):
    """The bandit agent of test_bandit, saved at the end of its critic phase (no refinement): the
    behaviour model has both modes at +-0.5 whatever the state, ``Q(s, a) = s a``. (Both agents share
    the extraction phase; the diffusion agent's is resumed and checked below.)"""
    config = {**BANDIT_CONFIG, "policy_steps": 0}
    agent = QIPOFlow("MlpPolicy", make_bandit(), **config).learn()
    return type(agent), agent.save(tmp_path_factory.mktemp("post_critic") / "agent")


def extract(post_critic, extraction_alpha):
    """The saved agent, distilled for EXTRACTION_STEPS from its behaviour model (``policy_steps=0``)."""
    agent_class, path = post_critic
    agent = agent_class.load(
        path, device="cpu", dataset=make_bandit(), distill_steps=EXTRACTION_STEPS, extraction_alpha=extraction_alpha
    )
    return agent.learn(reset_num_timesteps=False)


@pytest.fixture(scope="module")
def extracted(post_critic):
    """Acted rewards (= Q) and the share of actions within 0.3 of a behaviour mode, per alpha."""
    results = {}
    for alpha in (None, 10.0, 1.0, 1e4):
        agent = extract(post_critic, alpha)
        assert agent.acts_in_one_step
        actions, _ = agent.predict(STATES)
        near_a_mode = float((np.abs(np.abs(actions[:, 0]) - 0.5) < 0.3).mean())
        results[alpha] = (float(bandit_reward(STATES, actions).mean()), near_a_mode)
    return results


def test_extraction_raises_q_while_staying_in_the_behaviours_support(extracted):
    plain_q, plain_support = extracted[None]
    q, support = extracted[10.0]
    # the behaviour model earns 0 in expectation; each behaviour action lies within 0.3 of a mode
    assert abs(plain_q) < 0.03 and plain_support > 0.9
    assert q > plain_q + 0.03, (q, plain_q)
    assert support > 0.9


def test_alpha_trades_q_for_closeness_to_the_teacher(extracted):
    """A smaller alpha trusts the critic more: more Q, further out of the support; a large alpha
    gives the plain copy back."""
    assert extracted[1.0][0] > extracted[10.0][0] + 0.1
    assert extracted[1.0][1] < extracted[10.0][1] - 0.1
    assert extracted[1e4][0] == pytest.approx(extracted[None][0], abs=0.01)
    assert extracted[1e4][1] == pytest.approx(extracted[None][1], abs=0.01)


def test_the_extracted_policy_saves_loads_and_exports(post_critic, tmp_path):
    agent = extract(post_critic, 1.0)
    states = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    expected, _ = agent.predict(states, deterministic=True)
    loaded = type(agent).load(agent.save(tmp_path / "agent"), device="cpu")
    assert loaded.extraction_alpha == 1.0 and loaded.acts_in_one_step
    np.testing.assert_array_equal(loaded.predict(states, deterministic=True)[0], expected)
    for fmt in ("onnx", "torchscript"):
        path = loaded.export(tmp_path / f"policy.{fmt}", format=fmt)
        exported = _run(path, fmt, states, np.zeros((len(states), 1), np.float32))
        np.testing.assert_allclose(exported, expected, atol=1e-5)


@pytest.mark.parametrize("extraction_critic", ["frozen", "policy"])
def test_resume_mid_extraction_equals_the_uninterrupted_run(agent_class, bandit_data, extraction_critic, tmp_path):
    # the extraction runs steps 140-169, after TINY's three phases
    config = {**TINY, "distill_steps": 30, "extraction_alpha": 1.0, "extraction_critic": extraction_critic}

    uninterrupted = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **config).learn()
    first = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **config)
    first.learn(callback=stop_at(155))
    assert first.current_phase == "distill"
    resumed = agent_class.load(first.save(tmp_path / "checkpoint"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_the_critic_stays_as_its_phase_left_it(bandit_data):
    config = {**TINY, "distill_steps": 20, "extraction_alpha": 0.5}
    agent = QIPOFlow("MlpPolicy", bandit_data, reward_scaling="none", **config)
    agent.learn(callback=lambda local_vars, _globals: local_vars["self"].num_timesteps < 100)  # the critic's end
    before = {k: v.clone() for k, v in agent.policy.critic.state_dict().items()}
    agent.learn(reset_num_timesteps=False)
    assert agent.acts_in_one_step
    for key, value in agent.policy.critic.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def make_two_step_bandit(n: int = 3000, seed: int = 0) -> dict[str, np.ndarray]:
    """Two-step episodes: observe ``(s, 0)``, act (reward 0), observe ``(s, 1)``, act and earn
    ``s a`` (the bandit's reward), then terminate; behaviour actions as the bandit's (+-0.5) at both
    steps. Under the behaviour policy the first step is worth ``gamma * 0``; under a policy that acts
    toward ``sign(s)`` at the second step it is worth ``gamma`` times that policy's reward."""
    second = make_bandit(n, seed)
    states = second["observations"]
    first_actions = make_bandit(n, seed + 1)["actions"]
    first_obs = np.concatenate([states, np.zeros_like(states)], axis=1)
    second_obs = np.concatenate([states, np.ones_like(states)], axis=1)
    return {
        "observations": np.concatenate([first_obs, second_obs]),
        "actions": np.concatenate([first_actions, second["actions"]]),
        "rewards": np.concatenate([np.zeros(n, np.float32), second["rewards"]]),
        "next_observations": np.concatenate([second_obs, second_obs]),
        "terminations": np.concatenate([np.zeros(n, bool), np.ones(n, bool)]),
        "truncations": np.zeros(2 * n, dtype=bool),
    }


GAMMA = 0.9


@pytest.fixture(scope="module")
def two_step_post_critic(tmp_path_factory):
    """An agent on the two-step bandit saved at the end of its critic phase (expectile 0.5: the
    critic values the behaviour policy, so the first step is worth about 0)."""
    config = {**BANDIT_CONFIG, "gamma": GAMMA, "behavior_steps": 1000, "critic_steps": 800, "policy_steps": 0}
    config["critic_tau"] = 0.02  # target networks that follow the policy critic within the extraction
    agent = QIPOFlow("MlpPolicy", make_two_step_bandit(), **config).learn()
    return agent.save(tmp_path_factory.mktemp("two_step") / "agent")


@pytest.mark.parametrize("extraction_critic", ["frozen", "policy"])
def test_a_policy_critic_values_what_the_extracted_policy_does(two_step_post_critic, extraction_critic):
    """The extraction acts toward ``sign(s)`` at the second step. ``extraction_critic="policy"``
    re-evaluates the first step under the extracted policy: its Q there approaches ``gamma`` times
    the extracted policy's reward; ``"frozen"`` keeps the behaviour's 0 (and its weights)."""
    agent = QIPOFlow.load(
        two_step_post_critic,
        device="cpu",
        dataset=make_two_step_bandit(),
        distill_steps=600,
        extraction_alpha=1.0,
        extraction_critic=extraction_critic,
    )
    critic_before = {k: v.clone() for k, v in agent.policy.critic.state_dict().items()}
    agent.learn(reset_num_timesteps=False)
    assert agent.acts_with_extraction

    states = np.random.default_rng(2).uniform(-1, 1, size=(2000, 1)).astype(np.float32)
    second_step = np.concatenate([states, np.ones_like(states)], axis=1)
    first_step = np.concatenate([states, np.zeros_like(states)], axis=1)
    extracted_reward = float(bandit_reward(states, agent.predict(second_step)[0]).mean())
    assert extracted_reward > 0.1  # the extraction acts toward sign(s)
    with torch.no_grad():
        observations = torch.as_tensor(first_step)  # the bandit's config keeps raw observations
        data_actions = torch.as_tensor(make_bandit(len(states), seed=3)["actions"])
        first_step_q = float(agent.policy.critic.min_q(observations, data_actions).mean())
    if extraction_critic == "policy":
        assert first_step_q == pytest.approx(GAMMA * extracted_reward, rel=0.3), (first_step_q, extracted_reward)
    else:
        assert abs(first_step_q) < 0.2 * GAMMA * extracted_reward, (first_step_q, extracted_reward)
        for key, value in agent.policy.critic.state_dict().items():
            torch.testing.assert_close(value, critic_before[key], rtol=0, atol=0)


def test_a_post_critic_save_takes_new_lengths_for_the_phases_ahead(bandit_data, tmp_path):
    agent = QIPOFlow("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    agent.learn(callback=lambda local_vars, _globals: local_vars["self"].num_timesteps < 100)  # the critic's end
    loaded = QIPOFlow.load(
        agent.save(tmp_path / "agent"), device="cpu", dataset=bandit_data, policy_steps=0, distill_steps=25
    )
    assert (loaded.schedule.policy_steps, loaded.schedule.distill_steps) == (0, 25)
    loaded.learn(reset_num_timesteps=False)
    assert loaded.num_timesteps == 125 and loaded.acts_in_one_step


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"distill_steps": 10, "extraction_alpha": 0.0}, "extraction_alpha: must be > 0"),
        ({"distill_steps": 10, "extraction_alpha": -1.0}, "extraction_alpha: must be > 0"),
        ({"distill_steps": 0, "extraction_alpha": 1.0}, "only distill_steps > 0 trains"),
        ({"distill_steps": 10, "extraction_trust_limit": 0.1}, "extraction_trust_limit .* needs extraction_alpha"),
        ({"distill_steps": 10, "extraction_alpha": 1.0, "extraction_trust_limit": 0.0}, "must be > 0"),
        ({"distill_steps": 10, "extraction_critic": "policy"}, "extraction_critic='policy' .* needs extraction_alpha"),
        ({"distill_steps": 10, "extraction_alpha": 1.0, "extraction_critic": "td3"}, "'frozen' or 'policy'"),
        (
            {"distill_steps": 10, "extraction_alpha": 1.0, "extraction_trust_concentration": 20.0},
            "extraction_trust_concentration .* needs extraction_trust_limit",
        ),
        (
            {
                "distill_steps": 10,
                "extraction_alpha": 1.0,
                "extraction_trust_limit": 0.1,
                "extraction_trust_concentration": 0.5,
            },
            "extraction_trust_concentration: must be >= 1",
        ),
    ],
)
def test_a_bad_extraction_setting_is_a_clear_error(bandit_data, settings, message):
    with pytest.raises(ValueError, match=message):
        QIPOFlow("MlpPolicy", bandit_data, **{**TINY, **settings})


def _one_step_parameters(agent) -> dict[str, torch.Tensor]:
    return {k: v for k, v in agent.policy.state_dict().items() if k.startswith("one_step.")}


def test_a_promise_spread_over_the_states_is_trusted_and_one_carried_by_a_few_is_not():
    """The guard's two cases at the same mean promise (0.03 against a limit of 0.015): every state
    promising a little (a dataset with room to improve), or a tenth of them promising much (a
    critic extrapolating there)."""
    spread = torch.full((1000,), 0.03)
    concentrated = torch.cat([torch.full((900,), 0.0003), torch.full((100,), 0.2973)])
    assert float(spread.mean()) == pytest.approx(float(concentrated.mean()), rel=1e-5)
    assert float(promise_concentration(spread)) == pytest.approx(1.0)
    assert float(promise_concentration(concentrated)) == pytest.approx(100.0, rel=1e-3)
    assert float(promise_concentration(torch.cat([torch.zeros(600), torch.ones(400)]))) == float("inf")
    for gains in (spread, concentrated):  # the limit alone distrusts both
        assert not guard_trusts(gains.mean(), promise_concentration(gains), 0.015, None)
    assert guard_trusts(spread.mean(), promise_concentration(spread), 0.015, 20.0)
    assert not guard_trusts(concentrated.mean(), promise_concentration(concentrated), 0.015, 20.0)
    # a promise within the limit is trusted however it is spread
    assert guard_trusts(concentrated.mean() / 10, promise_concentration(concentrated), 0.015, 20.0)


@pytest.mark.parametrize(
    ("trust_limit", "trust_concentration", "trusted"),
    [(1e-4, None, False), (100.0, None, True), (1e-4, 1e3, True), (1e-4, 1.0, False)],
)
def test_the_trust_check_extracts_or_falls_back_to_the_plain_copy(
    post_critic, trust_limit, trust_concentration, trusted
):
    """On the bandit the critic (Q = s a) promises a clear gain at alpha = 1, spread over the states
    (every state but those near s = 0 gains by moving toward a = sign(s)): a limit below that promise
    gives the plain copy exactly, a limit above it the extraction exactly; with the limit below the
    promise, a loose concentration bound trusts the spread promise and the tightest one (1: the mean
    gain may not exceed the median) does not."""
    agent_class, path = post_critic

    def distil(**settings):
        return agent_class.load(
            path, device="cpu", dataset=make_bandit(), distill_steps=EXTRACTION_STEPS // 4, **settings
        ).learn(reset_num_timesteps=False)

    guarded = distil(
        extraction_alpha=1.0, extraction_trust_limit=trust_limit, extraction_trust_concentration=trust_concentration
    )
    expected = distil(extraction_alpha=1.0) if trusted else distil()
    for name, value in _one_step_parameters(expected).items():
        torch.testing.assert_close(_one_step_parameters(guarded)[name], value, rtol=0, atol=0, msg=name)
    promise = float(guarded._phase.promised_q_gain)
    assert promise > 0.05 and guarded._phase.critic_trusted is trusted
    assert 1.0 < float(guarded._phase.promise_concentration) < 3.0  # spread over the states
    # the trained agent repeats its own check (the distillation leaves the critic and teacher alone)
    gains = trust_check_gains(
        guarded.policy, guarded.data, guarded.sampler, guarded.beta, 1.0, guarded.action_low, guarded.action_high
    )
    assert gains.shape == (TRUST_CHECK_STATES,) and float(gains.mean()) == pytest.approx(promise, rel=1e-5)


def test_resume_mid_extraction_keeps_the_trust_checks_outcome(bandit_data, tmp_path):
    config = {**TINY, "distill_steps": 30, "extraction_alpha": 1.0, "extraction_trust_limit": 1e-4}

    uninterrupted = QIPOFlow("MlpPolicy", bandit_data, reward_scaling="none", **config).learn()
    first = QIPOFlow("MlpPolicy", bandit_data, reward_scaling="none", **config)
    first.learn(callback=stop_at(155))
    resumed = QIPOFlow.load(first.save(tmp_path / "checkpoint"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    assert resumed._phase.critic_trusted is uninterrupted._phase.critic_trusted is False
    assert float(resumed._phase.promise_concentration) == float(uninterrupted._phase.promise_concentration) > 1.0
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize(("trust_limit", "trusted"), [(1e-4, False), (100.0, True)])
def test_a_trusted_extraction_acts_deterministically_when_asked_and_a_plain_copy_keeps_sampling(
    post_critic, trust_limit, trusted, tmp_path
):
    """``extraction_acting="deterministic"``: ``predict`` gives the zero-noise action for a trusted
    extraction, whatever ``deterministic`` says; the guard's plain copy still samples. Both survive
    a save and load, and ``extraction_acting="sampled"`` samples the extraction again."""
    agent_class, path = post_critic
    agent = agent_class.load(
        path,
        device="cpu",
        dataset=make_bandit(),
        distill_steps=EXTRACTION_STEPS // 4,
        extraction_alpha=1.0,
        extraction_trust_limit=trust_limit,
        extraction_acting="deterministic",
    ).learn(reset_num_timesteps=False)
    loaded = agent_class.load(agent.save(tmp_path / "agent"), device="cpu")
    states = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    for acting in (agent, loaded):
        assert acting.acts_with_extraction is trusted and acting.acts_deterministically() is trusted
        central, _ = acting.predict(states, deterministic=True)
        first, _ = acting.predict(states)
        second, _ = acting.predict(states)
        if trusted:
            np.testing.assert_array_equal(first, central)
            np.testing.assert_array_equal(second, central)
        else:
            assert np.abs(first - second).mean() > 0.1  # two sampled draws of a two-mode policy
    loaded.extraction_acting = "sampled"
    assert not loaded.acts_deterministically()
    assert np.abs(loaded.predict(states)[0] - loaded.predict(states)[0]).mean() > 0.01


def test_the_behaviour_model_samples_whatever_extraction_acting_says(bandit_data):
    agent = QIPOFlow(
        "MlpPolicy", bandit_data, reward_scaling="none", **{**TINY, "distill_steps": 20, "extraction_alpha": 1.0}
    )
    agent.extraction_acting = "deterministic"
    agent.learn(callback=lambda local_vars, _globals: local_vars["self"].num_timesteps < 100)  # the critic's end
    states = np.zeros((64, 1), np.float32)
    assert not agent.acts_with_extraction
    assert np.abs(agent.predict(states)[0] - agent.predict(states)[0]).mean() > 0.01
