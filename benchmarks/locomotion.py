"""Per-task scores of the zoo's CPU recipe beside d3rlpy's baselines: the locomotion results table.

QIPO runs are ``qipo-zoo train`` run folders (``--runs``; each holds ``config.yml``,
``evaluations.jsonl`` and ``final_eval.json``); the baselines are ``quality.py --out`` files
(``--baselines``) trained on the same data with the same gradient budget. For every task the
script reports the final evaluation (mean ± std over seeds, and each seed), the run's own
behaviour model (its last evaluation before the refinement starts), gradient steps and wall
time, and checks the targets: QIPOFlow at or above the best peer on every task, at least 1.15x
the best peer averaged over tasks, and never below its own behaviour model by more than one
standard error::

    python benchmarks/locomotion.py --runs logs/flow/local-* logs/diffusion/local-* \\
        --baselines results/baselines_*.json --out docs/results/locomotion.json --plot docs/locomotion.png

``--final-eval NAME`` scores each run by another file in its folder instead of the training's own
``final_eval.json``: a ``qipo-zoo eval RUN --out RUN/NAME`` evaluation of the same agent (another
acting rule, say).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import bench_utils as bu
import numpy as np
import yaml

LABELS = {"flow": "QIPOFlow", "diffusion": "QIPODiffusion", "iql": "IQL", "td3bc": "TD3+BC", "bc": "BC"}
PEERS = ("iql", "td3bc", "bc")


def read_run(run_dir: Path, final_eval: str = "final_eval.json") -> dict[str, Any] | None:
    """One finished zoo run: task, algo, seed, final and pre-refinement scores, steps, wall time.

    ``final_eval`` names the file in the run folder that holds the final score (the training's
    own ``final_eval.json``, or a ``qipo-zoo eval --out`` file of the same agent); the wall time is
    always the training's.
    """
    final_path = run_dir / "final_eval.json"
    if not final_path.is_file():
        return None
    scored_path = run_dir / final_eval
    if not scored_path.is_file():
        raise SystemExit(f"{scored_path} does not exist: run `qipo-zoo eval {run_dir} --out {scored_path}` first")
    final = json.loads(scored_path.read_text())
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    hyper = config["hyperparams"]
    refinement_starts = hyper["behavior_steps"] + hyper["critic_steps"]
    before = [
        json.loads(line)
        for line in (run_dir / "evaluations.jsonl").read_text().splitlines()
        if line.strip() and json.loads(line)["timesteps"] <= refinement_starts
    ]
    started = (run_dir / "command.txt").stat().st_mtime
    return {
        "run": str(run_dir),
        "task": final["task"],
        "method": final["algo"],
        "seed": final["seed"],
        "score": final["normalized_mean"],
        "score_std_over_episodes": final["normalized_std"],
        "deterministic": final["deterministic"],
        "behavior_score": before[-1]["normalized_mean"] if before else None,
        "behavior_episodes": len(before[-1]["returns"]) if before else 0,
        "steps": final["num_timesteps"],
        # a run started from a checkpoint (train --start-from) trained only its last phases
        "wall_s": None if config.get("start_from") else final_path.stat().st_mtime - started,
    }


def read_baselines(path: Path, task: str) -> list[dict[str, Any]]:
    payload = json.loads(path.read_text())
    return [
        {
            "run": str(path),
            "task": task,
            "method": run["method"],
            "seed": run["seed"],
            "score": run["normalized_score"],
            "steps": run["steps"],
            "wall_s": run["train_s"] + run["eval_s"],
        }
        for run in payload["runs"]
        if run["method"] in PEERS
    ]


def read_refinement(path: Path) -> list[dict[str, Any]]:
    """The last setting of a ``refinement.py --out`` file as a finished run: its first measurement
    is the checkpoint's behaviour model, its last the refined policy (``--seed 0`` and one env at a
    time make it the zoo run's final evaluation)."""
    payload = json.loads(path.read_text())
    checkpoint = payload["checkpoint"]
    records = payload["results"][-1]["records"]
    return [
        {
            "run": str(path),
            "task": task_of_datasets(checkpoint["dataset_ids"]),
            "method": "flow" if checkpoint["class"] == "QIPOFlow" else "diffusion",
            "seed": checkpoint["seed"],
            "score": records[-1]["score"],
            "score_std_over_episodes": records[-1]["score_std"],
            "behavior_score": records[0]["score"],
            "behavior_episodes": payload["args"]["episodes"],
            "steps": checkpoint["num_timesteps"] + records[-1]["refinement_steps"],
            "wall_s": records[-1]["train_s"],
        }
    ]


def task_of_baselines(path: Path) -> str:
    """The zoo task whose datasets a quality.py file was trained on (local-<env>-<kind>)."""
    return task_of_datasets(json.loads(path.read_text())["settings"]["datasets"])


def task_of_datasets(datasets: list[str]) -> str:
    """``local-<env>-<kind>`` for ``local/<env>/<kind>-v0`` ids (several kinds: medium-expert)."""
    env = datasets[0].split("/")[1]
    kinds = [d.split("/")[2].rsplit("-v", 1)[0] for d in datasets]
    return f"local-{env}-{'-'.join(kinds)}"


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[record["task"]][record["method"]].append(record)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for task, methods in sorted(grouped.items()):
        summary[task] = {}
        for method, runs in methods.items():
            runs = sorted(runs, key=lambda r: r["seed"])
            scores = np.array([r["score"] for r in runs])
            entry = {
                "mean": float(scores.mean()),
                "std": float(scores.std()),
                "sem": float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else None,
                "seeds": [r["seed"] for r in runs],
                "scores": scores.tolist(),
                "steps": runs[0]["steps"],
                "wall_s_median": _median([r["wall_s"] for r in runs if r["wall_s"] is not None]),
            }
            behaviour = [r.get("behavior_score") for r in runs]
            if all(b is not None for b in behaviour) and method in ("flow", "diffusion"):
                gains = np.array(scores) - np.array(behaviour)
                entry["behavior_scores"] = behaviour
                entry["gain_over_behavior"] = float(gains.mean())
                # one standard error: over seeds when there are several, else over the final's episodes
                entry["gain_se"] = (
                    float(gains.std(ddof=1) / np.sqrt(len(gains)))
                    if len(gains) > 1
                    else float(runs[0]["score_std_over_episodes"] / np.sqrt(10))
                )
            summary[task][method] = entry
    return summary


