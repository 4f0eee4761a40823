"""make_buffer: dispatch on the kind of source, lists concatenated."""

from __future__ import annotations

import numpy as np
import pytest

from qipo_agents.data import OfflineBuffer, make_buffer
from qipo_agents.errors import DatasetError, DatasetNotFoundError, SpaceMismatchError

MINARI_ID = "test/hopper/random-v0"  # written by conftest's minari_dataset fixture


def toy(n: int = 4, obs_dim: int = 11, action_dim: int = 3) -> dict[str, np.ndarray]:
    return {
        "observations": np.zeros((n, obs_dim)),
        "actions": np.zeros((n, action_dim)),
        "rewards": np.ones(n),
        "next_observations": np.zeros((n, obs_dim)),
        "terminations": np.eye(n, dtype=bool)[-1],
    }


def test_buffer_passes_through_and_mapping_is_read():
    buffer = make_buffer(toy())
    assert isinstance(buffer, OfflineBuffer) and len(buffer) == 4
    assert make_buffer(buffer) is buffer


def test_list_of_sources_is_concatenated(minari_dataset):
    combined = make_buffer([MINARI_ID, minari_dataset, toy()])
    minari_only = make_buffer(MINARI_ID)

    assert len(combined) == 2 * len(minari_only) + 4
    assert combined.n_episodes == 2 * minari_only.n_episodes + 1
    assert combined.metadata["dataset_ids"] == [MINARI_ID, MINARI_ID]


def test_list_with_mismatched_dimensions_fails():
    with pytest.raises(SpaceMismatchError):
        make_buffer([toy(obs_dim=11), toy(obs_dim=17)])
    with pytest.raises(DatasetError, match="empty list"):
        make_buffer([])


def test_unknown_type_lists_the_accepted_ones():
    with pytest.raises(TypeError, match="Minari dataset id") as raised:
        make_buffer(3.5)
    assert "ReplayBuffer" in str(raised.value) and "float" in str(raised.value)


def test_existing_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    with pytest.raises(DatasetError, match="not an .hdf5/.h5 D4RL file"):
        make_buffer(path)


@pytest.mark.parametrize("name", ["missing.hdf5", "./typo.h5", "~/no-such-folder/data", "{tmp}/gone"])
def test_a_missing_path_says_so_instead_of_looking_for_a_minari_id(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    source = name.format(tmp=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no file or folder at") as raised:
        make_buffer(source)
    assert "minari download" not in str(raised.value)
    with pytest.raises(DatasetNotFoundError, match="no file or folder at"):
        make_buffer(tmp_path / "gone-too")


def test_a_minari_folder_is_found_under_a_home_relative_path(minari_dataset, minari_root, monkeypatch):
    monkeypatch.setenv("HOME", str(minari_root))
    buffer = make_buffer(f"~/{MINARI_ID}")
    assert len(buffer) == len(make_buffer(MINARI_ID))
