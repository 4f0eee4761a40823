"""``make_buffer``: turn whatever the user passed as ``data`` into one :class:`OfflineBuffer`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.data.d4rl_loader import load_d4rl_hdf5
from qipo_agents.data.minari_loader import load_minari
from qipo_agents.data.sb3_loader import from_dict, from_replay_buffer
from qipo_agents.errors import DatasetError, DatasetNotFoundError

_HDF5_SUFFIXES = (".hdf5", ".h5")

ACCEPTED_SOURCES = (
    "an OfflineBuffer; a Minari dataset id (str); a path (str or PathLike) to a D4RL .hdf5/.h5 file or to a "
    "Minari dataset folder; a minari.MinariDataset; a stable_baselines3 ReplayBuffer; a mapping of arrays "
    "(observations, actions, rewards, next_observations, terminations[, truncations, episode_ids]); "
    "or a list/tuple of these (concatenated)"
)


def make_buffer(source: Any, download: bool = True) -> OfflineBuffer:
    """Load any supported dataset source into an :class:`OfflineBuffer`.

    Dispatch, in order:

    * ``OfflineBuffer``: returned as is.
    * ``str`` / ``PathLike``: an existing ``.hdf5`` / ``.h5`` file is read as D4RL
      (:func:`load_d4rl_hdf5`); an existing folder holding a Minari dataset (``metadata.json`` and its
      data, either in the folder or in its ``data/`` subfolder) is opened with ``minari.MinariDataset``;
      anything else is a Minari dataset id (:func:`load_minari`, which may download when ``download``).
    * ``minari.MinariDataset``: :func:`load_minari`.
    * ``stable_baselines3`` ``ReplayBuffer``: :func:`from_replay_buffer`.
    * ``Mapping``: :func:`from_dict`.
    * ``list`` / ``tuple``: each item loaded as above, then :meth:`OfflineBuffer.concatenate`
      (e.g. ``["mujoco/hopper/medium-v0", "mujoco/hopper/expert-v0"]`` for medium-expert).

    Raises:
        TypeError: ``source`` is none of the above.
        DatasetNotFoundError, DatasetError, SpaceMismatchError: from the loaders.
    """
    if isinstance(source, OfflineBuffer):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _from_path_or_id(source, download)
    if isinstance(source, Mapping):
        return from_dict(source)
    if isinstance(source, (list, tuple)):
        if not source:
            raise DatasetError("an empty list of datasets was given; pass at least one dataset")
        return OfflineBuffer.concatenate([make_buffer(item, download=download) for item in source])
    if _is_instance_of(source, "minari", "MinariDataset"):
        return load_minari(source)
    if _is_instance_of(source, "stable_baselines3.common.buffers", "ReplayBuffer"):
        return from_replay_buffer(source)
    raise TypeError(f"cannot build an offline dataset from a {type(source).__name__}; accepted: {ACCEPTED_SOURCES}")


def _from_path_or_id(source: str | os.PathLike, download: bool) -> OfflineBuffer:
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() in _HDF5_SUFFIXES:
            return load_d4rl_hdf5(path)
        raise DatasetError(f"{path} is a file but not an .hdf5/.h5 D4RL file; accepted: {ACCEPTED_SOURCES}")
    if not path.exists() and _names_a_path(source):
        raise DatasetNotFoundError(
            f"no file or folder at {path.resolve()}: check the path (a D4RL file ends in .hdf5/.h5, a "
            "Minari dataset folder holds metadata.json); a Minari dataset id looks like 'mujoco/hopper/medium-v0'"
        )
    # A Minari dataset folder, else a Minari dataset id.
    return load_minari(path if path.is_dir() else source, download=download)


def _names_a_path(source: str | os.PathLike) -> bool:
    """Whether ``source`` can only be a filesystem path, never a Minari id (``namespace/name-v0``):
    a PathLike, an absolute path, one starting at ``~`` or ``.``, or a D4RL file's suffix."""
    if not isinstance(source, str):
        return True
    return os.path.isabs(source) or source.startswith(("~", ".")) or source.lower().endswith(_HDF5_SUFFIXES)


def _is_instance_of(obj: Any, module: str, class_name: str) -> bool:
    """isinstance check that imports nothing: the class only counts if its module is already loaded."""
    loaded = sys.modules.get(module)
    cls = getattr(loaded, class_name, None) if loaded is not None else None
    return cls is not None and isinstance(obj, cls)
