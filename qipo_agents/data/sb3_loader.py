"""In-memory sources -> :class:`OfflineBuffer`: Stable-Baselines3 replay buffers and plain dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike

from qipo_agents.data.buffer import OfflineBuffer, episode_ids_from_ends
from qipo_agents.errors import DatasetError, SpaceMismatchError

if TYPE_CHECKING:
    from stable_baselines3.common.buffers import ReplayBuffer

_KEY_ALIASES = {"terminations": ("terminations", "terminals"), "truncations": ("truncations", "timeouts")}


def from_replay_buffer(buffer: ReplayBuffer, metadata: Mapping[str, Any] | None = None) -> OfflineBuffer:
    """Convert the filled part of an SB3 ``ReplayBuffer`` (e.g. ``SAC.replay_buffer``).

    SB3 stores arrays of shape ``(buffer_size, n_envs, ...)``. Each env's transitions are put in
    collection order (oldest first, also after the ring buffer wrapped), and the envs are laid out
    one after the other (env-major), so an episode never mixes envs.

    Flags: SB3's ``dones`` is "terminated or truncated" and ``timeouts`` marks the truncated ones
    (``handle_timeout_termination=True``, SB3's default), so ``terminations = dones & ~timeouts``
    and ``truncations = dones & timeouts``. With ``handle_timeout_termination=False`` (forced by
    ``optimize_memory_usage=True``) SB3 cannot tell them apart and every done is a termination.
    The last stored transition of each env is marked truncated when it is not done (the data ends).

    ``optimize_memory_usage=True`` keeps no ``next_observations``: the next observation of slot
    ``i`` is ``observations[(i + 1) % buffer_size]``, and the slot at ``pos`` of a full buffer is
    invalid and skipped (as SB3's own sampler does). Note that in this mode SB3 overwrites the final
    observation of an episode with the next episode's first one, so ``next_observations`` of a done
    transition is that reset observation; terminations mask it, as in SB3's training.

    Args:
        buffer: a ``stable_baselines3.common.buffers.ReplayBuffer`` with Box observations and actions.
        metadata: extra metadata (``env_id``, ``dataset_ids``, reference scores) for the buffer.

    Raises:
        SpaceMismatchError: observations or actions are not ``Box`` spaces.
        DatasetError: the buffer is empty or holds NaN/inf.
    """
    if not isinstance(buffer.action_space, spaces.Box):
        raise SpaceMismatchError(
            f"QIPO needs continuous (Box) actions, the replay buffer holds {buffer.action_space} actions"
        )
    if not isinstance(buffer.observation_space, spaces.Box):
        raise SpaceMismatchError(
            f"only Box observations are supported, the replay buffer holds {buffer.observation_space}; "
            "DictReplayBuffer is not supported either"
        )
    size = buffer.buffer_size
    optimize_memory = bool(getattr(buffer, "optimize_memory_usage", False))
    if buffer.full:
        # Oldest first; with shared obs/next-obs storage the slot at `pos` was overwritten: skip it.
        slots = (buffer.pos + np.arange(1 if optimize_memory else 0, size)) % size
    else:
        slots = np.arange(buffer.pos)

    if len(slots) == 0:
        raise DatasetError("dataset has no transitions: the replay buffer is empty; fill it before converting")
    columns: dict[str, list[np.ndarray]] = {
        key: [] for key in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations")
    }
    episode_ids: list[np.ndarray] = []
    n_previous_episodes = 0
    n = len(slots)
    for env in range(buffer.n_envs):
        if optimize_memory:
            next_observations = buffer.observations[(slots + 1) % size, env]
        else:
            next_observations = buffer.next_observations[slots, env]
        dones = buffer.dones[slots, env].astype(bool)
        timeouts = buffer.timeouts[slots, env].astype(bool) if buffer.handle_timeout_termination else np.zeros(n, bool)
        terminations = dones & ~timeouts
        truncations = dones & timeouts
        if not dones[-1]:
            truncations[-1] = True
        columns["observations"].append(buffer.observations[slots, env].reshape(n, -1))
        columns["next_observations"].append(next_observations.reshape(n, -1))
        columns["actions"].append(buffer.actions[slots, env].reshape(n, -1))
        columns["rewards"].append(buffer.rewards[slots, env].reshape(n))
        columns["terminations"].append(terminations)
        columns["truncations"].append(truncations)
        ids = episode_ids_from_ends(terminations | truncations) + n_previous_episodes
        episode_ids.append(ids)
        n_previous_episodes = int(ids[-1]) + 1

    merged_metadata = {"source": "sb3_replay_buffer", **(metadata or {})}
    return OfflineBuffer(
        **{key: np.concatenate(parts) for key, parts in columns.items()},
        episode_ids=np.concatenate(episode_ids),
        observation_space=_flat_box(buffer.observation_space),
        action_space=_flat_box(buffer.action_space),
        metadata=merged_metadata,
    )


def from_dict(data: Mapping[str, ArrayLike], metadata: Mapping[str, Any] | None = None) -> OfflineBuffer:
    """Build a buffer from a mapping of arrays, one row per transition.

    Keys:
        ``observations (N, obs_dim)``, ``actions (N, action_dim)``, ``rewards (N,)``,
        ``next_observations (N, obs_dim)`` and ``terminations (N,)`` (alias ``terminals``) are required.
        ``truncations (N,)`` (alias ``timeouts``) is optional: when absent, the last transition of each
        episode that did not terminate is a truncation (with no ``episode_ids``, only the very last one).
        ``episode_ids (N,)`` is optional: when absent, an episode ends at each termination or truncation.

    Args:
        data: the arrays (numpy, lists, or anything ``np.asarray`` accepts; torch CPU tensors work).
        metadata: extra metadata (``env_id``, ``dataset_ids``, reference scores) for the buffer.

    Raises:
        DatasetError: a required key is missing or the arrays are malformed.
    """
    arrays: dict[str, np.ndarray] = {}
    for key in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations"):
        name = next((alias for alias in _KEY_ALIASES.get(key, (key,)) if alias in data), None)
        if name is not None:
            arrays[key] = np.asarray(data[name])
        elif key != "truncations":
            raise DatasetError(
                f"missing key {key!r}; from_dict needs observations, actions, rewards, next_observations and "
                f"terminations (or terminals), got keys {sorted(data)}"
            )
    if "episode_ids" in data:
        arrays["episode_ids"] = np.asarray(data["episode_ids"])
    lengths = {key: len(value) for key, value in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"arrays have different numbers of transitions: {lengths}")
    for key in ("rewards", "terminations", "truncations", "episode_ids"):  # accept (N, 1) columns
        if key in arrays and arrays[key].ndim == 2 and arrays[key].shape[1] == 1:
            arrays[key] = arrays[key][:, 0]

    terminations = arrays["terminations"].astype(bool)
    if "truncations" not in arrays:
        if "episode_ids" in arrays:
            ids = arrays["episode_ids"]
            episode_ends = np.append(ids[1:] != ids[:-1], True)
        else:
            episode_ends = np.zeros(len(terminations), dtype=bool)
            episode_ends[-1:] = True  # the data ends here
        arrays["truncations"] = episode_ends & ~terminations
    if "episode_ids" not in arrays:
        arrays["episode_ids"] = episode_ids_from_ends(terminations | arrays["truncations"].astype(bool))
    return OfflineBuffer(**arrays, metadata={"source": "dict", **(metadata or {})})


def _flat_box(space: spaces.Box) -> spaces.Box:
    return spaces.Box(
        space.low.reshape(-1).astype(np.float32), space.high.reshape(-1).astype(np.float32), dtype=np.float32
    )
