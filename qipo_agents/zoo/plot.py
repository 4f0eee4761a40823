"""``qipo-zoo plot``: learning curves and final scores of one or several runs (or of seeds
aggregated per task and agent), to a PNG."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from qipo_agents.errors import ConfigError
from qipo_agents.zoo.stats import SeedAggregate, bootstrap_ci
from qipo_agents.zoo.train import CONFIG_FILE, EVALUATIONS_FILE, FINAL_EVAL_FILE


@dataclass
class Curve:
    """Evaluations of one run: steps, and either normalised scores or mean returns."""

    label: str
    steps: list[int]
    values: list[float]
    normalized: bool
    final: float | None  # final evaluation (same unit as values), None if the run has none
    final_std: float | None


def _from_evaluations(path: Path) -> tuple[list[int], list[float | None], list[float]]:
    steps, normalized, returns = [], [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        steps.append(int(record["timesteps"]))
        normalized.append(record.get("normalized_mean"))
        returns.append(float(record["mean_return"]))
    return steps, normalized, returns


def _from_progress(run_dir: Path) -> tuple[list[int], list[float | None], list[float]]:
    """Evaluation rows of ``progress.csv`` (and the earlier parts of a resumed run, ``progress.<k>.csv``)."""
    parts = sorted(
        run_dir.glob("progress.*.csv"), key=lambda p: int(p.suffixes[0][1:]) if p.suffixes[0][1:].isdigit() else 0
    )
    steps, normalized, returns = [], [], []
    last_step = 0
    for path in [*parts, run_dir / "progress.csv"]:
        if not path.exists():
            continue
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                if row.get("time/total_timesteps"):
                    last_step = int(float(row["time/total_timesteps"]))
                if not row.get("eval/mean_reward"):
                    continue
                # an evaluation row carries no step count: it belongs to the last dump's step
                steps.append(last_step)
                returns.append(float(row["eval/mean_reward"]))
                score = row.get("eval/normalized_score")
                normalized.append(float(score) if score else None)
    return steps, normalized, returns


def load_curve(run_dir: str | Path, normalized: bool = True) -> Curve:
    """A run's evaluations: normalised scores when every evaluation has one and ``normalized``, else returns."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a run folder")
    evaluations = run_dir / EVALUATIONS_FILE
    steps, normalized_values, returns = (
        _from_evaluations(evaluations) if evaluations.exists() else _from_progress(run_dir)
    )
    final_path = run_dir / FINAL_EVAL_FILE
    final = json.loads(final_path.read_text()) if final_path.exists() else None
    use_normalized = normalized and (
        (bool(steps) and all(v is not None for v in normalized_values))
        or (not steps and final is not None and final.get("normalized_mean") is not None)
    )
    if not steps and final is None:
        raise ConfigError(f"{run_dir} has no evaluations yet ({EVALUATIONS_FILE}, progress.csv or {FINAL_EVAL_FILE})")
    values = [float(v) for v in normalized_values] if use_normalized else returns
    final_value = final_std = None
    if final is not None:
        key = "normalized" if use_normalized else None
        final_value = final.get(f"{key}_mean") if key else final.get("mean_return")
        final_std = final.get(f"{key}_std") if key else final.get("std_return")
    label = f"{run_dir.parent.name}/{run_dir.name}" if run_dir.parent.name else run_dir.name
    return Curve(label, steps, values, use_normalized, final_value, final_std)


@dataclass
class SeedGroup:
    """Runs of one task and agent over seeds: their curves at the steps every run evaluated."""

    label: str
    steps: list[int]
    values: np.ndarray  # (n_runs, n_steps)
    finals: np.ndarray  # (n_runs,) each run's final evaluation (its last evaluation if it has none)


def _run_key(run_dir: Path) -> str:
    """``algo/task`` of a run folder (from its config.yml), the key runs are grouped by over seeds."""
    config = run_dir / CONFIG_FILE
    if config.is_file():
        data = yaml.safe_load(config.read_text()) or {}
        if data.get("task") and data.get("algo"):
            return f"{data['algo']}/{data['task']}"
    return f"{run_dir.parent.name}/{run_dir.name.rsplit('_', 1)[0]}"


