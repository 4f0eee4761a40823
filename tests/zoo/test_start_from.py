"""Runs that start from an agent saved at the end of its critic phase (`--start-from`): the profile's
own settings reproduce the uninterrupted run, other refinement settings change only what follows the
critic, a study shares one checkpoint between its trials, and checkpoints that cannot serve are
clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from qipo_agents import QIPOFlow
from qipo_agents.zoo.tune import load_study

from ..agents.test_save_load import rewrite_member
from .conftest import TINY, invoke

CRITIC_END = 70  # behavior_steps + critic_steps of TINY
# checkpoints every 20 steps keep the last two (80 and 100) and the one at the end of the critic phase
SAVE_AT_CRITIC_END = [*TINY, "checkpoint_freq=20"]


@pytest.fixture
def finished_run(tiny_task_file, tmp_path) -> Path:
    logs = tmp_path / "logs"
    invoke(
        "train",
        "tiny-hopper",
        "--config",
        tiny_task_file,
        "--device",
        "cpu",
        "--log-folder",
        logs,
        "--seed",
        "3",
        "--hyperparams",
        *SAVE_AT_CRITIC_END,
    )
    return logs / "flow" / "tiny-hopper_1"


def _start_from(run: Path, tiny_task_file, *overrides: str, expect: int = 0):
    checkpoint = run / "checkpoints" / f"qipo_{CRITIC_END}_steps.zip"
    args = ["train", "tiny-hopper", "--config", tiny_task_file, "--device", "cpu", "--log-folder", run.parent.parent]
    return invoke(
        *args,
        "--seed",
        "3",
        "--start-from",
        checkpoint,
        "--hyperparams",
        *SAVE_AT_CRITIC_END,
        *overrides,
        expect=expect,
    )


def _final(run: Path) -> float:
    return json.loads((run / "final_eval.json").read_text())["normalized_mean"]


def _evaluations(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]


def _parameters(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    state = QIPOFlow.load(path, device="cpu").policy.state_dict()
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_a_run_from_the_end_of_the_critic_equals_the_uninterrupted_run(finished_run, tiny_task_file):
    kept = sorted(path.name for path in (finished_run / "checkpoints").iterdir())
    assert kept == [f"qipo_{step}_steps.zip" for step in (100, CRITIC_END, 80)]  # sorted by name
    result = _start_from(finished_run, tiny_task_file)
    warm = finished_run.parent / "tiny-hopper_2"
    assert f"from step {CRITIC_END} of" in result.output
    assert _final(warm) == pytest.approx(_final(finished_run), abs=1e-9)
    # the evaluation made before the checkpoint (step 50) is carried over, the later one made again
    assert _evaluations(warm) == _evaluations(finished_run) and [e["timesteps"] for e in _evaluations(warm)] == [
        50,
        100,
    ]
    for prefix in ("actor_ema.", "critic."):
        expected = _parameters(finished_run / "tiny-hopper.zip", prefix)
        for name, value in _parameters(warm / "tiny-hopper.zip", prefix).items():
            torch.testing.assert_close(value, expected[name], rtol=0, atol=0)
    config = yaml.safe_load((warm / "config.yml").read_text())
    assert config["start_from"].endswith(f"qipo_{CRITIC_END}_steps.zip")
    assert "--start-from" in (warm / "command.txt").read_text()

    # another refinement, then a distillation: the critic is the checkpoint's, the acting policy is
    # refined differently and distilled into a one-step policy
    _start_from(finished_run, tiny_task_file, "beta=0.0", "policy_learning_rate=0.01", "distill_steps=5")
    other = finished_run.parent / "tiny-hopper_3"
    checkpoint = finished_run / "checkpoints" / f"qipo_{CRITIC_END}_steps.zip"
    critic = _parameters(checkpoint, "critic.")
    for name, value in _parameters(other / "tiny-hopper.zip", "critic.").items():
        torch.testing.assert_close(value, critic[name], rtol=0, atol=0)
    refined = _parameters(other / "tiny-hopper.zip", "actor_ema.")
    assert any(
        not torch.equal(value, _parameters(warm / "tiny-hopper.zip", "actor_ema.")[k]) for k, value in refined.items()
    )
    distilled = QIPOFlow.load(other / "tiny-hopper.zip", device="cpu")
    assert distilled.schedule.distill_steps == 5 and distilled.num_timesteps == distilled.schedule.total
    assert distilled.policy.one_step is not None


def test_checkpoints_that_cannot_start_a_run_are_clear_errors(finished_run, tiny_task_file):
    result = _start_from(finished_run, tiny_task_file, "gamma=0.9", expect=1)
    assert "other settings than task tiny-hopper sets for its behaviour and critic phases: gamma" in result.output
    assert "only the refinement's settings may change" in result.output

    mid_refinement = finished_run / "checkpoints" / "qipo_80_steps.zip"
    args = ["train", "tiny-hopper", "--config", tiny_task_file, "--device", "cpu", "--log-folder", finished_run.parent]
    result = invoke(*args, "--start-from", mid_refinement, "--hyperparams", *SAVE_AT_CRITIC_END, expect=1)
    assert "was saved at step 80; a run can start from the end of the critic phase only" in result.output

    result = invoke(*args, "--start-from", mid_refinement, "--seeds", "1", "2", "--hyperparams", *TINY, expect=2)
    assert "drop --seeds and --resume" in result.output

    result = invoke(*args, "--algo", "diffusion", "--start-from", mid_refinement, "--hyperparams", *TINY, expect=1)
    assert "holds a QIPOFlow agent; task tiny-hopper trains QIPODiffusion" in result.output


def test_a_study_of_the_refinement_shares_one_checkpoint(finished_run, tiny_task_file, tmp_path):
    checkpoint = finished_run / "checkpoints" / f"qipo_{CRITIC_END}_steps.zip"
    logs, storage = tmp_path / "tune_logs", str(tmp_path / "tune.log")
    space = tmp_path / "space.yml"
    space.write_text("beta: {type: float, low: 0.5, high: 5.0, log: true}\n")
    args = ["tune", "tiny-hopper", "--config", tiny_task_file, "--storage", storage, "--search-space", space]
    args += ["--device", "cpu", "--log-folder", logs, "--start-from", checkpoint, "--pruner", "none"]
    invoke(*args, "--study-name", "warm", "--n-trials", "2", "--hyperparams", *SAVE_AT_CRITIC_END)

    study = load_study(storage, "warm")
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    critic = _parameters(checkpoint, "critic.")
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert trial.user_attrs["start_from"] == str(checkpoint)
        for name, value in _parameters(run_dir / "tiny-hopper.zip", "critic.").items():
            torch.testing.assert_close(value, critic[name], rtol=0, atol=0)
    best = study.best_trial
    invoke("train", "tiny-hopper", "--trial", f"{storage}:warm:{best.number}", "--log-folder", logs, "--device", "cpu")
    assert _final(logs / "flow" / "tiny-hopper_1") == pytest.approx(best.value, abs=1e-9)

    space.write_text("critic_learning_rate: {type: float, low: 1e-4, high: 1e-3, log: true}\n")
    result = invoke(*args, "--study-name", "cold", "--n-trials", "1", "--hyperparams", *SAVE_AT_CRITIC_END, expect=1)
    assert "critic_learning_rate (checkpoint: 0.0003)" in result.output


def test_a_checkpoint_without_a_newer_setting_still_takes_it(finished_run, tiny_task_file):
    """A checkpoint written before a refinement setting existed loads it at its default; a value set
    on the command line is applied, not dropped. Here: Q-guided extraction straight from the
    behaviour model (no weighted refinement)."""
    checkpoint = finished_run / "checkpoints" / f"qipo_{CRITIC_END}_steps.zip"

    def without_extraction_alpha(raw):
        data = json.loads(raw)
        del data["config"]["extraction_alpha"]
        return json.dumps(data)

    rewrite_member(checkpoint, "data.json", without_extraction_alpha)
    _start_from(finished_run, tiny_task_file, "policy_steps=0", "distill_steps=5", "extraction_alpha=0.5")
    agent = QIPOFlow.load(finished_run.parent / "tiny-hopper_2" / "tiny-hopper.zip", device="cpu")
    assert agent.extraction_alpha == 0.5 and agent.acts_in_one_step
    assert (agent.schedule.policy_steps, agent.schedule.distill_steps) == (0, 5)
    assert agent.num_timesteps == CRITIC_END + 5


def test_a_refinement_setting_the_command_leaves_unset_is_not_inherited(finished_run, tiny_task_file):
    """The command's settings decide what follows the critic: a checkpoint saved by a run with the
    Q-guided extraction starts a plain copy when the command does not ask for the extraction."""
    checkpoint = finished_run / "checkpoints" / f"qipo_{CRITIC_END}_steps.zip"

    def with_extraction(raw):
        data = json.loads(raw)
        data["config"].update(extraction_alpha=0.5, extraction_trust_limit=0.1)
        return json.dumps(data)

    rewrite_member(checkpoint, "data.json", with_extraction)
    _start_from(finished_run, tiny_task_file, "distill_steps=5")
    agent = QIPOFlow.load(finished_run.parent / "tiny-hopper_2" / "tiny-hopper.zip", device="cpu")
    assert agent.extraction_alpha is None and agent.extraction_trust_limit is None
    assert agent.acts_in_one_step and agent.schedule.distill_steps == 5


def test_a_run_keeps_every_checkpoint_when_asked(tiny_task_file, tmp_path):
    """By default a run keeps its last two checkpoints and the one at the end of the critic;
    ``n_checkpoints_kept=null`` keeps every one (to evaluate the behaviour model along its phase)."""
    logs = tmp_path / "logs"
    args = ["train", "tiny-hopper", "--config", tiny_task_file, "--device", "cpu", "--log-folder", logs]
    invoke(*args, "--hyperparams", *SAVE_AT_CRITIC_END, "n_checkpoints_kept=null")
    steps = sorted(int(p.stem.split("_")[1]) for p in (logs / "flow" / "tiny-hopper_1" / "checkpoints").glob("*.zip"))
    assert steps == [20, 40, 60, CRITIC_END, 80, 100]
