"""Beyond one process: `train --seeds` with a summary and an aggregate plot, and `tune` on Optuna's
shared storage (two workers on one journal file, pruning, retraining a trial, clear errors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from qipo_agents.qipo.algorithm import QIPO
from qipo_agents.zoo.plot import load_curve
from qipo_agents.zoo.seeds import train_seeds
from qipo_agents.zoo.tune import load_study, open_storage

from .conftest import TINY, bar_container, invoke, train_args

SPACE = (
    "beta: {type: float, low: 0.5, high: 5.0, log: true}\n"
    "include_dataset_action: {type: categorical, choices: [true, false]}\n"
)


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yml"
    path.write_text(SPACE)
    return path


def tune_args(config: Path, storage: str, study: str, space: Path, logs: Path, *extra: str) -> list[str]:
    return [
        "tune",
        "tiny-hopper",
        "--config",
        str(config),
        "--storage",
        storage,
        "--study-name",
        study,
        "--search-space",
        str(space),
        "--device",
        "cpu",
        "--log-folder",
        str(logs),
        *extra,
        "--hyperparams",
        *TINY,
    ]


def test_seeds_write_one_run_each_a_summary_and_an_aggregate_plot(tiny_task_file, tmp_path, saved_figures):
    logs = tmp_path / "logs"
    result = invoke(*train_args("tiny-hopper", logs, "--config", tiny_task_file, "--seeds", "3", "5", "--n-jobs", "2"))
    summary_path = logs / "flow" / "tiny-hopper_seeds_1.json"
    assert f"summary: {summary_path}" in result.output
    summary = json.loads(summary_path.read_text())
    assert summary["seeds"] == [3, 5] and not summary["failed"]
    runs = {run["seed"]: Path(run["run_dir"]) for run in summary["runs"]}
    assert sorted(runs) == [3, 5]
    scores = []
    for seed, run_dir in runs.items():
        final = json.loads((run_dir / "final_eval.json").read_text())
        assert final["seed"] == seed and (run_dir / "train.log").is_file()
        assert f"--seed {seed}" in (run_dir / "command.txt").read_text()
        scores.append(final["normalized_mean"])
    aggregate = summary["normalized_score"]
    assert aggregate["n_seeds"] == 2 and aggregate["mean"] == pytest.approx(np.mean(scores))
    assert aggregate["ci95"][0] <= aggregate["mean"] <= aggregate["ci95"][1]

    invoke("plot", "--aggregate", *runs.values(), "--out", tmp_path / "seeds.png")
    (figure,) = saved_figures
    curves_axes, finals_axes = figure.axes
    label = "flow/tiny-hopper (2 runs)"
    # left: the seeds' mean learning curve inside its confidence band
    curves = [load_curve(run_dir) for run_dir in runs.values()]
    assert curves[0].steps == curves[1].steps == [50, 100]
    (line,) = curves_axes.get_lines()
    assert line.get_label() == label and list(line.get_xdata()) == [50, 100]
    mean_curve = np.mean([curve.values for curve in curves], axis=0)
    np.testing.assert_allclose(line.get_ydata(), mean_curve)
    (band,) = curves_axes.collections
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert low <= mean_curve.min() and mean_curve.max() <= high
    # right: one bar, the mean final score over seeds with its 95% interval, and the IQM marked
    assert [text.get_text() for text in finals_axes.get_xticklabels()] == [label]
    bars = bar_container(finals_axes)
    assert [bar.get_height() for bar in bars] == [pytest.approx(aggregate["mean"])]
    (error_bar,) = bars.errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose(error_bar[:, 1], aggregate["ci95"])
    iqm = next(collection for collection in finals_axes.collections if collection.get_label() == "IQM")
    assert iqm.get_offsets()[0][1] == pytest.approx(aggregate["iqm"])

    result = invoke(
        *train_args("tiny-hopper", logs, "--config", tiny_task_file, "--seeds", "1", "--seed", "2"), expect=2
    )
    assert "give --seed or --seeds, not both" in result.output


def test_two_workers_share_one_journal_study_and_a_trial_retrains_exactly(tiny_task_file, space_file, tmp_path):
    logs, storage = tmp_path / "logs", str(tmp_path / "tune.log")
    command = [sys.executable, "-m", "qipo_agents.zoo.cli"]
    args = tune_args(tiny_task_file, storage, "shared", space_file, logs, "--n-trials", "2", "--pruner", "none")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    workers = [
        subprocess.Popen([*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    study = load_study(storage, "shared")
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert sorted(trial.number for trial in study.trials) == [0, 1, 2, 3]
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir == logs / "tune" / "shared" / f"trial_{trial.number}"
        final = json.loads((run_dir / "final_eval.json").read_text())
        assert final["normalized_mean"] == pytest.approx(trial.value)
        assert (run_dir / "tiny-hopper.zip").is_file() and (run_dir / "evaluations.npz").is_file()

    best = study.best_trial
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = invoke(
            "train",
            "tiny-hopper",
            "--trial",
            f"{storage}:shared:{best.number}",
            "--log-folder",
            logs,
            "--device",
            "cpu",
        )
    finally:
        torch.set_num_threads(threads)
    retrained = json.loads((logs / "flow" / "tiny-hopper_1" / "final_eval.json").read_text())
    assert retrained["normalized_mean"] == pytest.approx(best.value, abs=1e-9), result.output
    assert retrained["seed"] == best.user_attrs["seed"]


def test_a_pruned_trial_is_recorded_as_pruned(tiny_task_file, space_file, tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.pruners.MedianPruner, "prune", lambda self, study, trial: True)
    logs, storage = tmp_path / "logs", str(tmp_path / "tune.log")
    result = invoke(*tune_args(tiny_task_file, storage, "pruning", space_file, logs, "--n-trials", "1"))
    assert "trial 0 pruned at step 50" in result.output and "1 pruned" in result.output
    (trial,) = load_study(storage, "pruning").trials
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [50]
    run_dir = Path(trial.user_attrs["run_dir"])
    assert (run_dir / "tiny-hopper.zip").is_file() and not (run_dir / "final_eval.json").exists()


def test_ctrl_c_fails_the_running_trial_and_keeps_the_finished_ones(tiny_task_file, space_file, tmp_path, monkeypatch):
    original = QIPO._train_step
    calls = {"n": 0}

    def interrupted_in_the_second_trial(self):
        calls["n"] += 1
        if calls["n"] == 150:  # the first trial takes 100 steps
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(QIPO, "_train_step", interrupted_in_the_second_trial)
    logs, storage = tmp_path / "logs", f"sqlite:///{tmp_path / 'study.db'}"
    result = invoke(
        *tune_args(tiny_task_file, storage, "stopped", space_file, logs, "--n-trials", "3", "--pruner", "none"),
        expect=130,
    )
    assert "the trial is marked FAIL" in result.output
    states = [trial.state for trial in load_study(storage, "stopped").trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        (
            "betta: {type: float, low: 1.0, high: 2.0}\n",
            "key betta: is not a hyperparameter of the agent; did you mean beta?",
        ),
        (
            "beta: {type: float, low: 2.0, high: 2.0}\n",
            "key beta: the range is empty: low (2.0) must be below high (2.0)",
        ),
        ("beta: {type: float, low: 0.0, high: 2.0, log: true}\n", "key beta: log: true needs low > 0"),
        (
            "n_support_actions: {type: categorical, choices: []}\n",
            "key n_support_actions: List should have at least 1 item",
        ),
        ("beta: {type: normal, low: 1.0, high: 2.0}\n", "key beta:"),
        (
            "n_support_actions: {type: categorical, choices: [4, many]}\n",
            "key n_support_actions: expected an integer, got a string 'many'",
        ),
    ],
)
def test_bad_search_spaces_are_clear_errors(space, expected, tiny_task_file, tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(space)
    storage = tmp_path / "tune.log"
    result = invoke(*tune_args(tiny_task_file, str(storage), "s", path, tmp_path / "logs", "--n-trials", "1"), expect=1)
    assert expected in result.output
    assert not storage.exists()  # nothing was started


def test_unknown_storage_and_study_are_clear_errors(tiny_task_file, tmp_path):
    result = invoke("train", "tiny-hopper", "--trial", f"{tmp_path / 'none.log'}:s:0", expect=1)
    assert "no such journal file" in result.output
    storage = tmp_path / "tune.log"
    optuna.create_study(study_name="exists", storage=open_storage(str(storage)))
    result = invoke("train", "tiny-hopper", "--trial", f"{storage}:nosuch:0", expect=1)
    assert "has no study 'nosuch' (studies there: exists)" in result.output
    result = invoke("train", "tiny-hopper", "--trial", f"{storage}:exists:4", expect=1)
    assert "study 'exists' has no trial 4" in result.output
    result = invoke("train", "tiny-hopper", "--trial", "just-a-name", expect=1)
    assert "write STORAGE:STUDY:NUMBER" in result.output
    result = invoke(
        "tune", "hopper-medium-mini", "--n-trials", "1", "--storage", "study", "--study-name", "s", expect=1
    )
    assert "give a journal file ending in .log, or a database URL" in result.output


def test_sigterm_to_the_seeds_command_reaches_every_run_and_each_saves_a_checkpoint(tiny_task_file, tmp_path):
    logs = tmp_path / "logs"
    budget = [item for item in TINY if not item.startswith("behavior_steps")] + ["behavior_steps=1000000"]
    args = ["train", "tiny-hopper", "--device", "cpu", "--log-folder", str(logs), "--config", str(tiny_task_file)]
    args += ["--verbose", "1", "--hyperparams", *budget]
    sent = threading.Event()

    def sigterm_once_both_runs_train():  # as a scheduler's SIGTERM reaches the command's process only
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not sent.is_set():
            seed_logs = list((logs / "flow").glob(".tiny-hopper_seeds_*/seed*.log"))
            training = [log for log in seed_logs if "starting the behavior phase" in log.read_text()]
            if len(training) == 2 and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                sent.set()
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)

    threading.Thread(target=sigterm_once_both_runs_train, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        train_seeds(args, [3, 5], 2, logs, "flow", "tiny-hopper", echo=lambda message: None)
    assert sent.is_set()
    for seed in (3, 5):
        log = (logs / "flow" / f"tiny-hopper_seed{seed}.log").read_text()
        assert "training interrupted by SIGTERM at step" in log and "resume with: qipo-zoo train" in log
    checkpoints = sorted((logs / "flow").glob("tiny-hopper_*/checkpoints/qipo_*_steps.zip"))
    assert len({path.parents[1] for path in checkpoints}) == 2  # both runs saved one
