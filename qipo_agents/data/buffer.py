"""The one in-memory form every offline dataset is converted to: :class:`OfflineBuffer`.

Loaders (Minari, D4RL HDF5, SB3 replay buffers, plain dicts) all return an ``OfflineBuffer``;
everything downstream (scalers, the critic, the behaviour warm-up) reads only this class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from qipo_agents.errors import DatasetError, SpaceMismatchError

#: Metadata keys every buffer carries (filled with these defaults when a source has none).
DEFAULT_METADATA: dict[str, Any] = {
    "dataset_ids": [],
    "env_id": None,
    "ref_min_score": None,
    "ref_max_score": None,
}

_FLOAT_FIELDS = ("observations", "actions", "rewards", "next_observations")
_BOOL_FIELDS = ("terminations", "truncations")
_ARRAY_FIELDS = (*_FLOAT_FIELDS, *_BOOL_FIELDS, "episode_ids")
_EXPECTED_NDIM = {
    "observations": 2,
    "actions": 2,
    "rewards": 1,
    "next_observations": 2,
    "terminations": 1,
    "truncations": 1,
    "episode_ids": 1,
}


@dataclass
class OfflineBuffer:
    """``N`` aligned transitions ``(s, a, r, s', terminated, truncated)`` of an offline dataset.

    Row ``i`` of every array belongs to the same transition. Transitions of one episode are
    consecutive and share an ``episode_ids`` value; episodes appear in collection order.

    Attributes:
        observations: ``(N, obs_dim)`` float32, the state ``s_t`` the action was taken in.
        actions: ``(N, action_dim)`` float32, the action ``a_t`` (in the environment's units).
        rewards: ``(N,)`` float32, the reward ``r_t`` received for ``a_t`` (unscaled, as recorded).
        next_observations: ``(N, obs_dim)`` float32, ``s_{t+1}``.
        terminations: ``(N,)`` bool, the environment terminated after this step: the value of
            ``s_{t+1}`` is zero, do **not** bootstrap.
        truncations: ``(N,)`` bool, the episode was cut here (time limit, or the dataset ends) without
            terminating: **do** bootstrap from ``s_{t+1}``.
        episode_ids: ``(N,)`` int64, one id per episode, shared by its consecutive transitions.
        observation_space: ``Box`` of shape ``(obs_dim,)``; built from the data (``-inf..inf``)
            when not given.
        action_space: ``Box`` of shape ``(action_dim,)``; built from the data when not given:
            ``[-1, 1]`` if every action lies inside it, else the per-dimension data min/max.
        metadata: plain JSON-friendly values; always has ``dataset_ids`` (list of str), ``env_id``
            (Gymnasium id of the evaluation env, or None), ``ref_min_score`` and ``ref_max_score``
            (returns used for D4RL-style normalised scores, or None).

    Arrays are converted to the dtypes above and checked by :meth:`validate` on construction,
    so an ``OfflineBuffer`` that exists is a valid one.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_ids: np.ndarray
    observation_space: spaces.Box | None = None
    action_space: spaces.Box | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, which validate() reports
            for name in _FLOAT_FIELDS:
                setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
        for name in _BOOL_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name)).astype(bool, copy=False))
        self.episode_ids = np.asarray(self.episode_ids).astype(np.int64, copy=False)
        self.metadata = {**DEFAULT_METADATA, **dict(self.metadata)}
        self.metadata["dataset_ids"] = list(self.metadata["dataset_ids"] or [])
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> OfflineBuffer:
        """Check shapes, alignment and finiteness; fill in missing spaces. Returns ``self``.

        Raises:
            DatasetError: an array has the wrong number of dimensions, the arrays disagree on ``N``
                or on ``obs_dim``, ``N == 0``, a float array holds NaN/inf, an episode's transitions
                are not consecutive, or an episode-end flag sits inside an episode.
        """
        for name in _ARRAY_FIELDS:
            array = getattr(self, name)
            if array.ndim != _EXPECTED_NDIM[name]:
                raise DatasetError(
                    f"{name} must have {_EXPECTED_NDIM[name]} dimension(s) but has shape {array.shape}; "
                    "reshape it before building the buffer"
                )
        lengths = {name: len(getattr(self, name)) for name in _ARRAY_FIELDS}
        if len(set(lengths.values())) != 1:
            raise DatasetError(
                f"arrays have different numbers of transitions: {lengths}; every field needs one row per transition"
            )
        if lengths["observations"] == 0:
            raise DatasetError("dataset has no transitions")
        if self.observations.shape[1] != self.next_observations.shape[1]:
            raise DatasetError(
                f"observations have {self.observations.shape[1]} features but next_observations have "
                f"{self.next_observations.shape[1]}"
            )
        for name in _FLOAT_FIELDS:
            bad = ~np.isfinite(getattr(self, name))
            n_bad = int(bad.sum())
            if n_bad:
                bad_rows = bad.reshape(len(bad), -1).any(axis=1)
                raise DatasetError(
                    f"{name} contain {n_bad} NaN/inf values in {int(bad_rows.sum())} transition(s) (first at "
                    f"transition {int(np.argmax(bad_rows))}); clean the dataset or drop those transitions"
                )
        starts = self._episode_starts()
        if len(starts) != len(np.unique(self.episode_ids)):
            raise DatasetError(
                "episode_ids are not consecutive: the transitions of an episode must be contiguous and in order"
            )
        is_last = np.zeros(len(self), dtype=bool)
        is_last[starts[1:] - 1] = True
        is_last[-1] = True
        for name in _BOOL_FIELDS:
            inside = getattr(self, name) & ~is_last
            if inside.any():
                raise DatasetError(
                    f"{name} is set at transition {int(np.argmax(inside))}, which is not the last of its "
                    "episode; give every episode its own episode id"
                )
        if self.observation_space is None:
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.obs_dim,), dtype=np.float32)
        if self.action_space is None:
            self.action_space = _action_space_from_data(self.actions)
        if self.observation_space.shape != (self.obs_dim,) or self.action_space.shape != (self.action_dim,):
            raise DatasetError(
                f"the buffer's spaces {self.observation_space.shape} / {self.action_space.shape} do not "
                f"match its arrays (obs_dim={self.obs_dim}, action_dim={self.action_dim})"
            )
        return self

    def check_compatible(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Raise :class:`SpaceMismatchError` unless an environment's spaces fit this dataset.

        Args:
            observation_space: the evaluation env's observation space; its (flattened) shape must be
                ``(obs_dim,)``.
            action_space: the evaluation env's action space; must be a ``Box`` of shape ``(action_dim,)``.
        """
        if not isinstance(action_space, spaces.Box):
            raise SpaceMismatchError(f"QIPO needs a continuous (Box) action space, the environment has {action_space}")
        env_obs_shape = tuple(observation_space.shape or ())
        if isinstance(observation_space, spaces.Box):
            env_obs_shape = (int(np.prod(env_obs_shape)),)
        if env_obs_shape != (self.obs_dim,):
            raise SpaceMismatchError(
                f"observation shape mismatch: dataset has {(self.obs_dim,)}, environment has "
                f"{tuple(observation_space.shape or ())}; evaluate on the environment the data came from "
                f"(metadata env_id={self.metadata.get('env_id')!r})"
            )
        if tuple(action_space.shape) != (self.action_dim,):
            raise SpaceMismatchError(
                f"action shape mismatch: dataset has {(self.action_dim,)}, environment has "
                f"{tuple(action_space.shape)}; evaluate on the environment the data came from "
                f"(metadata env_id={self.metadata.get('env_id')!r})"
            )

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        """Number of observation features."""
        return int(self.observations.shape[1])

    @property
    def action_dim(self) -> int:
        """Number of action dimensions."""
        return int(self.actions.shape[1])

    @property
    def n_episodes(self) -> int:
        """Number of (possibly partial) episodes."""
        return len(self._episode_starts())

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, in order: ``(n_episodes,)`` float64."""
        return np.add.reduceat(self.rewards.astype(np.float64), self._episode_starts())

    def episode_lengths(self) -> np.ndarray:
        """Number of transitions of each episode, in order: ``(n_episodes,)`` int64."""
        return np.diff(np.append(self._episode_starts(), len(self))).astype(np.int64)

    def _episode_starts(self) -> np.ndarray:
        ids = self.episode_ids
        return np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))

    # ------------------------------------------------------------------ combine
    def replace(self, **changes: Any) -> OfflineBuffer:
        """A new buffer with some fields replaced (arrays not replaced are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def concatenate(cls, buffers: Sequence[OfflineBuffer]) -> OfflineBuffer:
        """Stack buffers one after the other (e.g. D4RL's medium-expert = medium + expert).

        Episode ids of each later buffer are offset so that episodes stay distinct. Metadata:
        ``dataset_ids`` are concatenated; any other key is kept only when every buffer agrees on it
        (so ``env_id`` and the reference scores survive when all parts share them).

        Raises:
            SpaceMismatchError: the buffers have different ``obs_dim`` or ``action_dim``.
            DatasetError: ``buffers`` is empty.
        """
        buffers = list(buffers)
        if not buffers:
            raise DatasetError("cannot concatenate an empty list of buffers")
        first = buffers[0]
        for index, other in enumerate(buffers[1:], start=1):
            if (other.obs_dim, other.action_dim) != (first.obs_dim, first.action_dim):
                raise SpaceMismatchError(
                    f"cannot concatenate buffer {index} (obs_dim={other.obs_dim}, "
                    f"action_dim={other.action_dim}, datasets {other.metadata['dataset_ids']}) with "
                    f"buffer 0 (obs_dim={first.obs_dim}, "
                    f"action_dim={first.action_dim}, datasets {first.metadata['dataset_ids']}): "
                    "only datasets of the same environment can be combined"
                )
        episode_ids, offset = [], 0
        for buffer in buffers:
            # Renumber 0..n_episodes-1 per buffer, then shift past the previous buffers' episodes.
            starts = np.zeros(len(buffer), dtype=np.int64)
            starts[buffer._episode_starts()[1:]] = 1
            episode_ids.append(np.cumsum(starts) + offset)
            offset += buffer.n_episodes
        metadata: dict[str, Any] = {"dataset_ids": [i for b in buffers for i in b.metadata["dataset_ids"]]}
        for key in first.metadata:
            if key != "dataset_ids" and all(_same(b.metadata.get(key), first.metadata[key]) for b in buffers):
                metadata[key] = first.metadata[key]

        def stack(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in buffers])

        return cls(
            observations=stack("observations"),
            actions=stack("actions"),
            rewards=stack("rewards"),
            next_observations=stack("next_observations"),
            terminations=stack("terminations"),
            truncations=stack("truncations"),
            episode_ids=np.concatenate(episode_ids),
            observation_space=_union_box([b.observation_space for b in buffers]),
            action_space=_union_box([b.action_space for b in buffers]),
            metadata=metadata,
        )

    def __repr__(self) -> str:
        return (
            f"OfflineBuffer(n_transitions={len(self)}, n_episodes={self.n_episodes}, obs_dim={self.obs_dim}, "
            f"action_dim={self.action_dim}, dataset_ids={self.metadata['dataset_ids']}, "
            f"env_id={self.metadata['env_id']!r})"
        )


def episode_ids_from_ends(episode_ends: np.ndarray) -> np.ndarray:
    """Episode ids ``(N,)`` int64 from a ``(N,)`` bool array marking each episode's last transition."""
    episode_ends = np.asarray(episode_ends, dtype=bool)
    ids = np.zeros(len(episode_ends), dtype=np.int64)
    ids[1:] = np.cumsum(episode_ends[:-1])
    return ids


def _action_space_from_data(actions: np.ndarray) -> spaces.Box:
    low, high = actions.min(axis=0), actions.max(axis=0)
    if low.min() >= -1.0 and high.max() <= 1.0:
        return spaces.Box(-1.0, 1.0, shape=(actions.shape[1],), dtype=np.float32)
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def _union_box(boxes: list[spaces.Box]) -> spaces.Box:
    low = np.min([b.low for b in boxes], axis=0).astype(np.float32)
    high = np.max([b.high for b in boxes], axis=0).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. numpy arrays: ambiguous truth value
        return False
