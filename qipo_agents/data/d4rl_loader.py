"""D4RL-format HDF5 files -> :class:`OfflineBuffer`.

A D4RL file is one flat sequence of rows (episodes back to back) with the datasets
``observations (N, obs_dim)``, ``actions (N, action_dim)``, ``rewards (N,)``, ``terminals (N,)``,
optionally ``timeouts (N,)`` and ``next_observations (N, obs_dim)``. An episode ends at a row
whose ``terminals`` or ``timeouts`` flag is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qipo_agents.data.buffer import OfflineBuffer, episode_ids_from_ends
from qipo_agents.errors import DatasetError, DatasetNotFoundError

_REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
# File attributes copied into OfflineBuffer.metadata when present.
_ATTRIBUTE_KEYS = ("env_id", "ref_min_score", "ref_max_score", "dataset_id")


def load_d4rl_hdf5(path: str | os.PathLike) -> OfflineBuffer:
    """Load a D4RL-format HDF5 file.

    With ``next_observations`` in the file every row is a transition: ``terminations = terminals``,
    ``truncations = timeouts`` (and the file's last row, if neither, is a truncation: the data ends).

    Without it, the next observation is the next row's observation, exactly like
    ``d4rl.qlearning_dataset``: a row flagged ``timeouts`` (or the file's last row) has no next
    observation in the file and is dropped, and the row before it becomes the episode's last
    transition, marked truncated. A ``terminals`` row is kept: its next observation is not
    recorded, so (as in D4RL) the following row stands in for it; the termination flag means it is
    never bootstrapped from.

    Args:
        path: the ``.hdf5`` / ``.h5`` file.

    Returns:
        The buffer; ``metadata`` has ``dataset_ids`` (the ``dataset_id`` attribute, else the file
        stem), ``env_id`` / ``ref_min_score`` / ``ref_max_score`` from the file's attributes when
        present (else None) and ``source="d4rl_hdf5"``.

    Raises:
        DatasetNotFoundError: the file does not exist.
        DatasetError: a required key is missing, the file is not HDF5, or the data is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"D4RL file {path} does not exist; pass the path of a D4RL-format .hdf5 file "
            "(keys observations, actions, rewards, terminals[, timeouts, next_observations])"
        )
    try:
        with h5py.File(path, "r") as file:
            for key in _REQUIRED_KEYS:
                if key not in file:
                    raise DatasetError(
                        f"missing key {key!r}; a D4RL file needs observations, actions, rewards, terminals "
                        f"({path} has {sorted(file.keys())})"
                    )
            data = {key: file[key][()] for key in (*_REQUIRED_KEYS, "timeouts", "next_observations") if key in file}
            attributes = {key: _plain(file.attrs[key]) for key in _ATTRIBUTE_KEYS if key in file.attrs}
    except OSError as error:
        raise DatasetError(f"{path} cannot be read as HDF5: {error}") from error

    n_rows = len(data["rewards"])
    lengths = {key: len(value) for key, value in data.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"the datasets in {path} have different numbers of rows: {lengths}")
    if n_rows == 0:
        raise DatasetError(f"dataset has no transitions ({path} is empty)")
    observations = np.asarray(data["observations"]).reshape(n_rows, -1)
    actions = np.asarray(data["actions"]).reshape(n_rows, -1)
    rewards = np.asarray(data["rewards"]).reshape(n_rows)
    terminals = np.asarray(data["terminals"]).reshape(n_rows).astype(bool)
    timeouts = np.asarray(data.get("timeouts", np.zeros(n_rows, dtype=bool))).reshape(n_rows).astype(bool)

    if "next_observations" in data:
        next_observations = np.asarray(data["next_observations"]).reshape(n_rows, -1)
        keep = np.ones(n_rows, dtype=bool)
        truncations = timeouts & ~terminals
    else:
        next_observations = np.empty_like(observations)
        next_observations[:-1] = observations[1:]
        next_observations[-1:] = observations[-1:]  # only used when the last row is terminal
        # Drop rows whose next observation is not in the file: timeouts, and a non-terminal last row.
        keep = ~(timeouts & ~terminals)
        keep[-1] = bool(terminals[-1])
        # The kept row just before a dropped one ends its episode by truncation.
        truncations = np.zeros(n_rows, dtype=bool)
        truncations[:-1] = keep[:-1] & ~keep[1:] & ~terminals[:-1]
    if keep.any():
        last = np.flatnonzero(keep)[-1]
        truncations[last] |= not terminals[last]  # the data ends here

    terminations = terminals[keep]
    truncations = truncations[keep]
    metadata: dict[str, Any] = {
        "dataset_ids": [str(attributes.pop("dataset_id", path.stem))],
        "source": "d4rl_hdf5",
        **attributes,
    }
    return OfflineBuffer(
        observations=observations[keep],
        actions=actions[keep],
        rewards=rewards[keep],
        next_observations=next_observations[keep],
        terminations=terminations,
        truncations=truncations,
        episode_ids=episode_ids_from_ends(terminations | truncations),
        metadata=metadata,
    )


def _plain(value: Any) -> Any:
    """HDF5 attribute -> plain Python value (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
