"""OfflineBuffer: validation errors, derived quantities, concatenation and env compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from qipo_agents.data import OfflineBuffer
from qipo_agents.errors import DatasetError, SpaceMismatchError


def make(episode_lengths=(3, 2), obs_dim=4, action_dim=2, seed=0, **overrides) -> OfflineBuffer:
    """A buffer of back-to-back episodes; every episode terminates except the last (truncated)."""
    rng = np.random.default_rng(seed)
    n = sum(episode_lengths)
    ends = np.cumsum(episode_lengths) - 1
    terminations = np.zeros(n, dtype=bool)
    terminations[ends[:-1]] = True
    truncations = np.zeros(n, dtype=bool)
    truncations[ends[-1]] = True
    fields = {
        "observations": rng.normal(size=(n, obs_dim)),
        "actions": rng.uniform(-1, 1, size=(n, action_dim)),
        "rewards": rng.normal(size=n),
        "next_observations": rng.normal(size=(n, obs_dim)),
        "terminations": terminations,
        "truncations": truncations,
        "episode_ids": np.repeat(np.arange(len(episode_lengths)), episode_lengths),
    }
    fields.update(overrides)
    return OfflineBuffer(**fields)


def test_dtypes_sizes_and_default_metadata():
    buffer = make(episode_lengths=(3, 2, 4))

    assert len(buffer) == 9 and buffer.n_episodes == 3
    assert (buffer.obs_dim, buffer.action_dim) == (4, 2)
    assert buffer.observations.dtype == np.float32 and buffer.rewards.dtype == np.float32
    assert buffer.terminations.dtype == bool and buffer.episode_ids.dtype == np.int64
    empty_metadata = {"dataset_ids": [], "env_id": None, "ref_min_score": None, "ref_max_score": None}
    assert buffer.metadata == empty_metadata
    np.testing.assert_array_equal(buffer.episode_lengths(), [3, 2, 4])


def test_episode_returns_sum_rewards_per_episode():
    rewards = np.array([1.0, 2.0, 3.0, 10.0, -4.0])
    buffer = make(episode_lengths=(3, 2), rewards=rewards)
    np.testing.assert_allclose(buffer.episode_returns(), [6.0, 6.0])


def test_spaces_are_built_from_the_data():
    inside = make()
    assert inside.observation_space == spaces.Box(-np.inf, np.inf, (4,), np.float32)
    assert inside.action_space == spaces.Box(-1.0, 1.0, (2,), np.float32)

    actions = np.array([[-2.0, 0.0], [0.5, 3.0], [0.0, 1.0], [1.0, 0.5], [0.0, 0.0]])
    outside = make(actions=actions)
    np.testing.assert_array_equal(outside.action_space.low, [-2.0, 0.0])
    np.testing.assert_array_equal(outside.action_space.high, [1.0, 3.0])


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_reported_with_count_and_position(bad_value):
    observations = np.zeros((5, 4))
    observations[2, 1] = bad_value
    observations[4, :] = bad_value
    expected = r"observations contain 5 NaN/inf values in 2 transition\(s\) \(first at transition 2\)"
    with pytest.raises(DatasetError, match=expected):
        make(observations=observations)


def test_non_finite_rewards_are_reported():
    rewards = np.array([0.0, 1.0, 2.0, np.nan, 0.0])
    with pytest.raises(DatasetError, match=r"rewards contain 1 NaN/inf values .*\(first at transition 3\)"):
        make(rewards=rewards)


def test_float64_values_too_large_for_float32_are_caught():
    actions = np.zeros((5, 2))
    actions[1, 0] = 1e300  # overflows to inf in float32
    with pytest.raises(DatasetError, match="actions contain 1 NaN/inf"):
        make(actions=actions)


def test_empty_dataset_is_rejected():
    with pytest.raises(DatasetError, match="dataset has no transitions"):
        OfflineBuffer(
            observations=np.zeros((0, 3)),
            actions=np.zeros((0, 1)),
            rewards=np.zeros(0),
            next_observations=np.zeros((0, 3)),
            terminations=np.zeros(0, bool),
            truncations=np.zeros(0, bool),
            episode_ids=np.zeros(0, np.int64),
        )


def test_misaligned_lengths_are_rejected():
    with pytest.raises(DatasetError, match="different numbers of transitions"):
        make(rewards=np.zeros(4))


def test_wrong_number_of_dimensions_is_rejected():
    with pytest.raises(DatasetError, match=r"observations must have 2 dimension\(s\) but has shape \(5,\)"):
        make(observations=np.zeros(5))


def test_episodes_must_be_contiguous_and_flags_only_at_episode_ends():
    with pytest.raises(DatasetError, match="not consecutive"):
        make(episode_ids=np.array([0, 1, 0, 1, 1]))
    terminations = np.array([True, False, False, True, False])
    with pytest.raises(DatasetError, match="terminations is set at transition 0, which is not the last"):
        make(terminations=terminations)


def test_concatenate_offsets_episode_ids_and_merges_metadata():
    medium = make(episode_lengths=(3, 2), seed=1, metadata={"dataset_ids": ["medium"], "env_id": "Hopper-v5"})
    expert = make(
        episode_lengths=(4,),
        seed=2,
        episode_ids=np.full(4, 7),  # ids need not start at 0
        metadata={"dataset_ids": ["expert"], "env_id": "Hopper-v5", "ref_max_score": 3234.3},
    )
    both = OfflineBuffer.concatenate([medium, expert])

    assert len(both) == 9 and both.n_episodes == 3
    np.testing.assert_array_equal(both.episode_ids, [0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(both.observations[5:], expert.observations)
    returns = np.r_[medium.episode_returns(), expert.episode_returns()]
    np.testing.assert_allclose(both.episode_returns(), returns)
    assert both.metadata["dataset_ids"] == ["medium", "expert"]
    assert both.metadata["env_id"] == "Hopper-v5"
    assert both.metadata["ref_max_score"] is None  # they disagree


def test_concatenate_refuses_different_dimensions():
    with pytest.raises(SpaceMismatchError, match="obs_dim=5"):
        OfflineBuffer.concatenate([make(obs_dim=4), make(obs_dim=5)])
    with pytest.raises(SpaceMismatchError, match="action_dim=3"):
        OfflineBuffer.concatenate([make(action_dim=2), make(action_dim=3)])


def test_check_compatible_names_both_shapes():
    buffer = make(obs_dim=4, action_dim=2)
    buffer.check_compatible(spaces.Box(-np.inf, np.inf, (4,)), spaces.Box(-1, 1, (2,)))

    with pytest.raises(SpaceMismatchError, match=r"dataset has \(4,\), environment has \(11,\)"):
        buffer.check_compatible(spaces.Box(-np.inf, np.inf, (11,)), spaces.Box(-1, 1, (2,)))
    with pytest.raises(SpaceMismatchError, match=r"dataset has \(2,\), environment has \(3,\)"):
        buffer.check_compatible(spaces.Box(-np.inf, np.inf, (4,)), spaces.Box(-1, 1, (3,)))
    with pytest.raises(SpaceMismatchError, match="continuous"):
        buffer.check_compatible(spaces.Box(-np.inf, np.inf, (4,)), spaces.Discrete(2))


def test_replace_shares_untouched_arrays_and_revalidates():
    buffer = make()
    scaled = buffer.replace(rewards=buffer.rewards * 2)
    assert scaled.observations is buffer.observations
    np.testing.assert_allclose(scaled.rewards, buffer.rewards * 2)
    with pytest.raises(DatasetError, match="rewards contain"):
        buffer.replace(rewards=np.full(5, np.nan))
