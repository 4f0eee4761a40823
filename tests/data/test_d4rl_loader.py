"""D4RL-format HDF5 -> OfflineBuffer, with and without a next_observations column."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from qipo_agents.data import load_d4rl_hdf5, make_buffer
from qipo_agents.errors import DatasetError, DatasetNotFoundError


def d4rl_columns(episodes, with_next_observations: bool) -> dict[str, np.ndarray]:
    """The episodes laid out as D4RL does: one row per step, episodes back to back."""
    columns = {
        "observations": np.concatenate([e.observations[:-1] for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "rewards": np.concatenate([e.rewards for e in episodes]),
        "terminals": np.concatenate([e.terminations for e in episodes]),
        "timeouts": np.concatenate([e.truncations for e in episodes]),
    }
    if with_next_observations:
        columns["next_observations"] = np.concatenate([e.observations[1:] for e in episodes])
    return columns


def write_hdf5(path, columns, **attributes):
    with h5py.File(path, "w") as file:
        for key, value in columns.items():
            file.create_dataset(key, data=value)
        file.attrs.update(attributes)
    return path


def reference_qlearning_dataset(columns) -> dict[str, np.ndarray]:
    """d4rl.qlearning_dataset (terminate_on_end=False), rewritten as the plain loop D4RL uses."""
    out = {"observations": [], "next_observations": [], "actions": [], "rewards": [], "terminals": []}
    for i in range(len(columns["rewards"]) - 1):
        if columns["timeouts"][i]:
            continue  # the last step of a timed-out episode has no next observation: skipped
        out["observations"].append(columns["observations"][i])
        out["next_observations"].append(columns["observations"][i + 1])
        out["actions"].append(columns["actions"][i])
        out["rewards"].append(columns["rewards"][i])
        out["terminals"].append(columns["terminals"][i])
    return {key: np.array(value) for key, value in out.items()}


def test_without_next_observations_matches_d4rl_qlearning_dataset(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=False)
    buffer = load_d4rl_hdf5(write_hdf5(tmp_path / "hopper.hdf5", columns))
    reference = reference_qlearning_dataset(columns)

    assert len(buffer) == len(reference["rewards"])
    for key in ("observations", "next_observations", "actions", "rewards"):
        np.testing.assert_allclose(getattr(buffer, key), reference[key], rtol=1e-6, err_msg=key)
    np.testing.assert_array_equal(buffer.terminations, reference["terminals"])


def test_without_next_observations_drops_the_last_step_of_truncated_episodes(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=False)
    buffer = load_d4rl_hdf5(write_hdf5(tmp_path / "hopper.hdf5", columns))

    truncated = [bool(e.truncations[-1]) for e in hopper_episodes]
    expected_lengths = [len(e) - int(cut) for e, cut in zip(hopper_episodes, truncated, strict=True)]
    np.testing.assert_array_equal(buffer.episode_lengths(), expected_lengths)
    ends = np.cumsum(expected_lengths) - 1
    np.testing.assert_array_equal(buffer.truncations[ends], truncated)
    np.testing.assert_array_equal(buffer.terminations[ends], [not cut for cut in truncated])
    assert (buffer.terminations | buffer.truncations).sum() == len(hopper_episodes)
    same_episode = buffer.episode_ids[1:] == buffer.episode_ids[:-1]
    np.testing.assert_array_equal(buffer.next_observations[:-1][same_episode], buffer.observations[1:][same_episode])


def test_with_next_observations_keeps_every_row(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=True)
    buffer = load_d4rl_hdf5(write_hdf5(tmp_path / "hopper.h5", columns))

    assert len(buffer) == len(columns["rewards"])
    np.testing.assert_allclose(buffer.next_observations, columns["next_observations"], rtol=1e-6)
    np.testing.assert_array_equal(buffer.terminations, columns["terminals"])
    np.testing.assert_array_equal(buffer.truncations, columns["timeouts"])
    np.testing.assert_array_equal(buffer.episode_lengths(), [len(e) for e in hopper_episodes])


def test_without_timeouts_the_data_end_is_a_truncation(tmp_path):
    # Old D4RL files have no timeouts column: episodes end only at terminals.
    columns = {
        "observations": np.arange(12, dtype=np.float64).reshape(6, 2),
        "actions": np.zeros((6, 1)),
        "rewards": np.arange(6, dtype=np.float64),
        "terminals": np.array([0, 0, 1, 0, 0, 0], dtype=bool),
        "next_observations": np.arange(2, 14, dtype=np.float64).reshape(6, 2),
    }
    buffer = load_d4rl_hdf5(write_hdf5(tmp_path / "old.hdf5", columns))
    np.testing.assert_array_equal(buffer.episode_ids, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(buffer.truncations, [0, 0, 0, 0, 0, 1])

    del columns["next_observations"]
    buffer = load_d4rl_hdf5(write_hdf5(tmp_path / "old_no_next.hdf5", columns))
    assert len(buffer) == 5  # the final row has no next observation
    np.testing.assert_array_equal(buffer.truncations, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(buffer.next_observations[3], buffer.observations[4])


def test_attributes_become_metadata(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=True)
    path = write_hdf5(tmp_path / "hopper-medium-v2.hdf5", columns, env_id="Hopper-v5", ref_min_score=-20.27)
    buffer = load_d4rl_hdf5(path)

    assert buffer.metadata["env_id"] == "Hopper-v5"
    assert buffer.metadata["ref_min_score"] == pytest.approx(-20.27)
    assert buffer.metadata["ref_max_score"] is None
    assert buffer.metadata["dataset_ids"] == ["hopper-medium-v2"]


def test_missing_key_is_named(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=False)
    del columns["actions"]
    with pytest.raises(DatasetError, match="missing key 'actions'; a D4RL file needs observations, actions"):
        load_d4rl_hdf5(write_hdf5(tmp_path / "broken.hdf5", columns))


def test_missing_file_and_non_hdf5_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_d4rl_hdf5(tmp_path / "absent.hdf5")
    not_hdf5 = tmp_path / "text.hdf5"
    not_hdf5.write_text("not an hdf5 file")
    with pytest.raises(DatasetError, match="cannot be read as HDF5"):
        load_d4rl_hdf5(not_hdf5)


def test_nan_in_file_is_reported(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=True)
    columns["rewards"][4] = np.nan
    with pytest.raises(DatasetError, match=r"rewards contain 1 NaN/inf values .*\(first at transition 4\)"):
        load_d4rl_hdf5(write_hdf5(tmp_path / "nan.hdf5", columns))


def test_make_buffer_dispatches_hdf5_paths(tmp_path, hopper_episodes):
    columns = d4rl_columns(hopper_episodes, with_next_observations=True)
    path = write_hdf5(tmp_path / "hopper.hdf5", columns)
    assert len(make_buffer(path)) == len(make_buffer(str(path))) == len(columns["rewards"])
