"""Where a task's datasets are, whether they are here, and loading them with a clear error when not.

A task lists dataset *specs*, concatenated in order:

* a Minari id, ``mujoco/hopper/medium-v0``: looked up in the local Minari store
  (``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``), downloaded when the machine is online;
* a path, ``${D4RL_DATASET_DIR:-~/.d4rl/datasets}/hopper_medium_replay-v2.hdf5``: a D4RL-format
  HDF5 file or a Minari dataset folder (``~`` and ``${VAR}`` / ``${VAR:-default}`` are expanded);
  a spec is a path when it ends in ``.hdf5`` / ``.h5`` or starts with ``/``, ``.``, ``~`` or ``$``;
* ``builtin:<name>``: a dataset shipped inside the package (``qipo_agents/zoo/datasets/<name>``).

Checking availability never touches the network.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qipo_agents.data.minari_loader import datasets_root, minari_data_dir, open_minari_dataset
from qipo_agents.errors import DatasetNotFoundError

BUILTIN_PREFIX = "builtin:"
BUILTIN_DIR = Path(__file__).resolve().parent / "datasets"
_PATH_STARTS = ("/", ".", "~", "$")
_PATH_SUFFIXES = (".hdf5", ".h5")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_path(text: str) -> Path:
    """``~`` and ``${VAR}``, ``${VAR:-default}``, ``$VAR`` expanded (an unset variable without default stays as is)."""

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        value = os.environ.get(name)
        if value:
            return value
        return default if default is not None else match.group(0)

    return Path(os.path.expanduser(_VARIABLE.sub(substitute, text))).expanduser()


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of a task's ``datasets``: its kind (``minari``, ``path``, ``builtin``) and where it resolves."""

    spec: str

    @property
    def kind(self) -> str:
        if self.spec.startswith(BUILTIN_PREFIX):
            return "builtin"
        if self.spec.startswith(_PATH_STARTS) or self.spec.lower().endswith(_PATH_SUFFIXES):
            return "path"
        if Path(self.spec).is_dir() and minari_data_dir(Path(self.spec)) is not None:
            return "path"  # a relative Minari dataset folder
        return "minari"

    @property
    def location(self) -> Path:
        """Where the data is (or would be) on this machine."""
        if self.kind == "builtin":
            return BUILTIN_DIR / self.spec[len(BUILTIN_PREFIX) :]
        if self.kind == "path":
            return expand_path(self.spec)
        return datasets_root() / self.spec

    @property
    def available(self) -> bool:
        """True when the data is on this machine (no network call)."""
        location = self.location
        if self.kind == "minari":
            return (location / "data" / "metadata.json").is_file()
        if location.is_file():
            return True
        return location.is_dir() and minari_data_dir(location) is not None

    def source(self) -> str:
        """What :func:`qipo_agents.data.make_buffer` is given: the Minari id, or the resolved path."""
        return self.spec if self.kind == "minari" else str(self.location)

    def how_to_get(self) -> str:
        if self.kind == "minari":
            return (
                f"`minari download {self.spec}` when online, `qipo-zoo collect`, "
                "or MINARI_DATASETS_PATH set to a store that has it"
            )
        if self.kind == "builtin":
            return "it ships with qipo_agents: reinstall the package"
        return f"put the file at {self.location}, or pass --dataset PATH"

    def metadata(self) -> dict[str, Any]:
        """The dataset's Minari ``metadata.json`` when it is local and has one, else ``{}``."""
        if not self.available:
            return {}
        folder = self.location if self.kind != "minari" else self.location / "data"
        data_dir = minari_data_dir(folder) if folder.is_dir() else None
        if data_dir is None:
            return {}
        try:
            return json.loads((data_dir / "metadata.json").read_text())
        except (OSError, ValueError):
            return {}


def dataset_sources(specs: tuple[str, ...] | list[str]) -> list[str]:
    """Check every spec is available (downloading Minari ids when possible) and return the sources to load.

    Raises:
        DatasetNotFoundError: within seconds when a dataset is neither here nor downloadable,
            with a message that says how to get it.
    """
    sources = []
    for spec in map(DatasetSpec, specs):
        if spec.kind == "minari" and not spec.available:
            open_minari_dataset(spec.spec, download=True)  # downloads, or fails fast with the ways out
        elif spec.kind != "minari" and not spec.available:
            raise DatasetNotFoundError(
                f"dataset {spec.spec!r} is not on this machine ({spec.location}): {spec.how_to_get()}"
            )
        sources.append(spec.source())
    return sources


def builtin_datasets() -> list[str]:
    """Names of the datasets shipped with the package (``builtin:<name>``)."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if minari_data_dir(p) is not None)
