"""Fixtures for agent tests: a contextual bandit with a known reward, and tiny-budget agents."""

from __future__ import annotations

import numpy as np
import pytest

from qipo_agents import QIPODiffusion, QIPOFlow

AGENTS = {"flow": QIPOFlow, "diffusion": QIPODiffusion}
BANDIT_MODES = 0.5  # behaviour actions are +-0.5 (one mode each), std BANDIT_STD
BANDIT_STD = 0.1


def bandit_reward(states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``r(s, a) = s * a``: in state ``s > 0`` positive actions pay, in ``s < 0`` negative ones."""
    return states[:, 0] * actions[:, 0]


def make_bandit(n: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """One-step episodes: ``s ~ U[-1, 1]``, behaviour ``a ~ 0.5 N(-0.5, 0.1²) + 0.5 N(0.5, 0.1²)``,
    reward ``s a``; every transition terminates, so ``Q(s, a) = r(s, a)``."""
    rng = np.random.default_rng(seed)
    states = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    modes = rng.choice([-BANDIT_MODES, BANDIT_MODES], size=(n, 1))
    actions = np.clip(modes + BANDIT_STD * rng.standard_normal((n, 1)), -1, 1).astype(np.float32)
    return {
        "observations": states,
        "actions": actions,
        "rewards": bandit_reward(states, actions).astype(np.float32),
        "next_observations": states,
        "terminations": np.ones(n, dtype=bool),
        "truncations": np.zeros(n, dtype=bool),
    }


def tilted_positive_mass(state: float, beta: float) -> float:
    """Exact mass of the positive mode under ``mu(a|s) exp(beta Q(s, a))`` with ``Q = s a``:
    each Gaussian mode ``N(m, std²)`` is reweighted by ``exp(beta s m + (beta s std)² / 2)``,
    the second factor being equal for both modes."""
    return 1.0 / (1.0 + np.exp(-2 * beta * state * BANDIT_MODES))


def stop_at(step: int):
    """A ``learn`` callback that stops training once ``step`` gradient steps have run."""
    return lambda local_vars, _globals: local_vars["self"].num_timesteps < step


TINY = dict(
    behavior_steps=60,
    critic_steps=40,
    policy_steps=40,
    behavior_batch_size=64,
    critic_batch_size=64,
    policy_batch_size=64,
    n_support_actions=4,
    renew_interval=20,
    n_sampling_steps=2,
    policy_kwargs=dict(hidden_dims=(32, 32), architecture="mlp", embed_dim=16, critic_hidden_dims=(32, 32)),
    seed=0,
    device="cpu",
)


@pytest.fixture(scope="module", params=sorted(AGENTS))
def agent_class(request):
    return AGENTS[request.param]


@pytest.fixture(scope="session")
def bandit_data():
    return make_bandit()


@pytest.fixture(scope="module")
def tiny_agent(agent_class, bandit_data):
    """A trained-for-a-few-steps agent on the bandit (all three phases ran)."""
    agent = agent_class("MlpPolicy", bandit_data, reward_scaling="none", **TINY)
    return agent.learn()
