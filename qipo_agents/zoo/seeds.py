"""``qipo-zoo train TASK --seeds 0 1 2 --n-jobs K``: one ordinary run per seed, K processes at a
time, and a summary over seeds.

Each seed is the command ``qipo-zoo train TASK ... --seed S`` in its own process (its own run
folder, exactly the run that command gives alone), with ``OMP_NUM_THREADS`` set so the K
processes share the machine's cores. Its output goes to ``train.log`` in its run folder. When all
have finished, ``<log_folder>/<algo>/<task>_seeds_<n>.json`` holds each seed's final evaluation and
their aggregate (:class:`~qipo_agents.zoo.stats.SeedAggregate`). Ctrl-C reaches every run (one
process group); a SIGTERM sent to this command alone is passed on to every run; either way each
run saves its checkpoint and this command waits for them before it stops.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qipo_agents.common.atomic import write_text_atomic
from qipo_agents.common.interrupts import TrainingSignal, defer_interrupts
from qipo_agents.errors import ConfigError
from qipo_agents.zoo.stats import SeedAggregate

RUN_LOG_FILE = "train.log"
Echo = Callable[[str], Any]


@dataclass
class SeedRun:
    seed: int
    returncode: int
    log: Path
    result: dict[str, Any] | None  # the --result-file of the run, None if it did not finish


def _seed_command(train_args: Sequence[str], seed: int, result_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qipo_agents.zoo.cli",
        *train_args,
        "--seed",
        str(seed),
        "--no-progress",
        "--result-file",
        str(result_file),
    ]


def train_seeds(
    train_args: Sequence[str],
    seeds: Sequence[int],
    n_jobs: int,
    log_folder: str | Path,
    algo: str,
    task: str,
    echo: Echo = print,
) -> Path:
    """Run ``qipo-zoo <train_args> --seed S`` for every seed, ``n_jobs`` at a time; returns the summary path.

    Args:
        train_args: the ``train`` command without ``--seed`` (``["train", TASK, "--algo", ...]``).
    """
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds lists a seed twice: {' '.join(map(str, seeds))}")
    folder = Path(log_folder) / algo
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{task}_seeds_", dir=folder))
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // n_jobs)))
    pending, running, done = list(seeds), {}, []
    echo(f"training {task} with seeds {' '.join(map(str, seeds))}, {n_jobs} at a time")
    try:
        with defer_interrupts() as interrupts:
            while pending or running:
                interrupts.raise_pending()  # a Ctrl-C or SIGTERM received since the last poll
                while pending and len(running) < n_jobs:
                    seed = pending.pop(0)
                    log = scratch / f"seed{seed}.log"
                    command = _seed_command(train_args, seed, scratch / f"seed{seed}.json")
                    with open(log, "w") as out:
                        out.write(shlex.join(["qipo-zoo", *command[3:]]) + "\n")  # the command as a user types it
                        running[seed] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
                for seed, process in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[seed]
                    done.append(_collect(seed, process.returncode, scratch, folder / f"{task}_seed{seed}.log", echo))
                time.sleep(0.2)
    except KeyboardInterrupt as stop:
        if isinstance(stop, TrainingSignal) and stop.signum != signal.SIGINT:
            for process in running.values():  # SIGTERM reached this process only: pass it on
                process.send_signal(stop.signum)
        for process in running.values():  # Ctrl-C reached the whole process group: each run saves its checkpoint
            process.wait()
        echo(
            f"interrupted: each unfinished seed saved a checkpoint; its log ({folder}/{task}_seed<S>.log) says how to resume it"
        )
        raise
    finally:
        for leftover in scratch.iterdir():  # interrupted seeds: their logs stay beside the runs
            if leftover.suffix == ".log":
                leftover.replace(folder / f"{task}_{leftover.name}")
            else:
                leftover.unlink()
        scratch.rmdir()
    return write_summary(done, folder, task, algo, echo)


def _collect(seed: int, returncode: int, scratch: Path, failed_log: Path, echo: Echo) -> SeedRun:
    """The finished seed's result; its log goes to its run folder, or to ``failed_log`` if it made none."""
    result_file, log = scratch / f"seed{seed}.json", scratch / f"seed{seed}.log"
    result = json.loads(result_file.read_text()) if returncode == 0 and result_file.exists() else None
    result_file.unlink(missing_ok=True)
    if result is not None:
        log = log.replace(Path(result["run_dir"]) / RUN_LOG_FILE)
        final = result.get("final") or {}
        score = final.get("normalized_mean", final.get("mean_return"))
        echo(f"seed {seed}: {result['run_dir']} final {score:.1f}" if score is not None else f"seed {seed}: done")
    else:
        log = log.replace(failed_log)
        tail = log.read_text().strip().splitlines()[-2:]
        echo(f"seed {seed} failed (exit {returncode}), log {log}: " + " / ".join(tail))
    return SeedRun(seed, returncode, log, result)


def write_summary(runs: list[SeedRun], folder: Path, task: str, algo: str, echo: Echo = print) -> Path:
    """``<folder>/<task>_seeds_<n>.json`` (next free ``n``): every seed's final evaluation and the aggregate."""
    finished = sorted((r for r in runs if r.result is not None), key=lambda r: r.seed)
    scores = [
        r.result["final"]["normalized_mean"]
        for r in finished
        if r.result.get("final") and r.result["final"].get("normalized_mean") is not None
    ]
    aggregate = SeedAggregate.of(np.array(scores)) if scores else None
    summary = {
        "task": task,
        "algo": algo,
        "seeds": sorted(r.seed for r in runs),
        "runs": [{"seed": r.seed, "run_dir": r.result["run_dir"], "final": r.result.get("final")} for r in finished],
        "failed": [{"seed": r.seed, "exit_code": r.returncode, "log": str(r.log)} for r in runs if r.result is None],
        "normalized_score": aggregate.to_dict() if aggregate else None,
    }
    n = 1
    while (folder / f"{task}_seeds_{n}.json").exists():
        n += 1
    path = write_text_atomic(folder / f"{task}_seeds_{n}.json", json.dumps(summary, indent=2) + "\n")
    if aggregate:
        echo(f"D4RL-normalised score: {aggregate}")
    echo(f"summary: {path}")
    return path
