"""learn(): phase schedule, seeding, logging and callbacks."""

import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from qipo_agents import QIPODiffusion
from qipo_agents.errors import DatasetError
from qipo_agents.qipo.schedule import PhaseSchedule
from qipo_agents.qipo.support import SamplerConfig
from qipo_agents.zoo.config import ALGOS, PROFILES, ZooFile

from .conftest import TINY, make_bandit, stop_at


def count_sampled_actions(monkeypatch, agent) -> dict[int, int]:
    """Actions ``agent`` samples (solver runs), by the schedule position of the step that draws them."""
    sampled: dict[int, int] = {}
    sample = SamplerConfig.sample

    def counting_sample(self, network, observations, noise, guidance=None):
        position = agent._schedule_position
        sampled[position] = sampled.get(position, 0) + observations.shape[0]
        return sample(self, network, observations, noise, guidance)

    monkeypatch.setattr(SamplerConfig, "sample", counting_sample)
    return sampled


class PhaseRecorder(BaseCallback):
    """Records the phase each gradient step trained in."""

    def __init__(self):
        super().__init__()
        self.phases: list[str] = []

    def _on_step(self) -> bool:
        self.phases.append(self.model.current_phase)
        return True


@pytest.mark.parametrize("critic_type", ["in_support_softmax", "expectile"])
def test_same_seed_gives_the_same_agent_bit_for_bit(agent_class, bandit_data, critic_type):
    a, b = (
        agent_class("MlpPolicy", bandit_data, reward_scaling="none", critic_type=critic_type, **TINY).learn()
        for _ in range(2)
    )
    for (name, x), (_, y) in zip(a.policy.state_dict().items(), b.policy.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    for name, optimizer in a.policy.optimizers().items():
        states = optimizer.state_dict()["state"], b.policy.optimizers()[name].state_dict()["state"]
        assert states[0].keys() == states[1].keys()
        for index, entry in states[0].items():
            for key, value in entry.items():
                assert torch.equal(value, states[1][index][key]), (name, index, key)
    obs = np.zeros((4, 1))
    np.testing.assert_array_equal(a.predict(obs)[0], b.predict(obs)[0])


def test_total_timesteps_split_across_phases_in_proportion(agent_class, bandit_data):
    seen = PhaseRecorder()
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    agent.learn(total_timesteps=70, callback=seen)
    assert agent.schedule == PhaseSchedule(30, 20, 20)  # 60:40:40 of 70
    assert seen.phases == ["behavior"] * 30 + ["critic"] * 20 + ["policy"] * 20


def test_schedule_scaling_keeps_the_total():
    schedule = PhaseSchedule(600_000, 1_000_000, 100_000).scaled_to(1_000_000)
    assert schedule.total == 1_000_000
    assert schedule.phase_at(0) == "behavior" and schedule.phase_at(999_999) == "policy"


def test_logger_records_sb3_keys_and_tensorboard(agent_class, bandit_data, tmp_path):
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", tensorboard_log=str(tmp_path / "tb"), **TINY)
    agent.learn(log_interval=20)
    assert list((tmp_path / "tb").rglob("events.out.tfevents*")), "no TensorBoard event file written"
    assert agent.num_timesteps == 140


def test_training_logs_every_phase(agent_class, bandit_data, tmp_path):
    from stable_baselines3.common.logger import configure

    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(log_interval=20)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in (
        "train/behavior_loss",
        "train/critic_loss",
        "train/q_mean",
        "train/policy_loss",
        "train/weight_max",
        "train/effective_support",
        "train/beta_mean",
        "time/phase",
        "time/total_timesteps",
        "time/fps",
        "time/phase_seconds",
    ):
        assert key in header, key


def test_dataset_with_nan_is_refused(agent_class, bandit_data):
    data = {k: v.copy() for k, v in bandit_data.items()}
    data["rewards"][5] = np.nan
    with pytest.raises(DatasetError, match="rewards"):
        agent_class("MlpPolicy", data, **TINY)


def test_empty_dataset_is_refused(agent_class, bandit_data):
    data = {k: v[:0] for k, v in bandit_data.items()}
    with pytest.raises(DatasetError, match="no transitions"):
        agent_class("MlpPolicy", data, **TINY)


def test_unknown_policy_and_bad_hyperparameters(agent_class, bandit_data):
    with pytest.raises(ValueError, match="MlpPolicy"):
        agent_class("CnnPolicy", bandit_data)
    with pytest.raises(ValueError, match="critic_type"):
        agent_class("MlpPolicy", bandit_data, critic_type="cql")
    with pytest.raises(ValueError, match="unknown solver"):
        agent_class("MlpPolicy", bandit_data, solver="heun")


def test_progress_bar_counts_gradient_steps(agent_class, bandit_data, capsys):
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    agent.learn(total_timesteps=30, progress_bar=True)
    assert "30/30" in capsys.readouterr().err


def test_renew_interval_scales_with_the_refinement_phase(agent_class, bandit_data):
    # renews every 20 of 40 policy steps; actor_ema lags 1 / policy_tau = 10 steps behind the actor
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **{**TINY, "policy_tau": 0.1})
    agent.learn(total_timesteps=70)  # 20 refinement steps
    assert agent.scheduled_renew_interval == 10
    assert agent._phase.n_renewals == 2  # as many renewals as the configured schedule has


