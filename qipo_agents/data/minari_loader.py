"""Minari datasets -> :class:`OfflineBuffer`.

Minari stores, per episode of ``T`` steps, ``T + 1`` observations and ``T`` actions, rewards,
terminations and truncations. Transition ``t`` of an episode is therefore
``(obs[t], action[t], reward[t], obs[t + 1], termination[t], truncation[t])``, so inside an
episode ``next_observations[t] == observations[t + 1]``.

Offline machines: ``minari.load_dataset(..., download=True)`` talks to a remote (Hugging Face by default) and
its failure modes range from ``ImportError`` (``huggingface_hub`` missing) to long network
timeouts. We probe the remote's host with a short socket connection first and turn every
failure into a :class:`DatasetNotFoundError` that says where we looked and what to do.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.errors import DatasetError, DatasetNotFoundError, SpaceMismatchError

if TYPE_CHECKING:
    import minari

#: Seconds the connectivity probe may take before the remote is declared unreachable.
PROBE_TIMEOUT_S = 3.0
# Minari's default remote (minari.storage.remotes.DEFAULT_REMOTE); overridable with MINARI_REMOTE.
_DEFAULT_REMOTE = "hf://farama-minari"
_REMOTE_HOSTS = {"hf": "huggingface.co", "gcp": "storage.googleapis.com"}
_METADATA_FILE = "metadata.json"  # what marks a Minari data folder (minari.dataset.minari_storage)


def load_minari(dataset: str | os.PathLike | minari.MinariDataset, download: bool = True) -> OfflineBuffer:
    """Load a Minari dataset into an :class:`OfflineBuffer`.

    Args:
        dataset: a Minari dataset id (``"mujoco/hopper/medium-v0"``), looked up under
            ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``); the path of a Minari dataset
            folder (it or its ``data/`` subfolder holds ``metadata.json``); or an open
            ``minari.MinariDataset`` (its ``episode_indices`` selection is honoured).
        download: when the id is not found locally, try ``minari.load_dataset(id, download=True)`` (after a fast
            connectivity probe, so an offline machine fails within seconds instead of hanging).

    Returns:
        The transitions of every episode, in episode order. ``metadata`` holds ``dataset_ids``
        (``[id]``), ``env_id`` (the evaluation env's id, else the collection env's id),
        ``ref_min_score`` / ``ref_max_score`` (None when the dataset has none) and ``source="minari"``.

    Raises:
        DatasetNotFoundError: the id is not local and cannot be downloaded now.
        DatasetError: the episodes are malformed (e.g. ``T + 1`` observations missing, NaN/inf).
        SpaceMismatchError: the action space is not continuous (QIPO needs ``Box`` actions).
    """
    if isinstance(dataset, (str, os.PathLike)):
        data_dir = minari_data_dir(Path(dataset))
        if data_dir is not None:
            dataset = _open(data_dir, os.fspath(dataset))
        else:
            dataset = open_minari_dataset(os.fspath(dataset), download=download)
    return _buffer_from_dataset(dataset)


def minari_data_dir(path: Path) -> Path | None:
    """The Minari data folder at ``path`` (the folder itself or ``path/data``), or None."""
    for candidate in (path, path / "data"):
        if (candidate / _METADATA_FILE).is_file():
            return candidate
    return None


def open_minari_dataset(dataset_id: str, download: bool = True) -> minari.MinariDataset:
    """Open a Minari dataset by id from the local store, downloading it first if allowed and possible."""
    import minari

    data_path = datasets_root() / dataset_id / "data"
    if not data_path.is_dir():
        if not download:
            raise DatasetNotFoundError(_not_found_message(dataset_id, "download=False was passed"))
        reason = _probe_remote()
        if reason is None:
            try:
                return minari.load_dataset(dataset_id, download=True)
            except Exception as error:  # ImportError, ValueError, network errors: all mean "not available"
                reason = f"the download failed: {type(error).__name__}: {error}"
        raise DatasetNotFoundError(_not_found_message(dataset_id, reason))
    return _open(data_path, dataset_id)


def _open(data_path: Path, name: str) -> minari.MinariDataset:
    import minari

    try:
        return minari.MinariDataset(data_path)
    except (ValueError, OSError, KeyError) as error:
        raise DatasetError(f"Minari dataset {name!r} at {data_path} cannot be read: {error}") from error


def datasets_root() -> Path:
    """The local Minari store: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (read at call time).

    Same rule as ``minari.storage.get_dataset_path``, without its side effect of creating the folder.
    """
    configured = os.environ.get("MINARI_DATASETS_PATH")
    if configured is not None:
        return Path(configured)
    return Path.home() / ".minari" / "datasets"


def _not_found_message(dataset_id: str, reason: str) -> str:
    root = datasets_root()
    source = "MINARI_DATASETS_PATH" if "MINARI_DATASETS_PATH" in os.environ else "default, MINARI_DATASETS_PATH unset"
    return (
        f"Minari dataset {dataset_id!r} is not in the local store {root} ({source}), and it cannot be "
        f"downloaded: {reason}. Ways out: (1) download it on a machine that is online with "
        f"`minari download {dataset_id}` and copy {root / dataset_id} here; (2) collect a dataset yourself "
        "with `qipo-zoo collect`; (3) pass the path of a local dataset (a Minari dataset folder or a D4RL "
        ".hdf5 file), or set MINARI_DATASETS_PATH to the folder that holds it."
    )


def _probe_remote() -> str | None:
    """``None`` when Minari's remote host accepts a TCP connection, else why not (within ~3 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    remote = os.environ.get("MINARI_REMOTE", _DEFAULT_REMOTE)
    host = os.environ.get("HF_ENDPOINT", "").split("://")[-1].split("/")[0] or _REMOTE_HOSTS.get(
        remote.split("://")[0], "huggingface.co"
    )
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            # create_connection's timeout does not cover DNS resolution; the thread join below does.
            with socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S):
                outcome.append(None)
        except OSError as error:
            outcome.append(f"the Minari remote {host} is unreachable ({error})")

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S + 0.5)
    return outcome[0] if outcome else f"the Minari remote {host} did not answer within {PROBE_TIMEOUT_S:.0f} s"


