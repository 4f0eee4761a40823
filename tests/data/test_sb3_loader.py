"""Stable-Baselines3 replay buffers and plain dicts -> OfflineBuffer."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from qipo_agents.data import from_dict, from_replay_buffer, make_buffer
from qipo_agents.errors import DatasetError, SpaceMismatchError

OBS_SPACE = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTION_SPACE = spaces.Box(-1.0, 1.0, (2,), np.float32)


def fill(buffer: ReplayBuffer, steps: range, episode_length: int = 4, timeout_every: int = 2) -> None:
    """Add the global ``steps`` to every env. Episodes last ``episode_length`` steps; every
    ``timeout_every``-th one ends by time limit, the others terminate. Observation feature 0 is
    ``1000 * env + step`` (next observation: ``step + 1``) so transitions can be traced back."""
    n_envs = buffer.n_envs

    def observation(step: int) -> np.ndarray:
        obs = np.zeros((n_envs, 3), dtype=np.float32)
        obs[:, 0] = 1000 * np.arange(n_envs) + step
        obs[:, 1] = step % episode_length
        return obs

    for step in steps:
        episode_step = step % episode_length
        done = episode_step == episode_length - 1
        timed_out = done and (step // episode_length) % timeout_every == timeout_every - 1
        infos = [{"TimeLimit.truncated": timed_out} for _ in range(n_envs)]
        buffer.add(
            observation(step),
            observation(step + 1),
            np.full((n_envs, 2), 0.01 * step, dtype=np.float32),
            np.full(n_envs, float(step)),
            np.full(n_envs, done),
            infos,
        )


def test_partially_filled_buffer_uses_only_the_filled_part():
    buffer = ReplayBuffer(100, OBS_SPACE, ACTION_SPACE, device="cpu")
    fill(buffer, range(10))  # episodes: 0-3 terminated, 4-7 timed out, 8-9 unfinished
    offline = from_replay_buffer(buffer, metadata={"env_id": "Toy-v0"})

    assert len(offline) == 10
    np.testing.assert_array_equal(offline.observations[:, 0], np.arange(10))
    np.testing.assert_array_equal(offline.next_observations[:, 0], np.arange(1, 11))
    np.testing.assert_allclose(offline.rewards, np.arange(10))
    np.testing.assert_array_equal(np.flatnonzero(offline.terminations), [3])
    # step 7 timed out (bootstraps); step 9 is where the data ends mid-episode.
    np.testing.assert_array_equal(np.flatnonzero(offline.truncations), [7, 9])
    np.testing.assert_array_equal(offline.episode_ids, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert offline.metadata["env_id"] == "Toy-v0"
    assert offline.action_space == ACTION_SPACE


def test_wrapped_buffer_is_read_oldest_first():
    buffer = ReplayBuffer(8, OBS_SPACE, ACTION_SPACE, device="cpu")
    fill(buffer, range(13))  # holds steps 5..12, ring position 5
    offline = from_replay_buffer(buffer)

    np.testing.assert_array_equal(offline.observations[:, 0], np.arange(5, 13))
    np.testing.assert_array_equal(offline.next_observations[:, 0], np.arange(6, 14))
    # Episodes: 4-7 timed out, 8-11 terminated, 12 unfinished (the data ends).
    np.testing.assert_array_equal(np.flatnonzero(offline.terminations), [11 - 5])
    np.testing.assert_array_equal(np.flatnonzero(offline.truncations), [7 - 5, 12 - 5])
    np.testing.assert_array_equal(offline.episode_ids, [0, 0, 0, 1, 1, 1, 1, 2])


def test_several_envs_are_laid_out_env_major():
    buffer = ReplayBuffer(20, OBS_SPACE, ACTION_SPACE, device="cpu", n_envs=2)  # 10 slots per env
    fill(buffer, range(6))
    offline = from_replay_buffer(buffer)

    assert len(offline) == 12
    np.testing.assert_array_equal(offline.observations[:, 0], np.r_[np.arange(6), 1000 + np.arange(6)])
    np.testing.assert_array_equal(offline.episode_ids, [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    assert offline.truncations[5] and offline.truncations[11]  # each env's data ends


def test_optimize_memory_usage_reads_next_observations_from_the_following_slot():
    buffer = ReplayBuffer(
        8, OBS_SPACE, ACTION_SPACE, device="cpu", optimize_memory_usage=True, handle_timeout_termination=False
    )
    fill(buffer, range(5))
    partial = from_replay_buffer(buffer)
    np.testing.assert_array_equal(partial.observations[:, 0], np.arange(5))
    np.testing.assert_array_equal(partial.next_observations[:, 0], np.arange(1, 6))
    # Without handle_timeout_termination SB3 cannot tell timeouts apart: every done terminates.
    np.testing.assert_array_equal(np.flatnonzero(partial.terminations), [3])

    fill(buffer, range(5, 13))  # wraps to pos 5; slot 5 (step 5) lost its observation: skipped
    full = from_replay_buffer(buffer)
    np.testing.assert_array_equal(full.observations[:, 0], np.arange(6, 13))
    np.testing.assert_array_equal(full.next_observations[:, 0], np.arange(7, 14))
    np.testing.assert_array_equal(np.flatnonzero(full.terminations), [7 - 6, 11 - 6])
    np.testing.assert_array_equal(np.flatnonzero(full.truncations), [12 - 6])


def test_replay_buffer_with_discrete_actions_is_rejected():
    buffer = ReplayBuffer(10, OBS_SPACE, spaces.Discrete(3), device="cpu")
    with pytest.raises(SpaceMismatchError, match="continuous"):
        from_replay_buffer(buffer)


def test_empty_replay_buffer_is_rejected():
    with pytest.raises(DatasetError, match="no transitions"):
        from_replay_buffer(ReplayBuffer(10, OBS_SPACE, ACTION_SPACE, device="cpu"))


def test_make_buffer_accepts_a_replay_buffer():
    buffer = ReplayBuffer(100, OBS_SPACE, ACTION_SPACE, device="cpu")
    fill(buffer, range(6))
    assert len(make_buffer(buffer)) == 6


def toy_dict(n: int = 6) -> dict[str, np.ndarray]:
    return {
        "observations": np.arange(n * 2, dtype=np.float64).reshape(n, 2),
        "actions": np.zeros((n, 1)),
        "rewards": np.ones((n, 1)),  # (N, 1) columns are accepted
        "next_observations": np.arange(2, n * 2 + 2, dtype=np.float64).reshape(n, 2),
        "terminals": np.array([0, 0, 1, 0, 0, 0], dtype=np.float32)[:n],
    }


def test_dict_with_aliases_and_rebuilt_episode_ids():
    data = {**toy_dict(), "timeouts": np.array([0, 0, 0, 0, 1, 0])}
    offline = from_dict(data)

    np.testing.assert_array_equal(offline.terminations, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(offline.truncations, [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(offline.episode_ids, [0, 0, 0, 1, 1, 2])
    assert offline.rewards.shape == (6,)


def test_dict_without_truncations_ends_the_data_with_one():
    offline = from_dict(toy_dict())
    np.testing.assert_array_equal(offline.truncations, [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(offline.episode_ids, [0, 0, 0, 1, 1, 1])


def test_dict_with_episode_ids_marks_unterminated_episode_ends_as_truncated():
    data = {**toy_dict(), "episode_ids": np.array([5, 5, 5, 6, 6, 7])}
    offline = from_dict(data)
    np.testing.assert_array_equal(offline.truncations, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(offline.episode_ids, [5, 5, 5, 6, 6, 7])


def test_dict_errors():
    data = toy_dict()
    del data["next_observations"]
    with pytest.raises(DatasetError, match="missing key 'next_observations'"):
        from_dict(data)
    with pytest.raises(DatasetError, match="different numbers of transitions"):
        from_dict({**toy_dict(), "actions": np.zeros((5, 1))})
    broken = toy_dict()
    broken["next_observations"][3, 1] = np.inf
    expected = r"next_observations contain 1 NaN/inf values in 1 transition\(s\) \(first at transition 3\)"
    with pytest.raises(DatasetError, match=expected):
        make_buffer(broken)