def targets(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The QIPOFlow targets over the tasks that have both QIPOFlow and at least one peer."""
    rows, ratios = {}, []
    for task, methods in summary.items():
        if "flow" not in methods:
            continue
        flow = methods["flow"]
        peers = {m: methods[m]["mean"] for m in PEERS if m in methods}
        best_peer = max(peers.items(), key=lambda kv: kv[1]) if peers else None
        row: dict[str, Any] = {"flow": flow["mean"], "best_peer": best_peer}
        if best_peer:
            row["at_or_above_best_peer"] = flow["mean"] >= best_peer[1]
            ratios.append(flow["mean"] / best_peer[1])
        if "gain_over_behavior" in flow:
            row["not_below_behavior"] = flow["gain_over_behavior"] >= -flow["gain_se"]
        rows[task] = row
    return {"per_task": rows, "mean_ratio_to_best_peer": float(np.mean(ratios)) if ratios else None}


def print_tables(summary, checks) -> None:
    methods = [m for m in LABELS if any(m in per_task for per_task in summary.values())]
    headers = ["task", *(LABELS[m] for m in methods), "QIPOFlow before refinement", "steps"]
    rows = []
    for task, per_task in summary.items():
        row = [task]
        for method in methods:
            entry = per_task.get(method)
            if entry is None:
                row.append("")
                continue
            seeds = ", ".join(f"{s:.1f}" for s in entry["scores"])
            row.append(f"{entry['mean']:.1f} ± {entry['std']:.1f} ({seeds})" if len(entry["scores"]) > 1 else seeds)
        flow = per_task.get("flow", {})
        row.append(", ".join(f"{b:.1f}" for b in flow.get("behavior_scores", [])))
        row.append(str(next(iter(per_task.values()))["steps"]))
        rows.append(row)
    print(bu.markdown_table(headers, rows))
    print()
    check_rows = [
        [
            task,
            f"{row['flow']:.1f}",
            f"{LABELS[row['best_peer'][0]]} {row['best_peer'][1]:.1f}" if row.get("best_peer") else "",
            {True: "yes", False: "no", None: ""}[row.get("at_or_above_best_peer")],
            {True: "yes", False: "no", None: ""}[row.get("not_below_behavior")],
        ]
        for task, row in checks["per_task"].items()
    ]
    print(
        bu.markdown_table(
            ["task", "QIPOFlow", "best peer", ">= best peer", "not below its behaviour model"], check_rows
        )
    )
    if checks["mean_ratio_to_best_peer"] is not None:
        print(f"\nQIPOFlow / best peer, averaged over tasks: {checks['mean_ratio_to_best_peer']:.2f}x")


def plot(summary, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    methods = [m for m in LABELS if any(m in per_task for per_task in summary.values())]
    series = [("before", "QIPOFlow before the refinement")] + [(m, LABELS[m]) for m in methods]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks)), 4))
    for i, (key, label) in enumerate(series):
        xs = [t + (i - (len(series) - 1) / 2) * width for t in range(len(tasks))]
        if key == "before":
            means = [np.mean(summary[task].get("flow", {}).get("behavior_scores", [np.nan])) for task in tasks]
            ax.bar(xs, means, width, label=label, color="lightgray", hatch="//")
            continue
        means = [summary[task].get(key, {}).get("mean", np.nan) for task in tasks]
        stds = [summary[task].get(key, {}).get("std", 0.0) for task in tasks]
        ax.bar(xs, means, width, yerr=stds, label=label, capsize=2)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([t.removeprefix("local-") for t in tasks], rotation=20)
    ax.set_ylabel("D4RL-normalised score (final, 10 episodes)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=bu.HelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], help="qipo-zoo run folders")
    parser.add_argument("--baselines", nargs="*", default=[], help="quality.py --out files of the d3rlpy baselines")
    parser.add_argument(
        "--refinements", nargs="*", default=[], help="refinement.py --out files (final refinements from checkpoints)"
    )
    parser.add_argument(
        "--final-eval",
        default="final_eval.json",
        help="the file in each run folder that holds its final score (e.g. a `qipo-zoo eval --out` file)",
    )
    parser.add_argument("--out", help="write the table's data as JSON here")
    parser.add_argument("--plot", help="write a PNG bar chart here")
    args = parser.parse_args(argv)
    records = [r for r in (read_run(Path(p), args.final_eval) for p in args.runs) if r is not None]
    for path in map(Path, args.baselines):
        records += read_baselines(path, task_of_baselines(path))
    for path in map(Path, args.refinements):
        records += read_refinement(path)
    summary = summarise(records)
    checks = targets(summary)
    print_tables(summary, checks)
    payload = {"benchmark": "locomotion", "summary": summary, "targets": checks, "records": records}
    if args.out:
        bu.write_json(args.out, payload)
    if args.plot:
        plot(summary, args.plot)
    return payload


if __name__ == "__main__":
    main()
