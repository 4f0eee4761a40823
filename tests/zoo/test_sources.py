"""Dataset specs of zoo tasks: kinds, path expansion, and availability checks without the network."""

from __future__ import annotations

import pytest

from qipo_agents.errors import DatasetNotFoundError
from qipo_agents.zoo.sources import DatasetSpec, dataset_sources, expand_path

from ..conftest import DATASET_ID


def test_spec_kinds_and_path_expansion(tmp_path, monkeypatch):
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    replay = "${D4RL_DATASET_DIR:-~/.d4rl/datasets}/hopper_medium_replay-v2.hdf5"
    assert expand_path(replay) == tmp_path / ".d4rl/datasets/hopper_medium_replay-v2.hdf5"
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    assert expand_path(replay) == tmp_path / "d4rl/hopper_medium_replay-v2.hdf5"
    assert DatasetSpec(replay).kind == "path"
    assert DatasetSpec("mujoco/hopper/medium-v0").kind == "minari"
    assert DatasetSpec("builtin:hopper-medium-mini").kind == "builtin"
    assert DatasetSpec("relative/file.h5").kind == "path"


def test_availability_is_a_local_check(minari_dataset, minari_root, tmp_path):
    assert DatasetSpec(DATASET_ID).available and DatasetSpec(DATASET_ID).location == minari_root / DATASET_ID
    assert DatasetSpec(DATASET_ID).metadata()["total_episodes"] == 4
    assert not DatasetSpec("test/hopper/absent-v0").available
    assert DatasetSpec(str(minari_root / DATASET_ID)).available  # a Minari folder given by path
    assert dataset_sources([DATASET_ID, "builtin:hopper-medium-mini"])[0] == DATASET_ID
    with pytest.raises(DatasetNotFoundError, match="put the file at .*missing.hdf5, or pass --dataset PATH"):
        dataset_sources([str(tmp_path / "missing.hdf5")])
