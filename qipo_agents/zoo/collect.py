"""``qipo-zoo collect``: roll out a trained agent in a Gymnasium env into a Minari dataset (D4RL recipe).

The D4RL recipe: run the behaviour policy (stochastic actions by default), record every
transition, end episodes where the env terminates or truncates (time limit), and stop after a
fixed number of steps (the last episode is then truncated by the budget). The agent may be a
Stable-Baselines3 / sb3-contrib model zip (SAC, TD3, TQC, ...) or a saved qipo_agents agent.
Writing uses ``minari.create_dataset_from_buffers`` with ``EpisodeBuffer``s built from arrays.
"""

from __future__ import annotations

import importlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from qipo_agents.common.evaluation import reference_scores
from qipo_agents.data.minari_loader import datasets_root
from qipo_agents.errors import ConfigError
from qipo_agents.zoo.envs import import_env_package

# SB3 module name -> (package, class) for the algorithms that can act from a saved zip.
_SB3_ALGOS = {
    "sac": "SAC",
    "td3": "TD3",
    "ddpg": "DDPG",
    "ppo": "PPO",
    "a2c": "A2C",
    "dqn": "DQN",
    "tqc": "TQC",
    "trpo": "TRPO",
    "ars": "ARS",
    "crossq": "CrossQ",
    "qrdqn": "QRDQN",
    "ppo_recurrent": "RecurrentPPO",
}


@dataclass
class Collected:
    dataset_id: str
    path: Path
    n_episodes: int
    n_steps: int
    returns: np.ndarray  # undiscounted returns of the episodes that ended (terminated or time limit)
    normalized: np.ndarray | None
    algorithm: str


def _model_kind(path: Path) -> tuple[str, str | None]:
    """``("qipo", None)`` or ``("sb3", "<package>.<algo module>")`` from the zip's contents."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data.json" in names:
                return "qipo", None
            if "data" in names:
                data = json.loads(archive.read("data"))
                module = (data.get("policy_class") or {}).get("__module__", "")
                return "sb3", module
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ConfigError(f"{path} is not a readable agent zip ({error})") from error
    raise ConfigError(f"{path} is neither a Stable-Baselines3 model nor a qipo_agents save file")


def load_policy(path: str | Path, env: gym.Env, device: str = "cpu") -> tuple[Any, str]:
    """``(agent with predict(obs, deterministic=...), description)`` for a saved SB3 or qipo_agents agent."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".zip").exists():
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise ConfigError(f"no agent file at {path}")
    kind, module = _model_kind(path)
    if kind == "qipo":
        from qipo_agents.qipo.algorithm import QIPO

        agent = QIPO.load(path, device=device)
        return agent, type(agent).__name__
    parts = module.split(".")  # e.g. stable_baselines3.sac.policies / sb3_contrib.tqc.policies
    if len(parts) < 2 or parts[1] not in _SB3_ALGOS:
        raise ConfigError(f"{path}: cannot tell which Stable-Baselines3 algorithm saved it (policy module {module!r})")
    package, class_name = parts[0], _SB3_ALGOS[parts[1]]
    try:
        algo_class = getattr(importlib.import_module(package), class_name)
    except ImportError as error:
        pip = "sb3-contrib" if package == "sb3_contrib" else package.replace("_", "-")
        raise ConfigError(
            f"{path} is a {class_name} agent from {package}, which is not installed: pip install {pip} ({error})"
        ) from error
    # Agents saved by older SB3 / gym pickled their spaces and schedules: replace what acting does not need.
    custom = {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "learning_rate": 0.0,
        "lr_schedule": lambda _: 0.0,
        "clip_range": lambda _: 0.0,
        "exploration_schedule": lambda _: 0.0,
        "replay_buffer_class": None,
    }
    try:
        agent = algo_class.load(path, custom_objects=custom, device=device)
    except Exception as error:  # noqa: BLE001 - SB3 raises many kinds on a foreign zip
        raise ConfigError(
            f"{path} could not be loaded as a {class_name} agent: {type(error).__name__}: {error}"
        ) from error
    return agent, f"{package.replace('_', '-')} {class_name}"


def _stack(observations: list[Any]) -> Any:
    if isinstance(observations[0], dict):
        return {key: _stack([o[key] for o in observations]) for key in observations[0]}
    return np.asarray(observations)


