"""Roll out a trained agent in a Gymnasium env into a Minari dataset (D4RL recipe; ``qipo-zoo collect``).

The D4RL recipe: run the behaviour policy (stochastic actions by default), record every
transition, end episodes where the env terminates or truncates (time limit), and stop after a
fixed number of steps (the last episode is then truncated by the budget). The agent may be a
Stable-Baselines3 / sb3-contrib model zip as rl-baselines3-zoo publishes it (with its
VecNormalize statistics and env wrappers, :mod:`qipo_agents.collection.rl_zoo`) or a saved qipo_agents
agent. A recorder directly on the raw env keeps the env's own observations (the agent's wrappers
sit outside it) and writes each episode to the Minari dataset as it ends, so a collection of
millions of steps never sits in memory; an interrupted collection leaves no dataset behind.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from qipo_agents.collection.rl_zoo import ActingPolicy, load_rl_zoo_agent
from qipo_agents.common.evaluation import check_env_spaces, normalized_score, reference_scores
from qipo_agents.data.minari_loader import datasets_root
from qipo_agents.errors import ConfigError, SpaceMismatchError
from qipo_agents.zoo.envs import import_env_package


@dataclass
class Collected:
    dataset_id: str
    path: Path
    n_episodes: int
    n_steps: int
    returns: np.ndarray  # undiscounted returns of the episodes that ended (terminated or time limit)
    normalized: np.ndarray | None
    algorithm: str


def _is_qipo_save(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "data.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ConfigError(f"{path} is not a readable agent zip ({error})") from error


def load_policy(
    path: str | Path,
    env: gym.Env,
    device: str = "cpu",
    vecnormalize: str | Path | None = None,
    config: str | Path | None = None,
    algo: str | None = None,
) -> ActingPolicy:
    """The agent saved at ``path`` (an SB3 / sb3-contrib zip or a qipo_agents save), ready to act in ``env``."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".zip").exists():
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise ConfigError(f"no agent file at {path}")
    if _is_qipo_save(path):
        if vecnormalize is not None or config is not None:
            raise ConfigError(
                f"{path} is a qipo_agents agent: it normalises its own observations "
                "(no --vecnormalize or --agent-config)"
            )
        from qipo_agents.qipo.algorithm import QIPO

        agent = QIPO.load(path, device=device)
        # goal-conditioned envs (AntMaze) observe a dict; the agent was trained on it flattened
        wrappers = [gym.wrappers.FlattenObservation] if isinstance(env.observation_space, gym.spaces.Dict) else []
        policy = ActingPolicy(agent, type(agent).__name__, wrappers)
        try:
            check_env_spaces(policy.wrap(env), agent.observation_space, agent.action_space)
        except SpaceMismatchError as error:
            raise ConfigError(str(error)) from error
        return policy
    return load_rl_zoo_agent(path, env, vecnormalize=vecnormalize, config=config, algo=algo, device=device)


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
    vecnormalize: str | Path | None = None,
    config: str | Path | None = None,
    algo: str | None = None,
) -> Collected:
    """Roll ``model`` out for ``n_steps`` env steps in ``env_id`` and write the Minari dataset ``dataset_id``.

    Args:
        stochastic: sample actions (``deterministic=False``), as D4RL did.
        seed: seeds the first reset, the action space and the agent's sampling (torch), so a
            collection is reproducible.
        reference: ``(random, expert)`` returns stored as ``ref_min_score`` / ``ref_max_score``;
            None: D4RL's for the env family (hopper, halfcheetah, walker2d, antmaze), else none.
        vecnormalize, config, algo: for rl-zoo agents, see :func:`~qipo_agents.collection.rl_zoo.load_rl_zoo_agent`.
    """
    if n_steps < 1:
        raise ConfigError("--steps must be at least 1")
    target = new_dataset_target(dataset_id)
    import_env_package(env_package)
    try:
        raw_env = gym.make(env_id)
    except gym.error.Error as error:
        raise ConfigError(f"cannot create the environment {env_id!r}: {error}") from error
    policy = load_policy(model, raw_env, device, vecnormalize=vecnormalize, config=config, algo=algo)
    if reference is None:
        reference = reference_scores({"env_id": env_id})
    torch.manual_seed(seed)
    mode = "stochastic" if stochastic else "deterministic"
    writer = EpisodeWriter(
        dataset_id,
        env_id,
        algorithm_name=f"{policy.description} {mode} rollout",
        author=author,
        author_email=author_email,
        reference=reference,
    )
    recorder = _EpisodeRecorder(raw_env, writer)
    env = policy.wrap(recorder)  # the agent observes through its wrappers, the recorder sees the raw env
    returns: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, unit="step", desc="collecting", dynamic_ncols=True, disable=None)
    try:
        observation, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        for step in range(n_steps):
            action = policy.predict(observation, deterministic=not stochastic)
            observation, _, terminated, truncated, _ = env.step(action)
            if bar is not None:
                bar.update(1)
            if terminated or truncated:
                returns.append(recorder.last_return)
                if step < n_steps - 1:
                    observation, _ = env.reset()
        recorder.end_by_budget()  # the last episode, cut by the budget, is stored as truncated
    except BaseException:
        writer.discard()
        raise
    finally:
        if bar is not None:
            bar.close()
    env.close()
    n_episodes = writer.n_episodes
    returns_arr = np.asarray(returns)
    summary = (
        f"{n_episodes} episodes, {n_steps} steps of {policy.description} ({mode} actions) in {env_id}, "
        f"collected with `qipo-zoo collect` (D4RL recipe)"
    )
    stats: dict[str, Any] = {
        "collection": {
            "model": str(model),
            "seed": seed,
            "stochastic": stochastic,
            "steps": n_steps,
            **{f"{name}_file": path for name, path in policy.files.items()},
        },
        "description": description or summary,
    }
    normalized = write_return_statistics(writer, stats, returns_arr, reference)
    return Collected(dataset_id, target, n_episodes, n_steps, returns_arr, normalized, policy.description)


