"""`qipo-zoo train`: run folders, the embedded default task, interruption and --resume, clear errors."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import torch
import yaml

from qipo_agents import QIPOFlow
from qipo_agents.qipo.algorithm import QIPO

from .conftest import TINY_STEPS, invoke, train_args


def test_train_writes_a_complete_run_folder(tiny_task_file, tmp_path):
    logs = tmp_path / "logs"
    result = invoke(*train_args("tiny-hopper", logs, "--config", tiny_task_file, "--algo", "diffusion", "--seed", "3"))
    run = logs / "diffusion" / "tiny-hopper_1"
    assert "final evaluation after 100 steps: return" in result.output and "D4RL-normalised score" in result.output
    for name in ("config.yml", "command.txt", "progress.csv", "evaluations.jsonl", "best_model.zip", "tiny-hopper.zip"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events"
    # every 40 steps and at the end of the critic phase (70); the latest two are kept
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["qipo_70_steps.zip", "qipo_80_steps.zip"]
    config = yaml.safe_load((run / "config.yml").read_text())
    assert (config["task"], config["algo"], config["profile"], config["seed"]) == ("tiny-hopper", "diffusion", "cpu", 3)
    assert config["hyperparams"]["behavior_steps"] == 40 and config["hyperparams"]["reward_scaling"] == "locomotion"
    # what a seed's exact repetition depends on: the CPU's kernel level and the library versions
    assert config["system"]["PyTorch"] == torch.__version__
    assert config["system"]["CPU"].endswith(f"({torch.backends.cpu.get_cpu_capability()})")
    command = (run / "command.txt").read_text()
    assert command.startswith("qipo-zoo train tiny-hopper --algo diffusion --seed 3 --device cpu --profile cpu")
    final = json.loads((run / "final_eval.json").read_text())
    assert final["num_timesteps"] == TINY_STEPS and final["n_episodes"] == 1
    assert final["normalized_mean"] == pytest.approx(100 * (final["mean_return"] + 20.272305) / (3234.3 + 20.272305))
    evaluations = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    assert [e["timesteps"] for e in evaluations] == [50, 100]
    # SB3's evaluations.npz, which rl-baselines3-zoo's plotting scripts read
    sb3_format = np.load(run / "evaluations.npz")
    assert sb3_format["timesteps"].tolist() == [50, 100] and sb3_format["results"].shape == (2, 1)
    np.testing.assert_allclose(sb3_format["results"][:, 0], [e["mean_return"] for e in evaluations])
    header = (run / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"eval/normalized_score", "train/behavior_loss", "train/critic_loss", "train/policy_loss"} <= set(header)
    agent = QIPO.load(run / "tiny-hopper.zip", device="cpu")
    assert type(agent).__name__ == "QIPODiffusion" and agent.num_timesteps == TINY_STEPS
    # a second run of the same task gets the next number
    invoke(*train_args("tiny-hopper", logs, "--config", tiny_task_file, "--algo", "diffusion"))
    assert (logs / "diffusion" / "tiny-hopper_2" / "final_eval.json").is_file()


def test_embedded_default_task_trains_and_evaluates_offline(tmp_path, monkeypatch):
    # an empty Minari store and no network: the embedded dataset needs neither
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty_store"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke(*train_args("hopper-medium-mini", tmp_path / "logs"))
    assert "97955 transitions" in result.output
    final = json.loads((tmp_path / "logs" / "flow" / "hopper-medium-mini_1" / "final_eval.json").read_text())
    assert final["task"] == "hopper-medium-mini" and final["normalized_mean"] is not None
    assert final["reference_scores"] == [-20.272305, 3234.3]


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    original = QIPO._train_step

    def interrupted_at_step_63(self):
        if self.num_timesteps == 63:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(QIPO, "_train_step", interrupted_at_step_63)
    result = invoke(*train_args("hopper-medium-mini", logs), expect=130)
    run = logs / "flow" / "hopper-medium-mini_1"
    assert "training interrupted at step 63" in result.output and f"--resume {run}" in result.output
    assert "Traceback" not in result.output
    checkpoint = run / "checkpoints" / "qipo_63_steps.zip"
    assert checkpoint.is_file() and not (run / "hopper-medium-mini.zip").exists()
    saved = QIPOFlow.load(checkpoint, device="cpu")
    assert saved.num_timesteps == 63 and saved.schedule.total == TINY_STEPS

    monkeypatch.setattr(QIPO, "_train_step", original)
    result = invoke("train", "hopper-medium-mini", "--log-folder", logs, "--resume")
    assert "from qipo_63_steps.zip: step 63 of 100, 37 to go" in result.output
    final = json.loads((run / "final_eval.json").read_text())
    assert final["num_timesteps"] == TINY_STEPS
    assert QIPOFlow.load(run / "hopper-medium-mini.zip", device="cpu").num_timesteps == TINY_STEPS
    assert (run / "progress.1.csv").is_file() and (run / "progress.csv").is_file()
    assert len((run / "command.txt").read_text().splitlines()) == 2
    evaluations = [json.loads(line)["timesteps"] for line in (run / "evaluations.jsonl").read_text().splitlines()]
    assert evaluations == [50, 100]
    # SB3's evaluations.npz of the resumed run holds the evaluation made before the interruption too
    assert list(np.load(run / "evaluations.npz")["timesteps"]) == [50, 100]
    result = invoke("train", "tiny-other", "--log-folder", logs, "--resume", run, expect=1)
    assert "is a run of hopper-medium-mini, not of tiny-other" in result.output
    # nothing left to resume
    result = invoke("train", "hopper-medium-mini", "--log-folder", logs, "--resume", run, expect=1)
    assert "has finished training and its final evaluation; nothing to resume" in result.output


def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, trained_run):
    # `kill`, `timeout`, SLURM preemption, `docker stop`: the signal arrives in the middle of a step
    logs = tmp_path / "logs"
    original = QIPO._train_step

    def sigterm_inside_step_64(self):
        losses = original(self)  # the step's optimisers have stepped; its counters have not advanced yet
        if self.num_timesteps == 63:
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "learn() does not defer SIGTERM"
            os.kill(os.getpid(), signal.SIGTERM)
        return losses

    monkeypatch.setattr(QIPO, "_train_step", sigterm_inside_step_64)
    result = invoke(*train_args("hopper-medium-mini", logs), expect=143)  # 128 + SIGTERM, as the shell reports
    run = logs / "flow" / "hopper-medium-mini_1"
    assert "training interrupted by SIGTERM at step 64; checkpoint" in result.output
    assert f"resume with: qipo-zoo train hopper-medium-mini --algo flow --resume {run}" in result.output
    assert QIPOFlow.load(run / "checkpoints" / "qipo_64_steps.zip", device="cpu").num_timesteps == 64

    monkeypatch.setattr(QIPO, "_train_step", original)
    invoke("train", "hopper-medium-mini", "--log-folder", logs, "--resume", run)
    resumed = QIPOFlow.load(run / "hopper-medium-mini.zip", device="cpu")
    uninterrupted = QIPOFlow.load(trained_run / "hopper-medium-mini.zip", device="cpu")  # same task and seed
    assert resumed.num_timesteps == uninterrupted.num_timesteps == TINY_STEPS
    for (name, a), (_, b) in zip(uninterrupted.policy.state_dict().items(), resumed.policy.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_crash_saves_a_usable_checkpoint_first(tmp_path, monkeypatch):
    original = QIPO._train_step

    def crashing_at_step_45(self):
        if self.num_timesteps == 45:
            raise RuntimeError("simulated failure")
        return original(self)

    monkeypatch.setattr(QIPO, "_train_step", crashing_at_step_45)
    result = invoke(*train_args("hopper-medium-mini", tmp_path / "logs"), expect=1)
    assert isinstance(result.exception, RuntimeError)
    run = tmp_path / "logs" / "flow" / "hopper-medium-mini_1"
    assert "training stopped by an error at step 45" in result.output and f"--resume {run}" in result.output
    assert QIPOFlow.load(run / "checkpoints" / "qipo_45_steps.zip", device="cpu").num_timesteps == 45


def test_missing_dataset_fails_fast_with_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty_store"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    result = invoke("train", "hopper-medium", "--device", "cpu", "--log-folder", tmp_path / "logs", expect=1)
    assert time.perf_counter() - started < 20
    assert "Error: Minari dataset 'mujoco/hopper/medium-v0' is not in the local store" in result.output
    assert "--dataset SOURCE" in result.output
    assert "minari download mujoco/hopper/medium-v0" in result.output and "qipo-zoo collect" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "logs").exists()
    result = invoke("train", "hopper-medium-replay", "--device", "cpu", "--log-folder", tmp_path / "logs", expect=1)
    assert "hopper_medium_replay-v2.hdf5" in result.output and "--dataset PATH" in result.output


def test_user_errors_are_one_line_without_traceback(tmp_path):
    result = invoke("train", "hoper-medium", "--device", "cpu", expect=1)
    assert "unknown task 'hoper-medium'" in result.output and "Did you mean hopper-medium" in result.output
    result = invoke(
        "train", "hopper-medium-mini", "--device", "cpu", "--hyperparams", "policy_learning_rate='3e-4'", expect=1
    )
    assert "'3e-4' is quoted, so YAML reads a string; write 3e-4" in result.output
    result = invoke("train", "hopper-medium-mini", "--device", "cpu", "betta=3", expect=1)
    assert "did you mean beta?" in result.output
    result = invoke("train", "hopper-medium-mini", "--log-folder", tmp_path, "--resume", expect=1)
    assert "no run of hopper-medium-mini" in result.output and "Traceback" not in result.output


def test_dataset_option_trains_on_other_data(tiny_task_file, tmp_path):
    from ..conftest import DATASET_ID

    invoke(*train_args("hopper-medium-mini", tmp_path / "logs", "--dataset", DATASET_ID, "--no-progress"))
    config = yaml.safe_load((tmp_path / "logs" / "flow" / "hopper-medium-mini_1" / "config.yml").read_text())
    assert config["datasets"] == [DATASET_ID]


def test_verbose_zero_is_quiet(tiny_task_file, tmp_path):
    result = invoke(*train_args("tiny-hopper", tmp_path / "logs", "--config", tiny_task_file, "--verbose", "0"))
    assert "train/" not in result.output and "behavior_loss" not in result.output
    assert "final evaluation" in result.output
    header = (tmp_path / "logs" / "flow" / "tiny-hopper_1" / "progress.csv").read_text().splitlines()[0]
    assert "train/behavior_loss" in header  # still logged to CSV


def test_evaluations_can_run_several_episodes_at_once(tiny_task_file, tmp_path):
    logs = tmp_path / "logs"
    invoke(
        *train_args("tiny-hopper", logs, "--config", tiny_task_file),
        "n_eval_envs=2",
        "n_eval_episodes=2",
        "n_final_eval_episodes=3",
    )
    run = logs / "flow" / "tiny-hopper_1"
    final = json.loads((run / "final_eval.json").read_text())
    assert len(final["returns"]) == 3
    assert np.load(run / "evaluations.npz")["results"].shape == (2, 2)


def test_train_closes_every_env_it_made(tiny_task_file, tmp_path, monkeypatch):
    import gymnasium as gym

    from qipo_agents.zoo import train as train_module

    made = []

    class Recorded(gym.Wrapper):
        closed = False

        def close(self):
            self.closed = True
            super().close()

    def make_recorded(*args, **kwargs):
        made.append(Recorded(make_task_env(*args, **kwargs)))
        return made[-1]

    make_task_env = train_module.make_task_env
    monkeypatch.setattr(train_module, "make_task_env", make_recorded)
    invoke(*train_args("tiny-hopper", tmp_path / "logs", "--config", tiny_task_file, "n_eval_envs=2"))
    # the task env, a copy for the evaluations during training and one for the final evaluation
    assert len(made) == 3 and all(env.closed for env in made)