def _buffer_from_dataset(dataset: minari.MinariDataset) -> OfflineBuffer:
    action_space = dataset.action_space
    if not isinstance(action_space, spaces.Box):
        raise SpaceMismatchError(
            f"Minari dataset {dataset.id!r} has {action_space} actions; QIPO needs a continuous (Box) action space"
        )
    observation_space = dataset.observation_space
    columns: dict[str, list[np.ndarray]] = {
        key: [] for key in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations")
    }
    episode_ids: list[np.ndarray] = []
    for index, episode in enumerate(dataset.iterate_episodes()):
        observations = _flat_observations(episode.observations, observation_space)
        n_steps = len(episode.rewards)
        if len(observations) != n_steps + 1 or len(episode.actions) != n_steps:
            raise DatasetError(
                f"episode {episode.id} of Minari dataset {dataset.id!r} has {len(observations)} "
                f"observations and {len(episode.actions)} actions for {n_steps} rewards; Minari episodes "
                "need T+1 observations and T actions"
            )
        columns["observations"].append(observations[:-1])
        columns["next_observations"].append(observations[1:])
        columns["actions"].append(np.asarray(episode.actions).reshape(n_steps, -1))
        columns["rewards"].append(np.asarray(episode.rewards).reshape(n_steps))
        terminations = np.array(episode.terminations, dtype=bool).reshape(n_steps)
        truncations = np.array(episode.truncations, dtype=bool).reshape(n_steps)
        if n_steps and not (terminations[-1] or truncations[-1]):
            # An episode stored without either flag (e.g. the collection budget ran out mid-episode)
            # ended without terminating: that is a truncation, bootstrap from its next observation.
            truncations[-1] = True
        columns["terminations"].append(terminations)
        columns["truncations"].append(truncations)
        episode_ids.append(np.full(n_steps, index, dtype=np.int64))
    if not episode_ids:
        raise DatasetError(f"Minari dataset {dataset.id!r} has no episodes")

    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}
    metadata = _read_metadata(dataset)
    return OfflineBuffer(
        **arrays,
        episode_ids=np.concatenate(episode_ids),
        observation_space=_float32_box(spaces.flatten_space(observation_space)),
        action_space=_float32_box(action_space),
        metadata=metadata,
    )


def _flat_observations(observations: Any, space: spaces.Space) -> np.ndarray:
    """``(T + 1, obs_dim)`` array from an episode's observations; Dict/Tuple spaces are flattened
    in Gymnasium's ``flatten`` order (Dict keys sorted), so a ``FlattenObservation`` env matches."""
    if isinstance(space, spaces.Box):
        array = np.asarray(observations)
        return array.reshape(array.shape[0], -1)
    if isinstance(space, spaces.Dict):
        parts = [_flat_observations(observations[key], sub) for key, sub in space.spaces.items()]
        return np.concatenate(parts, axis=1)
    if isinstance(space, spaces.Tuple):
        parts = [_flat_observations(part, sub) for part, sub in zip(observations, space.spaces, strict=True)]
        return np.concatenate(parts, axis=1)
    raise SpaceMismatchError(f"observation space {space} is not supported; use Box, Dict or Tuple of Boxes")


def _float32_box(space: spaces.Space) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise SpaceMismatchError(f"expected a Box space after flattening, got {space}")
    return spaces.Box(
        space.low.reshape(-1).astype(np.float32), space.high.reshape(-1).astype(np.float32), dtype=np.float32
    )


def _read_metadata(dataset: minari.MinariDataset) -> dict[str, Any]:
    raw = dataset.storage.metadata
    env_id = None
    for key in ("eval_env_spec", "env_spec"):  # prefer the env meant for evaluation
        spec = raw.get(key)
        if isinstance(spec, str):
            try:
                env_id = json.loads(spec).get("id")
            except (json.JSONDecodeError, AttributeError):
                env_id = None
        if env_id:
            break
    if env_id is None and dataset.env_spec is not None:
        env_id = dataset.env_spec.id

    def score(key: str) -> float | None:
        value = raw.get(key)
        return None if value is None else float(value)

    return {
        "dataset_ids": [dataset.id],
        "env_id": env_id,
        "ref_min_score": score("ref_min_score"),
        "ref_max_score": score("ref_max_score"),
        "source": "minari",
    }