def write_return_statistics(
    writer: EpisodeWriter, stats: dict[str, Any], returns: np.ndarray, reference: tuple[float, float] | None
) -> np.ndarray | None:
    """Add the episodes' mean and std return (and, with ``reference`` (random, expert) returns,
    their mean D4RL-normalised score) to ``stats``, write it as the dataset's metadata and return
    the normalised scores ``(n_episodes,)`` (None without a reference or episodes)."""
    normalized = None
    if len(returns):
        stats.update(mean_return=round(float(returns.mean()), 2), std_return=round(float(returns.std()), 2))
        if reference is not None:
            normalized = normalized_score(returns, *reference)
            stats["normalized_score"] = round(float(normalized.mean()), 2)
    writer.dataset.storage.update_metadata(stats)
    return normalized


def new_dataset_target(dataset_id: str) -> Path:
    """The folder of a new Minari dataset ``dataset_id`` in the local store.

    Raises:
        ConfigError: ``dataset_id`` is not a Minari id, or a dataset of that id exists already.
    """
    if not re.fullmatch(r"([A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+-v\d+", dataset_id):
        raise ConfigError(
            f"--dataset-id {dataset_id!r} is not a Minari id: write [namespace/]name-v<version>, e.g. local/hopper/sac-v0"
        )
    target = datasets_root() / dataset_id
    if target.exists():
        raise ConfigError(f"Minari dataset {dataset_id!r} already exists at {target}; choose another --dataset-id")
    return target


class EpisodeWriter:
    """Appends finished episodes to a new Minari dataset, created with the first one."""

    def __init__(self, dataset_id: str, env_id: str, reference: tuple[float, float] | None, **metadata: Any):
        self.dataset_id, self.env_id, self.metadata = dataset_id, env_id, metadata
        self.reference = reference
        self.dataset = None
        self.n_episodes = 0

    def write(self, episode: dict[str, list]) -> None:
        import minari
        from minari.data_collector import EpisodeBuffer

        buffer = EpisodeBuffer(
            id=self.n_episodes,
            observations=np.asarray(episode["observations"]),
            actions=np.asarray(episode["actions"]),
            rewards=np.asarray(episode["rewards"], dtype=np.float64),
            terminations=np.asarray(episode["terminations"]),
            truncations=np.asarray(episode["truncations"]),
        )
        if self.dataset is None:
            self.dataset = minari.create_dataset_from_buffers(
                self.dataset_id,
                [buffer],
                env=self.env_id,
                eval_env=self.env_id,
                code_permalink="qipo-zoo collect",
                description="being collected by qipo-zoo collect",
                ref_min_score=None if self.reference is None else float(self.reference[0]),
                ref_max_score=None if self.reference is None else float(self.reference[1]),
                **self.metadata,
            )
        else:
            self.dataset.storage.update_episodes([buffer])
        self.n_episodes += 1

    def discard(self) -> None:
        """Remove the partly written dataset (an interrupted collection leaves nothing behind)."""
        if self.dataset is not None:
            import shutil

            shutil.rmtree(datasets_root() / self.dataset_id, ignore_errors=True)


class _EpisodeRecorder(gym.Wrapper):
    """Records the raw env's transitions, one episode at a time, and hands each to ``writer``."""

    def __init__(self, env: gym.Env, writer: EpisodeWriter):
        super().__init__(env)
        self.writer = writer
        self.episode: dict[str, list] | None = None
        self.last_return = 0.0

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.episode = {
            "observations": [observation],
            "actions": [],
            "rewards": [],
            "terminations": [],
            "truncations": [],
        }
        return observation, info

    def step(self, action):
        action = np.asarray(action, dtype=self.env.action_space.dtype)
        observation, reward, terminated, truncated, info = self.env.step(action)
        for key, value in (
            ("observations", observation),
            ("actions", action),
            ("rewards", float(reward)),
            ("terminations", bool(terminated)),
            ("truncations", bool(truncated)),
        ):
            self.episode[key].append(value)
        if terminated or truncated:
            self._flush()
        return observation, reward, terminated, truncated, info

    def end_by_budget(self) -> None:
        """Store the unfinished episode as truncated (the collection budget ended it)."""
        if self.episode is not None and self.episode["actions"]:
            self.episode["truncations"][-1] = True
            self._flush()

    def _flush(self) -> None:
        self.last_return = float(np.sum(self.episode["rewards"]))
        self.writer.write(self.episode)
        self.episode = None
