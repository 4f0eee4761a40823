"""predict(): shapes, determinism, the mean action, guidance scale, best-of-N and clear errors on bad input."""

import numpy as np
import pytest

from qipo_agents.errors import SpaceMismatchError

from .conftest import TINY

#: a budget that fits the behaviour model of :func:`_gaussian_policy_data` closely
GAUSSIAN_FIT = {
    **TINY,
    "behavior_steps": 1500,
    "behavior_learning_rate": 2e-3,
    "policy_tau": 0.05,
    "n_sampling_steps": 8,
}


def _gaussian_policy_data(n: int = 4000) -> dict[str, np.ndarray]:
    """One-step episodes of a Gaussian behaviour policy ``a ~ N(0.3 s, 0.3^2)``, ``s ~ U[-1, 1]``, no reward."""
    rng = np.random.default_rng(0)
    states = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    actions = np.clip(0.3 * states + 0.3 * rng.standard_normal((n, 1)), -1, 1).astype(np.float32)
    return {
        "observations": states,
        "actions": actions,
        "rewards": np.zeros(n, np.float32),
        "next_observations": states,
        "terminations": np.ones(n, dtype=bool),
        "truncations": np.zeros(n, dtype=bool),
    }


def test_single_and_batched_observations(tiny_agent):
    action, state = tiny_agent.predict(np.array([0.3], dtype=np.float32))
    assert action.shape == (1,) and state is None
    actions, _ = tiny_agent.predict(np.zeros((5, 1)))
    assert actions.shape == (5, 1) and actions.dtype == np.float32
    assert tiny_agent.action_space.contains(action)


def test_deterministic_gives_the_same_action_for_the_same_observation(tiny_agent):
    obs = np.array([[0.3], [-0.7], [0.3]], dtype=np.float32)
    first, _ = tiny_agent.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, tiny_agent.predict(obs, deterministic=True)[0])
    # independent of the position in the batch (up to float32 rounding of batched matmuls)
    second, _ = tiny_agent.predict(obs[::-1], deterministic=True)
    np.testing.assert_allclose(first, second[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first[0], first[2], rtol=1e-5, atol=1e-6)
    single, _ = tiny_agent.predict(obs[1], deterministic=True)
    np.testing.assert_allclose(single, first[1], rtol=1e-6, atol=1e-6)


def test_stochastic_actions_vary(tiny_agent):
    actions, _ = tiny_agent.predict(np.zeros((64, 1)), deterministic=False)
    assert actions.std() > 1e-3


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2)), np.zeros((2, 1, 1))])
def test_wrong_observation_shape_names_the_shapes(tiny_agent, bad):
    with pytest.raises(SpaceMismatchError, match=r"expects \(1,\)"):
        tiny_agent.predict(bad)


def test_non_numeric_and_nan_observations_are_refused(tiny_agent):
    with pytest.raises(SpaceMismatchError, match="numeric"):
        tiny_agent.predict(np.array(["a"]))
    with pytest.raises(ValueError, match="NaN"):
        tiny_agent.predict(np.array([np.nan]))


def test_guidance_scale_needs_a_guidance_conditioned_agent(tiny_agent):
    with pytest.raises(ValueError, match="guidance_max"):
        tiny_agent.predict(np.zeros(1), guidance_scale=1.0)


def test_guidance_scale_is_chosen_at_predict_time(agent_class, bandit_data):
    """One beta-conditioned model (paper, Appendix F.2) tilts more towards high Q at higher beta."""
    config = {
        **TINY,
        "behavior_steps": 600,
        "critic_steps": 200,
        "policy_steps": 600,
        "renew_interval": 10_000,
        "n_support_actions": 16,
        "n_sampling_steps": 10,
        "behavior_learning_rate": 2e-3,
        "policy_learning_rate": 1e-3,
        "policy_tau": 0.05,
        "gamma": 0.0,
        "critic_type": "expectile",
        "expectile": 0.5,
    }
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", guidance_max=6.0, beta=6.0, **config).learn()
    states = np.full((2000, 1), 0.7, dtype=np.float32)
    positive = {g: (agent.predict(states, guidance_scale=g)[0] > 0).mean() for g in (0.0, 6.0)}
    assert positive[6.0] > positive[0.0] + 0.1, positive
    with pytest.raises(ValueError, match=r"\[0, 6.0\]"):
        agent.predict(np.zeros(1), guidance_scale=7.0)


