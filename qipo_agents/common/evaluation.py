"""Evaluation in Gymnasium environments with D4RL-normalised scores."""

from __future__ import annotations

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
    agent,
    env: gym.Env,
    n_episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = 0,
    reference: tuple[float, float] | None = None,
    render_frames: list | None = None,
) -> EvaluationResult:
    """Run ``n_episodes`` full episodes of ``agent.predict`` in ``env``.

    Args:
        agent: anything with SB3's ``predict(obs, deterministic=...) -> (action, state)``.
        env: a Gymnasium env with the agent's spaces.
        seed: episode ``i`` starts with ``env.reset(seed=seed + i)``; None leaves seeding to the env.
        reference: ``(random, expert)`` returns for the normalised score (None: no score).
        render_frames: if a list is given, the first episode's ``env.render()`` frames are appended.
    """
    check_env_spaces(env, agent.observation_space, agent.action_space)
    returns, lengths = [], []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + episode)
        done, total, length = False, 0.0, 0
        while not done:
            if render_frames is not None and episode == 0:
                render_frames.append(env.render())
            action, _ = agent.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    norm_mean = norm_std = None
    if reference is not None:
        scores = normalized_score(np.asarray(returns), *reference)
        norm_mean, norm_std = float(np.mean(scores)), float(np.std(scores))
    return EvaluationResult(returns, lengths, mean, std, norm_mean, norm_std)