def test_scaling_brings_renewals_no_closer_than_the_policy_average_lags(agent_class, bandit_data):
    # policy_tau 0.005: actor_ema lags 200 steps, more than the configured 20, which then stays
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    agent.learn(total_timesteps=70)  # 20 refinement steps
    assert agent.scheduled_renew_interval == 20 and agent._phase.n_renewals == 1
    defaults = agent_class("MlpPolicy", None)  # renew_interval 10000 of 100000 policy steps, policy_tau 0.005
    defaults.schedule = PhaseSchedule(600_000, 1_000_000, 100_000).scaled_to(600)  # 37 refinement steps
    assert defaults.scheduled_renew_interval == 200
    defaults.schedule = PhaseSchedule(600_000, 1_000_000, 100_000).scaled_to(170_000)  # 10000 refinement steps
    assert defaults.scheduled_renew_interval == 1000  # ten renewals, as configured


def test_a_short_run_with_the_default_schedule_samples_in_proportion_to_its_steps(monkeypatch):
    """The constructor's schedule (600k : 1M : 100k steps, a renewal every 10k, policy batches of 4096
    pairs) squeezed into 600 steps: the critic's support draw and the renewals sample no more than
    the minibatches of those few steps can use, not M actions for each of the dataset's states.
    Small networks and a 2-step solver keep the test quick; they change no count."""
    n_transitions = 100_000
    small_networks = dict(hidden_dims=(32, 32), architecture="mlp", embed_dim=16, critic_hidden_dims=(32, 32))
    agent = QIPODiffusion(
        "MlpPolicy",
        make_bandit(n_transitions),
        n_sampling_steps=2,
        policy_kwargs=small_networks,
        seed=0,
        device="cpu",
    )
    sampled = count_sampled_actions(monkeypatch, agent)
    agent.learn(total_timesteps=600)
    assert agent.schedule == PhaseSchedule(211, 352, 37)
    m, k = agent.n_support_actions, agent.n_support_actions + 1  # the dataset action joins each group
    # the critic's minibatches read 352 x 256 transitions: their next states, not all 100k, get M actions
    critic_transitions = 352 * agent.critic_batch_size
    assert critic_transitions < n_transitions
    # one renewal, at the refinement's start: 37 steps are fewer than actor_ema's lag of 200, and its
    # states give as many pairs as 37 minibatches of 4096 train on
    renewal_states = math.ceil(37 * agent.policy_batch_size / k)
    assert sampled == {211: critic_transitions * m, 211 + 352: renewal_states * m}
    assert agent._phase.n_renewals == 1 and agent._phase.support.state_indices.shape == (renewal_states,)


