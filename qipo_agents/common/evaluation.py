"""Evaluation in Gymnasium environments with D4RL-normalised scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from qipo_agents.errors import SpaceMismatchError

#: D4RL's random / expert returns per environment family (D4RL ``infos.py``), used when a
#: dataset carries no ``ref_min_score`` / ``ref_max_score`` of its own.
D4RL_REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "antmaze": (0.0, 1.0),
}


def reference_scores(metadata: dict[str, Any]) -> tuple[float, float] | None:
    """``(random, expert)`` returns for normalisation: the dataset's own, else D4RL's for its env family."""
    if metadata.get("ref_min_score") is not None and metadata.get("ref_max_score") is not None:
        return float(metadata["ref_min_score"]), float(metadata["ref_max_score"])
    env_id = (metadata.get("env_id") or "").lower()
    for family, scores in D4RL_REFERENCE_SCORES.items():
        if env_id.startswith(family):
            return scores
    return None


def normalized_score(returns: np.ndarray | float, ref_min: float, ref_max: float) -> np.ndarray | float:
    """D4RL's normalised score ``100 (R - R_random) / (R_expert - R_random)``."""
    return 100.0 * (np.asarray(returns) - ref_min) / (ref_max - ref_min)


@dataclass(frozen=True)
class EvaluationResult:
    """Episode returns (environment units) and, when references are known, normalised scores."""

    returns: list[float]
    lengths: list[int]
    mean_return: float
    std_return: float
    normalized_mean: float | None
    normalized_std: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        text = f"return {self.mean_return:.1f} ± {self.std_return:.1f} over {len(self.returns)} episodes"
        if self.normalized_mean is not None:
            text += f", D4RL-normalised score {self.normalized_mean:.1f} ± {self.normalized_std:.1f}"
        return text


def check_env_spaces(env: gym.Env, observation_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
    """Raise :class:`SpaceMismatchError` when ``env`` does not match the agent's spaces."""
    env_obs, env_act = env.observation_space, env.action_space
    if getattr(env_obs, "shape", None) != observation_space.shape or getattr(env_act, "shape", None) != (
        action_space.shape
    ):
        raise SpaceMismatchError(
            f"the evaluation environment has observations {getattr(env_obs, 'shape', env_obs)} and actions "
            f"{getattr(env_act, 'shape', env_act)}, but the agent was trained on observations "
            f"{observation_space.shape} and actions {action_space.shape}; evaluate it in the environment "
            "its dataset was collected in"
        )


def evaluate(
    agent: Any,
    env: gym.Env | Sequence[gym.Env],
    n_episodes: int = 10,
    deterministic: bool = False,
    seed: int | None = 0,
    reference: tuple[float, float] | None = None,
    render_frames: list | None = None,
    n_envs: int = 1,
) -> EvaluationResult:
    """Run ``n_episodes`` full episodes of ``agent.predict``, ``n_envs`` at a time.

    The episodes of the environments that are running are stepped together with one batched
    ``predict`` call: each action of a flow or diffusion policy is a multi-step solve, and a batch
    of observations costs little more than one.

    Args:
        agent: anything with SB3's ``predict(obs, deterministic=...) -> (action, state)`` that takes
            a batch ``(n, obs_dim)`` of observations.
        env: a Gymnasium env with the agent's spaces, or a list of such envs to run in parallel.
        n_episodes: episodes in all.
        deterministic: act with deterministic actions; by default sampled ones, as the QIPO paper
            and QGPO evaluate.
        seed: episode ``i`` starts with ``reset(seed=seed + i)``, on whichever env is free, so the
            episodes' initial states do not depend on ``n_envs``; None leaves seeding to the env.
        reference: ``(random, expert)`` returns for the normalised score (None: no score).
        render_frames: if a list is given, the first episode's ``env.render()`` frames are appended.
        n_envs: parallel copies of a single ``env`` (made with ``gym.make(env.spec)``).

    Returns:
        Returns and lengths in episode order.
    """
    envs = _parallel_envs(env, n_envs)
    check_env_spaces(envs[0], agent.observation_space, agent.action_space)
    returns, lengths = [0.0] * n_episodes, [0] * n_episodes
    running: dict[int, tuple[int, np.ndarray]] = {}  # env index -> (episode, observation)
    next_episode = 0

    def start(env_index: int) -> None:
        nonlocal next_episode
        if next_episode < n_episodes:
            obs, _ = envs[env_index].reset(seed=None if seed is None else seed + next_episode)
            running[env_index] = (next_episode, obs)
            next_episode += 1

    for env_index in range(len(envs)):
        start(env_index)
    while running:
        order = sorted(running)
        observations = np.stack([running[i][1] for i in order])
        if render_frames is not None and running.get(0, (None,))[0] == 0:
            render_frames.append(envs[0].render())
        actions, _ = agent.predict(observations, deterministic=deterministic)
        for env_index, action in zip(order, actions):
            episode, _ = running.pop(env_index)
            obs, reward, terminated, truncated, _ = envs[env_index].step(action)
            returns[episode] += float(reward)
            lengths[episode] += 1
            if terminated or truncated:
                start(env_index)
            else:
                running[env_index] = (episode, obs)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    norm_mean = norm_std = None
    if reference is not None:
        scores = normalized_score(np.asarray(returns), *reference)
        norm_mean, norm_std = float(np.mean(scores)), float(np.std(scores))
    return EvaluationResult(returns, lengths, mean, std, norm_mean, norm_std)


def _parallel_envs(env: gym.Env | Sequence[gym.Env], n_envs: int) -> list[gym.Env]:
    if isinstance(env, Sequence):
        return list(env)
    if n_envs <= 1:
        return [env]
    if env.spec is None:
        raise ValueError("n_envs > 1 needs an env made with gym.make (its spec makes the copies); pass a list of envs")
    return [env] + [gym.make(env.spec) for _ in range(n_envs - 1)]
