"""Observation and reward scalers, fitted on an :class:`OfflineBuffer` and saved as JSON.

Both are plain objects (no ``nn.Module``) whose ``state_dict()`` holds only JSON types (lists,
floats, str, bool), so an agent's save file can store them in its JSON ``data`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.errors import DatasetError, SpaceMismatchError

ArrayOrTensor = TypeVar("ArrayOrTensor")


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def _like(value: Any, array: np.ndarray) -> Any:
    """``array`` as the same kind of object as ``value``: torch tensor on its device/dtype, else numpy."""
    if _is_tensor(value):
        import torch

        return torch.as_tensor(array, dtype=value.dtype, device=value.device)
    return array.astype(value.dtype if value.dtype.kind == "f" else np.float32)


def _as_array_or_tensor(value: Any) -> Any:
    return value if _is_tensor(value) else np.asarray(value)


class ObservationNormalizer:
    """Per-feature standardisation ``obs' = (obs - mean) / std``.

    ``mean`` and ``std`` are ``(obs_dim,)`` arrays in the observation's own units, fitted on the
    dataset's observations; ``std`` is floored at ``std_floor`` so that constant features
    (e.g. a fixed goal coordinate) do not blow up. A disabled normaliser (``enabled=False``, or
    :meth:`identity`) returns observations unchanged.

    Args:
        enabled: when False, :meth:`transform` is the identity and :meth:`fit` does nothing.
        std_floor: smallest standard deviation used, in observation units.
    """

    def __init__(self, enabled: bool = True, std_floor: float = 1e-3) -> None:
        self.enabled = bool(enabled)
        self.std_floor = float(std_floor)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    @classmethod
    def identity(cls) -> ObservationNormalizer:
        """A normaliser that leaves observations unchanged."""
        return cls(enabled=False)

    @property
    def is_identity(self) -> bool:
        """True when :meth:`transform` returns its input unchanged."""
        return not self.enabled

    @property
    def fitted(self) -> bool:
        return self.is_identity or self.mean is not None

    def fit(self, data: OfflineBuffer | ArrayLike) -> ObservationNormalizer:
        """Fit ``mean``/``std`` on ``data``: a buffer (its ``observations``) or an ``(N, obs_dim)`` array."""
        if not self.enabled:
            return self
        observations = data.observations if isinstance(data, OfflineBuffer) else np.asarray(data)
        if observations.ndim != 2 or len(observations) == 0:
            raise DatasetError(f"fit needs a non-empty (N, obs_dim) array, got shape {observations.shape}")
        observations = observations.astype(np.float64)
        self.mean = observations.mean(axis=0)
        self.std = np.maximum(observations.std(axis=0), self.std_floor)
        return self

    def transform(self, observations: ArrayOrTensor) -> ArrayOrTensor:
        """Normalise ``(..., obs_dim)`` observations; numpy in -> numpy out, torch in -> torch out
        (same device and dtype)."""
        if self.is_identity:
            return observations
        observations = _as_array_or_tensor(observations)
        mean, std = self._checked(observations)
        return (observations - _like(observations, mean)) / _like(observations, std)

    def inverse_transform(self, observations: ArrayOrTensor) -> ArrayOrTensor:
        """Undo :meth:`transform`: ``obs = obs' * std + mean``."""
        if self.is_identity:
            return observations
        observations = _as_array_or_tensor(observations)
        mean, std = self._checked(observations)
        return observations * _like(observations, std) + _like(observations, mean)

    def _checked(self, observations: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.std is None:
            raise RuntimeError("ObservationNormalizer is not fitted; call fit(buffer) or load_state_dict() first")
        if observations.shape[-1] != self.mean.shape[0]:
            raise SpaceMismatchError(
                f"observations have {observations.shape[-1]} features, the normaliser was fitted on "
                f"{self.mean.shape[0]}"
            )
        return self.mean, self.std

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: ``enabled``, ``std_floor``, ``mean`` and ``std`` (lists or None)."""
        return {
            "enabled": self.enabled,
            "std_floor": self.std_floor,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> ObservationNormalizer:
        """Restore from :meth:`state_dict` output (e.g. after a JSON round trip). Returns ``self``."""
        _check_keys(state, {"enabled", "std_floor", "mean", "std"}, type(self).__name__)
        self.enabled = bool(state["enabled"])
        self.std_floor = float(state["std_floor"])
        self.mean = None if state["mean"] is None else np.asarray(state["mean"], dtype=np.float64)
        self.std = None if state["std"] is None else np.asarray(state["std"], dtype=np.float64)
        return self

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ObservationNormalizer:
        return cls().load_state_dict(state)

    def __repr__(self) -> str:
        dim = None if self.mean is None else len(self.mean)
        return f"ObservationNormalizer(enabled={self.enabled}, obs_dim={dim}, std_floor={self.std_floor})"


class RewardScaler:
    """Affine reward scaling ``r' = r * scale + shift``, as in QGPO's data preparation.

    Modes:
        ``"none"``: ``r' = r``.
        ``"locomotion"``: ``r' = r * 1000 / (max episode return - min episode return)``, the returns
            measured on the training buffer (undiscounted sums over its episodes).
        ``"antmaze"``: ``r' = r - 1`` (the sparse 0/1 goal reward becomes -1 per step until the goal).

    Rewards are in the environment's units before, and in these scaled units after; evaluation
    returns must be computed with unscaled environment rewards.
    """

    MODES = ("none", "locomotion", "antmaze")

    def __init__(self, mode: str = "none") -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown reward scaling mode {mode!r}; choose one of {self.MODES}")
        self.mode = mode
        self.scale: float | None = 1.0 if mode != "locomotion" else None
        self.shift = -1.0 if mode == "antmaze" else 0.0

    @property
    def fitted(self) -> bool:
        return self.scale is not None

    def fit(self, buffer: OfflineBuffer) -> RewardScaler:
        """Measure what the mode needs from ``buffer`` (only ``"locomotion"`` needs anything)."""
        if self.mode == "locomotion":
            returns = buffer.episode_returns()
            spread = float(returns.max() - returns.min())
            if not spread > 0:
                raise DatasetError(
                    f"locomotion reward scaling needs episodes with different returns, all {len(returns)} "
                    f"episode(s) return {float(returns[0]):.6g}; use reward scaling 'none'"
                )
            self.scale = 1000.0 / spread
        return self

    def transform(self, rewards: ArrayOrTensor) -> ArrayOrTensor:
        """Scale a rewards array or tensor of any shape."""
        if self.scale is None:
            raise RuntimeError("RewardScaler('locomotion') is not fitted; call fit(buffer) or load_state_dict() first")
        if self.mode == "none":
            return rewards
        return _as_array_or_tensor(rewards) * self.scale + self.shift

    def apply(self, buffer: OfflineBuffer) -> OfflineBuffer:
        """A new buffer with scaled rewards (fitted on ``buffer`` first if needed); input unchanged."""
        if not self.fitted:
            self.fit(buffer)
        rewards = np.asarray(self.transform(buffer.rewards), dtype=np.float32)
        return buffer.replace(rewards=rewards, metadata={**buffer.metadata, "reward_scaling": self.state_dict()})

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: ``mode``, ``scale`` (float or None) and ``shift``."""
        return {"mode": self.mode, "scale": self.scale, "shift": self.shift}

    def load_state_dict(self, state: Mapping[str, Any]) -> RewardScaler:
        """Restore from :meth:`state_dict` output. Returns ``self``."""
        _check_keys(state, {"mode", "scale", "shift"}, type(self).__name__)
        if state["mode"] not in self.MODES:
            raise ValueError(f"unknown reward scaling mode {state['mode']!r}; choose one of {self.MODES}")
        self.mode = str(state["mode"])
        self.scale = None if state["scale"] is None else float(state["scale"])
        self.shift = float(state["shift"])
        return self

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> RewardScaler:
        return cls().load_state_dict(state)

    def __repr__(self) -> str:
        return f"RewardScaler(mode={self.mode!r}, scale={self.scale}, shift={self.shift})"


def _check_keys(state: Mapping[str, Any], expected: set[str], owner: str) -> None:
    missing, unknown = expected - set(state), set(state) - expected
    if missing or unknown:
        raise ValueError(
            f"{owner} state has missing keys {sorted(missing)} and unknown keys {sorted(unknown)}; "
            f"expected exactly {sorted(expected)}"
        )
