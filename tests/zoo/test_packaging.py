"""The YAML and the embedded dataset ship inside the package, and the embedded dataset is what its metadata says."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from qipo_agents.common.evaluation import normalized_score
from qipo_agents.data import make_buffer
from qipo_agents.zoo.config import hyperparams_dir
from qipo_agents.zoo.sources import BUILTIN_DIR, DatasetSpec, builtin_datasets

REPO = Path(__file__).resolve().parents[2]
MINI = BUILTIN_DIR / "hopper-medium-mini"


def test_packaged_yaml_is_the_top_level_zoo_folder():
    folder = hyperparams_dir()
    for algo in ("flow", "diffusion"):
        assert (folder / f"{algo}.yml").read_text() == (REPO / "zoo" / f"{algo}.yml").read_text()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_pyproject_lists_every_package_and_maps_the_yaml():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(path.parent.relative_to(REPO).parts) for path in (REPO / "qipo_agents").rglob("__init__.py")}
    listed = set(config["packages"])
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert config["package-dir"] == {"qipo_agents.zoo.hyperparams": "zoo"}
    assert config["package-data"]["qipo_agents.zoo.hyperparams"] == ["*.yml"]
    data_globs = config["package-data"]["qipo_agents.zoo.datasets"]
    shipped = {p for glob in data_globs for p in BUILTIN_DIR.glob(glob) if p.is_file()}
    assert shipped == {p for p in BUILTIN_DIR.rglob("*") if p.is_file()}


def test_embedded_dataset_is_small_and_loads_offline():
    assert builtin_datasets() == ["hopper-medium-mini"]
    size = sum(p.stat().st_size for p in MINI.rglob("*") if p.is_file())
    assert size <= 10 * 2**20
    spec = DatasetSpec("builtin:hopper-medium-mini")
    assert spec.kind == "builtin" and spec.available
    buffer = make_buffer(spec.source())
    metadata = json.loads((MINI / "data" / "metadata.json").read_text())
    assert len(buffer) == metadata["total_steps"] and buffer.episode_ids.max() + 1 == metadata["total_episodes"]
    assert buffer.metadata["env_id"] == "Hopper-v5"
    assert (buffer.metadata["ref_min_score"], buffer.metadata["ref_max_score"]) == (-20.272305, 3234.3)
    # the recorded statistics are the data's
    returns = buffer.episode_returns()
    assert metadata["mean_return"] == pytest.approx(float(np.mean(returns)), abs=0.01)
    assert metadata["normalized_score"] == pytest.approx(
        float(np.mean(normalized_score(returns, -20.272305, 3234.3))), abs=0.01
    )
    provenance = metadata["provenance"]
    assert provenance["source_dataset_id"] == "local/hopper/medium-v0" and provenance["seed"] == 0
    assert provenance["script"] == "scripts/make_mini_dataset.py" and (REPO / provenance["script"]).is_file()
    assert len(provenance["selected_episode_indices"]) == metadata["total_episodes"]