def test_a_run_of_the_configured_length_draws_the_configured_support(agent_class, bandit_data, monkeypatch):
    """TINY's renewals draw 4000 states x 5 pairs for 20 steps x 64 pairs, more than a shortened run
    would: at the configured length they still draw every state, as configured, and the critic the
    support of every transition."""
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    sampled = count_sampled_actions(monkeypatch, agent)
    agent.learn()
    every_state = len(bandit_data["observations"]) * agent.n_support_actions
    assert sampled == {60: every_state, 100: every_state, 120: every_state}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_zoo_recipe_draws_the_support_it_is_configured_to(algo, profile):
    """The zoo runs each recipe at its configured length: its renewals keep their interval and size
    (the CPU recipe's 10000 states, the GPU profile's every state) and the in-support critic draws
    for every transition, so the seeded results documented for them reproduce."""
    for task, config in ZooFile.load(algo).resolve_all(profile).items():
        agent = config.agent_class("MlpPolicy", None, **config.hyperparams)
        agent._setup_learn(config.n_timesteps, reset_num_timesteps=True)
        assert agent.scheduled_renew_interval == agent.renew_interval, task
        assert agent.support_states_per_renewal == agent.n_support_states, task
        assert agent.critic_support_transitions is None, task


def test_refinement_trains_on_raw_samples_and_scores_the_executed_actions(agent_class, bandit_data):
    """Support actions stay as sampled (training on clipped ones would pile the policy's mass onto
    the bounds a little more at each renewal); their Q-values are those of the clipped actions."""
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    agent.learn()
    support = agent._phase.support
    assert (support.actions.abs() > 1).any(), "a barely trained model samples past the bounds"
    n_states, k, action_dim = support.actions.shape
    executed = support.actions.clamp(-1.0, 1.0).reshape(-1, action_dim)
    observations = agent.data.observations[support.state_indices].repeat_interleave(k, dim=0)
    with torch.inference_mode():
        expected = agent.policy.critic.min_q(observations, executed).view(n_states, k)
    torch.testing.assert_close(support.q_values, expected)


def test_critic_ensemble_of_four_trains_saves_and_acts_on_its_minimum(agent_class, bandit_data, tmp_path):
    policy_kwargs = dict(TINY["policy_kwargs"], n_critics=4)
    kwargs = dict(TINY, policy_kwargs=policy_kwargs, best_of_n=3)
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", critic_type="expectile", **kwargs)
    agent.learn()
    critic = agent.policy.critic
    assert critic.n_critics == 4 and all(len(layer.weight) == len(layer.bias) == 4 for layer in critic.layers)
    first_layer = critic.layers[0].weight
    assert not torch.equal(first_layer[0], first_layer[3]), "members start from different initialisations"
    obs = torch.as_tensor(bandit_data["observations"][:50])
    actions = torch.as_tensor(bandit_data["actions"][:50])
    with torch.inference_mode():
        q = critic(obs, actions)
        assert q.shape == (4, 50)
        torch.testing.assert_close(critic.min_q(obs, actions), q.min(dim=0).values)
    loaded = agent_class.load(agent.save(tmp_path / "ensemble"), device="cpu")
    assert loaded.policy.critic.n_critics == 4
    np.testing.assert_array_equal(
        loaded.predict(bandit_data["observations"][:20], deterministic=True)[0],
        agent.predict(bandit_data["observations"][:20], deterministic=True)[0],
    )


def test_critic_ensemble_needs_a_member(agent_class, bandit_data):
    with pytest.raises(ValueError, match="n_critics must be >= 1"):
        agent_class("MlpPolicy", bandit_data, **dict(TINY, policy_kwargs=dict(TINY["policy_kwargs"], n_critics=0)))


def test_a_second_learn_continues_the_refinement(agent_class, bandit_data):
    seen = PhaseRecorder()
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY).learn()
    refined = {k: v.clone() for k, v in agent.policy.actor.state_dict().items()}
    agent.learn(total_timesteps=25, callback=seen)  # reset_num_timesteps=True: only the counter restarts
    assert seen.phases == ["policy"] * 25 and agent.num_timesteps == 25
    moved = [not torch.equal(refined[k], v) for k, v in agent.policy.actor.state_dict().items()]
    assert any(moved), "the second learn() did not train the refined actor"