def collect(
    model: str | Path,
    env_id: str,
    dataset_id: str,
    n_steps: int,
    stochastic: bool = True,
    seed: int = 0,
    env_package: str | None = None,
    reference: tuple[float, float] | None = None,
    author: str = "qipo-zoo collect",
    author_email: str = "none@example.com",
    description: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Collected:
    """Roll ``model`` out for ``n_steps`` env steps in ``env_id`` and write the Minari dataset ``dataset_id``.

    Args:
        stochastic: sample actions (``deterministic=False``), as D4RL did.
        reference: ``(random, expert)`` returns stored as ``ref_min_score`` / ``ref_max_score``;
            None: D4RL's for the env family (hopper, halfcheetah, walker2d, antmaze), else none.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    if n_steps < 1:
        raise ConfigError("--steps must be at least 1")
    if not re.fullmatch(r"([A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+-v\d+", dataset_id):
        raise ConfigError(
            f"--dataset-id {dataset_id!r} is not a Minari id: write [namespace/]name-v<version>, e.g. local/hopper/sac-v0"
        )
    target = datasets_root() / dataset_id
    if target.exists():
        raise ConfigError(f"Minari dataset {dataset_id!r} already exists at {target}; choose another --dataset-id")
    import_env_package(env_package)
    try:
        env = gym.make(env_id)
    except gym.error.Error as error:
        raise ConfigError(f"cannot create the environment {env_id!r}: {error}") from error
    agent, algorithm = load_policy(model, env, device)
    flatten = hasattr(agent, "dataset_metadata") and isinstance(env.observation_space, gym.spaces.Dict)
    if reference is None:
        reference = reference_scores({"env_id": env_id})

    buffers, returns = [], []
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    episode: dict[str, list] = {
        "observations": [observation],
        "actions": [],
        "rewards": [],
        "terminations": [],
        "truncations": [],
    }
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, unit="step", desc="collecting", dynamic_ncols=True, disable=None)
    for step in range(n_steps):
        policy_obs = gym.spaces.flatten(env.observation_space, observation) if flatten else observation
        action, _ = agent.predict(policy_obs, deterministic=not stochastic)
        observation, reward, terminated, truncated, _ = env.step(action)
        last = step == n_steps - 1
        episode["observations"].append(observation)
        episode["actions"].append(np.asarray(action, dtype=env.action_space.dtype))
        episode["rewards"].append(float(reward))
        episode["terminations"].append(bool(terminated))
        episode["truncations"].append(bool(truncated) or (last and not terminated))
        if bar is not None:
            bar.update(1)
        if terminated or truncated or last:
            if terminated or truncated:
                returns.append(float(np.sum(episode["rewards"])))
            buffers.append(
                EpisodeBuffer(
                    id=len(buffers),
                    observations=_stack(episode["observations"]),
                    actions=np.asarray(episode["actions"]),
                    rewards=np.asarray(episode["rewards"], dtype=np.float64),
                    terminations=np.asarray(episode["terminations"]),
                    truncations=np.asarray(episode["truncations"]),
                )
            )
            if not last:
                observation, _ = env.reset()
                episode = {
                    "observations": [observation],
                    "actions": [],
                    "rewards": [],
                    "terminations": [],
                    "truncations": [],
                }
    if bar is not None:
        bar.close()

    returns_arr = np.asarray(returns)
    mode = "stochastic" if stochastic else "deterministic"
    summary = (
        f"{len(buffers)} episodes, {n_steps} steps of {algorithm} ({mode} actions) in {env_id}, "
        f"collected with `qipo-zoo collect` (D4RL recipe)"
    )
    dataset = minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=env_id,
        eval_env=env_id,
        algorithm_name=f"{algorithm} {mode} rollout",
        author=author,
        author_email=author_email,
        code_permalink="qipo-zoo collect",
        description=description or summary,
        ref_min_score=None if reference is None else float(reference[0]),
        ref_max_score=None if reference is None else float(reference[1]),
    )
    normalized = None
    stats: dict[str, Any] = {
        "collection": {"model": str(model), "seed": seed, "stochastic": stochastic, "steps": n_steps}
    }
    if len(returns_arr):
        stats.update(mean_return=round(float(returns_arr.mean()), 2), std_return=round(float(returns_arr.std()), 2))
        if reference is not None:
            normalized = 100.0 * (returns_arr - reference[0]) / (reference[1] - reference[0])
            stats["normalized_score"] = round(float(normalized.mean()), 2)
    dataset.storage.update_metadata(stats)
    env.close()
    return Collected(dataset_id, target, len(buffers), n_steps, returns_arr, normalized, algorithm)
