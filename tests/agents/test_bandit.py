"""The trained agent improves on a multimodal behaviour policy and matches the exp(beta Q)-tilted target."""

import numpy as np
import pytest
import torch

from qipo_agents import QIPOFlow

from .conftest import AGENTS, bandit_reward, make_bandit, tilted_positive_mass

BETA = 3.0
BANDIT_CONFIG = dict(
    beta=BETA,
    reward_scaling="none",
    gamma=0.0,
    behavior_steps=2500,
    critic_steps=600,
    # one support set for the whole refinement: its target is exactly mu(a|s) exp(beta Q(s, a)) / Z
    policy_steps=1500,
    renew_interval=10_000,
    n_support_actions=32,
    include_dataset_action=False,
    behavior_batch_size=256,
    critic_batch_size=256,
    policy_batch_size=512,
    behavior_learning_rate=2e-3,
    policy_learning_rate=1e-3,
    policy_tau=0.05,
    critic_type="expectile",
    expectile=0.5,
    policy_kwargs=dict(hidden_dims=(64, 64), architecture="mlp", embed_dim=32, critic_hidden_dims=(64, 64)),
    seed=0,
    device="cpu",
)


@pytest.fixture(
    scope="module",
    params=[(name, precision) for precision in ("fp32", "bf16-mixed") for name in sorted(AGENTS)],
    ids="-".join,
)
def trained(request):
    """Each agent at each training precision (bf16-mixed: bfloat16 matrix products in the steps)."""
    name, precision = request.param
    return AGENTS[name]("MlpPolicy", make_bandit(), **BANDIT_CONFIG, precision=precision).learn()


def test_agent_beats_the_behaviour_policy(trained):
    rng = np.random.default_rng(1)
    states = rng.uniform(-1, 1, size=(2000, 1)).astype(np.float32)
    behaviour = make_bandit(2000, seed=2)
    actions, _ = trained.predict(states)
    agent_reward = bandit_reward(states, actions).mean()
    behaviour_reward = bandit_reward(behaviour["observations"], behaviour["actions"]).mean()
    # exact tilted policy at beta=3 earns ~0.13; the behaviour policy earns 0 in expectation
    assert agent_reward > behaviour_reward + 0.08, (agent_reward, behaviour_reward)


@pytest.mark.parametrize("state", [-0.6, -0.2, 0.3, 0.7])
def test_action_distribution_matches_the_tilted_target(trained, state):
    actions, _ = trained.predict(np.full((3000, 1), state, dtype=np.float32))
    positive = float((actions[:, 0] > 0).mean())
    assert positive == pytest.approx(tilted_positive_mass(state, BETA), abs=0.08)
    # the policy stays on the behaviour's two modes (no out-of-distribution actions): 99.7% of
    # behaviour actions lie within 0.3 of a mode, a Gaussian fit to both modes puts ~40% there
    near_a_mode = np.abs(np.abs(actions[:, 0]) - 0.5) < 0.3
    assert near_a_mode.mean() > 0.85


def trust_region_positive_mass(state: float, beta: float, floor: float) -> float:
    """Positive-mode mass of the tilt at ``beta`` capped by the trust region: for two equally likely
    modes tilted to masses ``p, 1 - p`` the Kish fraction is ``1 / (2 p² + 2 (1 - p)²)``, so a floor
    ``rho`` caps ``p`` at ``(1 + sqrt(1 / rho - 1)) / 2``."""
    cap = (1.0 + np.sqrt(1.0 / floor - 1.0)) / 2.0
    exact = tilted_positive_mass(state, beta)
    return float(np.clip(exact, 1.0 - cap, cap))


@pytest.fixture(scope="module")
def trust_region_trained():
    return QIPOFlow("MlpPolicy", make_bandit(), **{**BANDIT_CONFIG, "min_effective_support": 0.8}).learn()


@pytest.mark.parametrize("state", [-0.7, -0.2, 0.3, 0.7])
def test_trust_region_caps_the_tilt_where_the_critic_is_sure(trust_region_trained, state):
    # floor 0.8 caps a mode's mass at 0.75: |s| = 0.7 would reach 0.89 at beta = 3, |s| <= 0.3 stays exact
    actions, _ = trust_region_trained.predict(np.full((3000, 1), state, dtype=np.float32))
    positive = float((actions[:, 0] > 0).mean())
    assert positive == pytest.approx(trust_region_positive_mass(state, BETA, 0.8), abs=0.08)


@pytest.fixture(scope="module")
def guidance_conditioned():
    return QIPOFlow("MlpPolicy", make_bandit(), **{**BANDIT_CONFIG, "guidance_max": BETA}).learn()


@pytest.mark.parametrize("scale", [0.0, 1.5, 3.0])
def test_guidance_scale_b_acts_with_the_b_tilted_behaviour_policy(guidance_conditioned, scale):
    # guidance_scale = 0 is the behaviour policy (both modes 0.5), b tilts it by exp(b Q)
    for state in (-0.7, 0.7):
        actions, _ = guidance_conditioned.predict(np.full((3000, 1), state, dtype=np.float32), guidance_scale=scale)
        positive = float((actions[:, 0] > 0).mean())
        assert positive == pytest.approx(tilted_positive_mass(state, scale), abs=0.08), (state, scale)


@pytest.fixture(scope="module")
def three_renewals():
    # beta = 1, three support renewals over the refinement: each one tilts the current policy again
    config = {**BANDIT_CONFIG, "beta": 1.0, "policy_steps": 3000, "renew_interval": 1000}
    return QIPOFlow("MlpPolicy", make_bandit(), **config).learn()


def test_renewals_compound_the_tilt(three_renewals):
    """QIPO's iteration: renewal l draws support from the policy fitted to tilt l - 1, so after three
    renewals at beta the policy approaches mu exp(3 beta Q) / Z, not the one-shot mu exp(beta Q) / Z."""
    for state in (-0.7, -0.3, 0.3, 0.7):
        actions, _ = three_renewals.predict(np.full((3000, 1), state, dtype=np.float32))
        positive = float((actions[:, 0] > 0).mean())
        compounded, one_shot = tilted_positive_mass(state, 3.0), tilted_positive_mass(state, 1.0)
        assert positive == pytest.approx(compounded, abs=0.1), state
        assert abs(positive - compounded) < abs(positive - one_shot), state


def test_a_layer_norm_critic_learns_the_bandits_q_and_the_agent_beats_the_behaviour_policy():
    config = {**BANDIT_CONFIG, "policy_kwargs": {**BANDIT_CONFIG["policy_kwargs"], "critic_layer_norm": True}}
    agent = QIPOFlow("MlpPolicy", make_bandit(), **config).learn()
    assert agent.policy.critic.norms is not None
    states = np.linspace(-0.9, 0.9, 7, dtype=np.float32)[:, None]
    q = {
        m: agent.policy.critic.min_q(torch.as_tensor(states), torch.full_like(torch.as_tensor(states), m))
        .detach()
        .numpy()
        for m in (-0.5, 0.5)
    }
    # Q = s a: the gap between the two modes is s (0.5 s - (-0.5 s)); no larger error than 0.2 anywhere
    np.testing.assert_allclose(q[0.5] - q[-0.5], states[:, 0], atol=0.2)
    test_agent_beats_the_behaviour_policy(agent)