def test_min_effective_support_is_a_fraction(agent_class, bandit_data):
    with pytest.raises(ValueError, match=r"min_effective_support: must be <= 1, got 1.5 \(trust region: the fraction"):
        agent_class("MlpPolicy", bandit_data, min_effective_support=1.5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"behavior_batch_size": 0}, "behavior_batch_size: must be >= 1, got 0"),
        ({"gamma": 1.5}, "gamma: must be <= 1, got 1.5"),
        ({"critic_tau": 0.0}, "critic_tau: must be > 0, got 0.0"),
        ({"beta": -1.0}, "beta: must be >= 0, got -1.0"),
        ({"critic_learning_rate": -1e-3}, "critic_learning_rate: must be >= 0"),
        ({"expectile": 1.0}, r"expectile: must be < 1, got 1.0 \(IQL expectile of the expectile critic, in \(0, 1\)\)"),
    ],
)
def test_out_of_range_hyperparameters_are_refused_before_training(agent_class, bandit_data, bad, message):
    with pytest.raises(ValueError, match=message):
        agent_class("MlpPolicy", bandit_data, **bad)


def test_trust_region_keeps_the_effective_support_floor(agent_class, bandit_data, tmp_path):
    from stable_baselines3.common.logger import configure

    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", min_effective_support=0.6, beta=50.0, **TINY)
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(log_interval=20)
    rows = [line.split(",") for line in (tmp_path / "progress.csv").read_text().splitlines()]
    header, last = rows[0], rows[-1]
    k = TINY["n_support_actions"] + 1  # the dataset action joins each group
    assert float(last[header.index("train/effective_support")]) >= 0.6 * k - 1e-3
    assert float(last[header.index("train/beta_mean")]) < 50.0


def _behavior_distance_to_the_data(agent, data) -> float:
    """1-d Wasserstein distance between the behaviour model's actions (one per dataset state, fixed
    noise) and the dataset's actions."""
    noise = torch.randn(len(data["actions"]), 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        actions = agent.sampler.sample(agent.policy.actor_ema, agent.data.observations, noise)[:, 0].numpy()
    return float(np.abs(np.sort(actions) - np.sort(data["actions"][:, 0])).mean())


def test_behavior_during_critic_keeps_fitting_the_behaviour_model_in_the_same_steps(agent_class, bandit_data, tmp_path):
    from stable_baselines3.common.logger import configure

    # a warm-up of 50 steps, a critic phase of 400, no refinement
    schedule = dict(
        behavior_steps=50, critic_steps=400, policy_steps=0, n_sampling_steps=8, behavior_learning_rate=3e-3
    )
    settings = dict(reward_scaling="none", **{**TINY, **schedule})
    at_warm_up_end = agent_class("MlpPolicy", bandit_data, **settings).learn(callback=stop_at(50))
    alone = agent_class("MlpPolicy", bandit_data, **settings).learn()
    alongside = agent_class("MlpPolicy", bandit_data, **settings, behavior_during_critic=True)
    alongside.set_logger(configure(str(tmp_path), ["csv"]))
    alongside.learn(log_interval=50)
    assert alone.num_timesteps == alongside.num_timesteps == 450
    # alone, the critic phase leaves the behaviour model as the warm-up left it (the two modes at
    # +-0.5 not yet separated); alongside, its 400 more warm-up steps bring it close to the data
    for (name, a), (_, b) in zip(at_warm_up_end.policy.state_dict().items(), alone.policy.state_dict().items()):
        if name.startswith(("actor.", "actor_ema.")):
            assert torch.equal(a, b), name
    distance_alone = _behavior_distance_to_the_data(alone, bandit_data)
    assert distance_alone > 0.15
    assert _behavior_distance_to_the_data(alongside, bandit_data) < 0.6 * distance_alone
    rows = [row.split(",") for row in (tmp_path / "progress.csv").read_text().splitlines()]
    header, critic_rows = rows[0], [row for row in rows[1:] if row[rows[0].index("time/phase")] == "1"]
    assert critic_rows and all(row[header.index("train/behavior_loss")] for row in critic_rows)
    assert all(row[header.index("train/critic_loss")] for row in critic_rows)


def test_behavior_during_critic_resumes_mid_critic_exactly(agent_class, bandit_data, tmp_path):
    settings = dict(reward_scaling="none", **TINY, behavior_during_critic=True)
    uninterrupted = agent_class("MlpPolicy", bandit_data, **settings).learn()
    first = agent_class("MlpPolicy", bandit_data, **settings)
    first.learn(callback=stop_at(80))
    resumed = agent_class.load(first.save(tmp_path / "checkpoint"), device="cpu", dataset=bandit_data)
    resumed.learn(reset_num_timesteps=False)
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
