"""Shared test data built on the fly (never downloaded): Hopper-v5 random episodes, in Minari form."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Share the cores between pytest-xdist workers: each worker's torch (and the Python
    processes its tests start) gets ``cores // workers`` threads unless OMP_NUM_THREADS is set.
    Left at torch's default, every worker spins one thread per core and the suite runs several
    times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


DATASET_ID = "test/hopper/random-v0"
# Episode lengths are capped so the data stays tiny; the last episode is cut early (truncated).
MAX_STEPS = 60
TRUNCATED_EPISODE_LENGTH = 7


@dataclass
class Episode:
    """One episode as Minari stores it: T + 1 observations, T of everything else."""

    observations: np.ndarray  # (T + 1, 11) float64
    actions: np.ndarray  # (T, 3) float32
    rewards: np.ndarray  # (T,) float64
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.rewards)


def _rollout(env: gym.Env, seed: int, max_steps: int) -> Episode:
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
    for step in range(max_steps):
        action = env.action_space.sample()
        observation, reward, terminated, truncated, _ = env.step(action)
        observations.append(observation)
        actions.append(action)
        rewards.append(reward)
        terminations.append(terminated)
        truncations.append(truncated or (step == max_steps - 1 and not terminated))
        if terminations[-1] or truncations[-1]:
            break
    return Episode(
        np.array(observations),
        np.array(actions, dtype=np.float32),
        np.array(rewards),
        np.array(terminations),
        np.array(truncations),
    )


@pytest.fixture(scope="session")
def hopper_episodes() -> list[Episode]:
    """Four random Hopper-v5 episodes: three run until the hopper falls (terminated; capped at
    MAX_STEPS, which would make them truncated), the last cut after TRUNCATED_EPISODE_LENGTH steps."""
    env = gym.make("Hopper-v5")
    episodes = [_rollout(env, seed, MAX_STEPS) for seed in range(3)]
    episodes.append(_rollout(env, 3, TRUNCATED_EPISODE_LENGTH))
    env.close()
    assert episodes[-1].truncations[-1] and not episodes[-1].terminations[-1]
    assert any(episode.terminations[-1] for episode in episodes), "random Hopper should fall at least once"
    return episodes


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local Minari store, used through MINARI_DATASETS_PATH."""
    root = tmp_path / "minari_datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _create_minari_dataset(dataset_id: str, episodes: list[Episode]):
    """Write ``episodes`` as a local Minari dataset under the current MINARI_DATASETS_PATH."""
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [
        EpisodeBuffer(
            id=index,
            observations=episode.observations,
            actions=episode.actions,
            rewards=episode.rewards,
            terminations=episode.terminations,
            truncations=episode.truncations,
        )
        for index, episode in enumerate(episodes)
    ]
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        env="Hopper-v5",
        eval_env="Hopper-v5",
        algorithm_name="random",
        author="qipo_agents tests",
        author_email="none@example.com",
        code_permalink="tests/data/conftest.py",
        description="random Hopper-v5 episodes for tests",
        # Both given, so Minari does not roll out a policy to estimate the missing one.
        ref_min_score=-20.0,
        ref_max_score=3000.0,
    )


@pytest.fixture
def create_minari_dataset():
    """``create(dataset_id, episodes)``: write episodes as a local Minari dataset (current store)."""
    return _create_minari_dataset


@pytest.fixture
def minari_dataset(minari_root: Path, hopper_episodes: list[Episode]):
    """The hopper episodes stored as the local Minari dataset ``DATASET_ID``."""
    return _create_minari_dataset(DATASET_ID, hopper_episodes)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One finished tiny ``qipo-zoo train`` run of the embedded default task, shared by the zoo's
    eval / plot / export tests and the collection tests (which roll its agent out)."""
    from .zoo.conftest import invoke, train_args

    logs = tmp_path_factory.mktemp("shared_logs")
    invoke(*train_args("hopper-medium-mini", logs))
    return logs / "flow" / "hopper-medium-mini_1"