def test_best_of_n_picks_the_highest_q_candidate(agent_class, bandit_data):
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", best_of_n=8, **TINY).learn()
    actions, _ = agent.predict(np.zeros((3, 1)), deterministic=True)
    assert actions.shape == (3, 1)
    np.testing.assert_array_equal(actions, agent.predict(np.zeros((3, 1)), deterministic=True)[0])


def test_diffusion_agent_acts_with_qgpos_solver(bandit_data):
    from qipo_agents import QIPODiffusion

    agent = QIPODiffusion("MlpPolicy", bandit_data, **{**TINY, "solver": "dpm_solver_pp_2s", "n_sampling_steps": 5})
    actions, _ = agent.learn().predict(np.zeros((5, 1), np.float32))
    assert actions.shape == (5, 1) and np.isfinite(actions).all()


def test_acting_temperature_scales_the_sampled_spread(agent_class):
    """On a Gaussian policy ``a ~ N(0.3 s, 0.3^2)`` both paths map noise to actions linearly, so the
    temperature scales the sampled standard deviation; temperature 0 is the zero-noise action."""
    data, config = _gaussian_policy_data(), GAUSSIAN_FIT
    agent = agent_class("MlpPolicy", data, reward_scaling="none", **config).learn()
    state = np.full((4000, 1), 0.5, dtype=np.float32)
    spread = {}
    for temperature in (1.0, 0.5):
        agent.acting_temperature = temperature
        spread[temperature] = agent.predict(state)[0].std()
    assert 0.22 < spread[1.0] < 0.38, spread
    assert 0.4 < spread[0.5] / spread[1.0] < 0.6, spread
    agent.acting_temperature = 0.0
    np.testing.assert_array_equal(agent.predict(state[:3])[0], agent.predict(state[:3], deterministic=True)[0])
    with pytest.raises(ValueError, match="acting_temperature: must be >= 0, got -0.5"):
        agent_class("MlpPolicy", data, acting_temperature=-0.5, **TINY)


def test_the_mean_action_is_the_average_of_the_policys_actions(agent_class, tmp_path):
    """``deterministic_action="mean"``: ``predict(deterministic=True)`` acts with the policy's mean
    action (here about ``0.3 s`` for ``a ~ N(0.3 s, 0.3^2)``), the same on every call, where the
    zero-noise action is the policy's own central one; both refuse what they cannot combine with."""
    data, config = _gaussian_policy_data(), GAUSSIAN_FIT
    agent = agent_class(
        "MlpPolicy", data, reward_scaling="none", deterministic_action="mean", mean_action_samples=256, **config
    ).learn()
    state = np.full((4000, 1), 0.5, dtype=np.float32)
    sampled_mean = agent.predict(state)[0].mean()
    mean_action = agent.predict(state[:2], deterministic=True)[0]
    np.testing.assert_array_equal(mean_action, agent.predict(state[:2], deterministic=True)[0])
    assert abs(mean_action[0, 0] - sampled_mean) < 0.04, (mean_action, sampled_mean)
    assert abs(mean_action[0, 0] - 0.15) < 0.08, mean_action
    with pytest.raises(ValueError, match="deterministic_action='mean' averages"):
        agent.best_of_n = 4
    with pytest.raises(ValueError, match="mean of 256 sampled actions"):
        agent.export(tmp_path / "policy.onnx")
    with pytest.raises(ValueError, match="deterministic_action"):
        agent_class("MlpPolicy", data, deterministic_action="median", **TINY)
