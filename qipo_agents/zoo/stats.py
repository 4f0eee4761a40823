"""Aggregates over seeds, as offline RL results are read: the mean with a bootstrap 95% confidence
interval, and the interquartile mean (IQM) that ``rliable`` recommends for few runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50% of ``values`` (``scipy.stats.trim_mean(values, 0.25)``, as ``rliable``):
    ``floor(n / 4)`` values are cut from each end, so up to 3 runs it is the plain mean."""
    ordered = np.sort(np.asarray(values, dtype=float))
    cut = int(0.25 * len(ordered))
    return float(ordered[cut : len(ordered) - cut].mean())


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded, so it is reproducible)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class SeedAggregate:
    """Scores of one task over seeds: one value per seed (each a mean over evaluation episodes)."""

    n_seeds: int
    mean: float
    std: float
    sem: float
    ci95: tuple[float, float]
    iqm: float

    @classmethod
    def of(cls, values: np.ndarray) -> SeedAggregate:
        values = np.asarray(values, dtype=float)
        if values.size == 0:
            raise ValueError("no values to aggregate")
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        return cls(
            n_seeds=len(values),
            mean=float(values.mean()),
            std=std,
            sem=std / np.sqrt(len(values)),
            ci95=bootstrap_ci(values),
            iqm=interquartile_mean(values),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95"] = list(self.ci95)
        return data

    def __str__(self) -> str:
        low, high = self.ci95
        return f"{self.mean:.1f} (95% CI {low:.1f} to {high:.1f}, IQM {self.iqm:.1f}) over {self.n_seeds} seeds"