def group_over_seeds(run_dirs: list[Path], curves: list[Curve]) -> list[SeedGroup]:
    groups: dict[str, list[Curve]] = {}
    for run_dir, curve in zip(run_dirs, curves):
        groups.setdefault(_run_key(Path(run_dir)), []).append(curve)
    result = []
    for key, members in groups.items():
        common = sorted(set.intersection(*(set(c.steps) for c in members)))
        values = np.array([[c.values[c.steps.index(step)] for step in common] for c in members]).reshape(
            len(members), len(common)
        )
        finals = np.array([c.final if c.final is not None else (c.values[-1] if c.values else np.nan) for c in members])
        result.append(SeedGroup(f"{key} ({len(members)} runs)", common, values, finals))
    return result


def plot_runs(run_dirs: list[str | Path], out: str | Path, aggregate: bool = False) -> Path:
    """Learning curves (left) and final scores (right) of ``run_dirs``, written to ``out`` (PNG).

    With ``aggregate``, runs of the same task and agent (seeds) are drawn as one: the mean curve
    with its bootstrap 95% confidence band at the steps every run evaluated, and the mean final
    score with its 95% interval (the interquartile mean is marked as well).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [load_curve(d) for d in run_dirs]
    normalized = all(c.normalized for c in curves)
    if not normalized:  # one unit for every run: returns when some run has no reference scores
        curves = [load_curve(d, normalized=False) for d in run_dirs]
    unit = "D4RL-normalised score" if normalized else "mean return"

    fig, (ax_curve, ax_final) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    if aggregate:
        groups = group_over_seeds([Path(d) for d in run_dirs], curves)
        labels, heights, errors, iqms = [], [], [[], []], []
        for index, group in enumerate(groups):
            color = f"C{index % 10}"
            if group.steps:
                mean = group.values.mean(axis=0)
                bands = np.array([bootstrap_ci(column) for column in group.values.T])
                ax_curve.plot(group.steps, mean, marker="o", markersize=3, color=color, label=group.label)
                ax_curve.fill_between(group.steps, bands[:, 0], bands[:, 1], color=color, alpha=0.2)
            finals = group.finals[np.isfinite(group.finals)]
            stats = SeedAggregate.of(finals) if finals.size else None
            labels.append(group.label)
            heights.append(stats.mean if stats else math.nan)
            errors[0].append(stats.mean - stats.ci95[0] if stats else 0.0)
            errors[1].append(stats.ci95[1] - stats.mean if stats else 0.0)
            iqms.append(stats.iqm if stats else math.nan)
        positions = list(range(len(groups)))
        ax_final.bar(positions, heights, yerr=errors, capsize=4, color=[f"C{i % 10}" for i in positions])
        ax_final.scatter(positions, iqms, marker="D", color="black", zorder=3, label="IQM")
        ax_final.legend(fontsize=8)
        ax_final.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
        ax_final.set_title("final evaluation (mean and 95% CI over runs)")
        ax_curve.set_title("evaluations during training (mean and 95% CI over runs)")
    else:
        for curve in curves:
            if curve.steps:
                ax_curve.plot(curve.steps, curve.values, marker="o", markersize=3, label=curve.label)
        finals = [
            (c.label, c.final if c.final is not None else (c.values[-1] if c.values else math.nan), c.final_std)
            for c in curves
        ]
        positions = list(range(len(finals)))
        ax_final.bar(
            positions,
            [f[1] for f in finals],
            yerr=[f[2] or 0.0 for f in finals],
            capsize=4,
            color=[f"C{i % 10}" for i in positions],
        )
        ax_final.set_xticks(positions, [f[0] for f in finals], rotation=30, ha="right", fontsize=8)
        ax_final.set_title("final evaluation (mean ± std over episodes)")
        ax_curve.set_title("evaluations during training")
    ax_curve.ticklabel_format(axis="y", useOffset=False)
    ax_curve.set_xlabel("gradient steps")
    ax_curve.set_ylabel(unit)
    ax_curve.grid(alpha=0.3)
    if ax_curve.get_legend_handles_labels()[0]:
        ax_curve.legend(fontsize=8)
    ax_final.set_ylabel(unit)
    ax_final.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
