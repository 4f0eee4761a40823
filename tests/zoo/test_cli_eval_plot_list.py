"""`qipo-zoo eval`, `plot` and `list` on a finished tiny run."""

from __future__ import annotations

import json
import socket
import zipfile

import numpy as np
import onnxruntime
import pytest

from qipo_agents import QIPO
from qipo_agents.zoo.plot import load_curve
from qipo_agents.zoo.sources import BUILTIN_DIR

from ..conftest import DATASET_ID
from .conftest import bar_container, invoke, train_args


def test_eval_a_run_folder_and_a_model_file(trained_run):
    result = invoke("eval", trained_run, "--episodes", "2", "--device", "cpu")
    assert "in Hopper-v5: return" in result.output and "over 2 episodes, D4RL-normalised score" in result.output
    model = trained_run / "hopper-medium-mini.zip"
    result = invoke("eval", model, "--episodes", "1", "--env", "Hopper-v5", "--stochastic")
    assert "over 1 episodes, D4RL-normalised score" in result.output
    # a bare model finds its env in the dataset metadata it saved
    assert "in Hopper-v5" in invoke("eval", model, "--episodes", "1").output


def test_eval_out_repeats_the_runs_final_evaluation(trained_run, tmp_path):
    """With the run's own protocol (its seed, its episodes, its device), eval --out writes what the run's
    final evaluation wrote, plus the model and the acting rule."""
    out = tmp_path / "reports" / "eval.json"
    assert f"wrote {out}" in invoke("eval", trained_run, "--seed", "0", "--device", "cpu", "--out", out).output
    report = json.loads(out.read_text())
    final = json.loads((trained_run / "final_eval.json").read_text())
    assert {key: report[key] for key in final} == final
    assert report["model"] == str(trained_run / "hopper-medium-mini.zip") and report["one_step_acting"] is False


def test_eval_n_envs_runs_episodes_at_once_with_the_same_deterministic_returns(trained_run, tmp_path):
    """Three episodes two at a time: episode i still resets with seed + i, so deterministic
    actions give the returns of one-at-a-time episodes (up to the float rounding of a batched
    forward pass); the report says how they were run."""
    reports = []
    for n_envs in ("1", "2"):
        out = tmp_path / f"eval_{n_envs}.json"
        invoke("eval", trained_run, "--episodes", "3", "--deterministic", "--n-envs", n_envs, "--out", out)
        reports.append(json.loads(out.read_text()))
    assert [report["n_envs"] for report in reports] == [1, 2]
    np.testing.assert_allclose(reports[1]["returns"], reports[0]["returns"], rtol=1e-6)
    assert reports[1]["lengths"] == reports[0]["lengths"]
    assert "--n-envs" in invoke("eval", trained_run, "--n-envs", "0", expect=2).output


def test_eval_out_fails_before_evaluating_when_it_cannot_write(trained_run, tmp_path, evaluated_agents):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("eval", trained_run, "--out", blocker / "eval.json", expect=1)
    assert "--out: cannot create the folder of" in result.output
    assert evaluated_agents == []


@pytest.fixture
def evaluated_agents(monkeypatch) -> list:
    """The agents `qipo-zoo eval` evaluates, in order."""
    import qipo_agents.zoo.evaluate as zoo_evaluate

    agents = []
    real_evaluate = zoo_evaluate.evaluate

    def recording_evaluate(agent, *args, **kwargs):
        agents.append(agent)
        return real_evaluate(agent, *args, **kwargs)

    monkeypatch.setattr(zoo_evaluate, "evaluate", recording_evaluate)
    return agents


def test_eval_best_of_n_overrides_the_saved_choice(trained_run, evaluated_agents):
    saved = QIPO.load(trained_run / "hopper-medium-mini.zip", device="cpu").best_of_n
    invoke("eval", trained_run, "--episodes", "1")
    invoke("eval", trained_run, "--episodes", "1", "--best-of-n", "3")
    assert [agent.best_of_n for agent in evaluated_agents] == [saved, 3]
    assert "--best-of-n" in invoke("eval", trained_run, "--best-of-n", "0", expect=2).output


def test_eval_acting_temperature_overrides_the_saved_one_and_is_recorded(trained_run, evaluated_agents, tmp_path):
    saved = QIPO.load(trained_run / "hopper-medium-mini.zip", device="cpu").acting_temperature
    assert saved != 0.5
    invoke("eval", trained_run, "--episodes", "1", "--out", tmp_path / "saved.json")
    invoke("eval", trained_run, "--episodes", "1", "--acting-temperature", "0.5", "--out", tmp_path / "half.json")
    assert [agent.acting_temperature for agent in evaluated_agents] == [saved, 0.5]
    assert json.loads((tmp_path / "half.json").read_text())["acting_temperature"] == 0.5
    assert json.loads((tmp_path / "saved.json").read_text())["acting_temperature"] == saved
    assert "--acting-temperature" in invoke("eval", trained_run, "--acting-temperature", "1.5", expect=2).output


def test_eval_acts_with_the_sampler_on_request(tiny_task_file, tmp_path, evaluated_agents):
    logs = tmp_path / "logs"
    invoke(*train_args("tiny-hopper", logs, "--config", tiny_task_file), "distill_steps=5", "n_final_eval_episodes=0")
    run = logs / "flow" / "tiny-hopper_1"
    invoke("eval", run, "--episodes", "1")
    invoke("eval", run, "--episodes", "1", "--sampler")
    assert [agent.acts_in_one_step for agent in evaluated_agents] == [True, False]


def test_a_trusted_extraction_acts_as_its_run_says_unless_eval_asks_otherwise(
    tiny_task_file, tmp_path, evaluated_agents
):
    """A run whose extraction acts deterministically records so in its final evaluation; `eval`
    keeps the agent's rule, `--stochastic` samples the extraction, `--extraction-acting` sets it."""
    logs = tmp_path / "logs"
    extraction = ("distill_steps=5", "extraction_alpha=1.0", "extraction_acting=deterministic")
    invoke(*train_args("tiny-hopper", logs, "--config", tiny_task_file), *extraction, "n_final_eval_episodes=1")
    run = logs / "flow" / "tiny-hopper_1"
    assert json.loads((run / "final_eval.json").read_text())["deterministic"] is True
    invoke("eval", run, "--episodes", "1")
    invoke("eval", run, "--episodes", "1", "--stochastic")
    invoke("eval", run, "--episodes", "1", "--extraction-acting", "sampled")
    assert all(agent.acts_with_extraction for agent in evaluated_agents)
    assert [agent.acts_deterministically() for agent in evaluated_agents] == [True, False, False]
    assert "--extraction-acting" in invoke("eval", run, "--extraction-acting", "greedy", expect=2).output


def test_eval_writes_a_gif_of_one_episode(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    video = tmp_path / "episode.gif"
    result = invoke("eval", trained_run, "--episodes", "1", "--video", video, expect=None)
    if result.exit_code != 0 and "OpenGL backend" in result.output:
        pytest.skip(f"no offscreen OpenGL here: {result.output}")
    assert result.exit_code == 0, result.output
    assert video.read_bytes()[:6] in (b"GIF87a", b"GIF89a") and f"video of episode 1: {video}" in result.output


def test_eval_errors_are_clear(trained_run, tmp_path):
    result = invoke("eval", trained_run, "--video", tmp_path / "x.avi", expect=1)
    assert "write a .gif or an .mp4" in result.output
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    assert "not a qipo-zoo run folder" in invoke("eval", not_a_run, expect=1).output
    sb3_model = tmp_path / "sb3.zip"
    with zipfile.ZipFile(sb3_model, "w") as archive:  # what a Stable-Baselines3 save holds
        archive.writestr("data", "{}")
        archive.writestr("policy.pth", b"")
    result = invoke("eval", sb3_model, expect=1)
    assert "not a qipo_agents save file" in result.output and "Traceback" not in result.output


def test_plot_draws_each_runs_evaluations_and_final_score(trained_run, tmp_path, saved_figures):
    out = tmp_path / "curves.png"
    result = invoke("plot", trained_run, trained_run, "--out", out)
    assert f"wrote {out}" in result.output and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = saved_figures
    curves_axes, finals_axes = figure.axes
    curve = load_curve(trained_run)
    final = json.loads((trained_run / "final_eval.json").read_text())
    assert curve.normalized and curve.steps == [50, 100]
    # left: one learning curve per run, in the D4RL-normalised unit of the task
    assert curves_axes.get_title() == "evaluations during training"
    assert (curves_axes.get_xlabel(), curves_axes.get_ylabel()) == ("gradient steps", "D4RL-normalised score")
    lines = curves_axes.get_lines()
    assert [line.get_label() for line in lines] == [curve.label, curve.label] == ["flow/hopper-medium-mini_1"] * 2
    for line in lines:
        assert list(line.get_xdata()) == curve.steps
        np.testing.assert_allclose(line.get_ydata(), curve.values)
    # right: one bar per run, its final evaluation, with the std over episodes as error bar
    assert finals_axes.get_title() == "final evaluation (mean ± std over episodes)"
    assert finals_axes.get_ylabel() == "D4RL-normalised score"
    assert [label.get_text() for label in finals_axes.get_xticklabels()] == [curve.label] * 2
    bars = bar_container(finals_axes)
    np.testing.assert_allclose([bar.get_height() for bar in bars], [final["normalized_mean"]] * 2)
    error_bars = bars.errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose([bar[1, 1] - bar[0, 1] for bar in error_bars], [2 * final["normalized_std"]] * 2)


def test_plot_of_a_run_with_only_progress_csv_shows_its_last_evaluation_as_final(trained_run, tmp_path, saved_figures):
    partial = tmp_path / "partial_1"
    partial.mkdir()
    (partial / "progress.csv").write_text((trained_run / "progress.csv").read_text())
    invoke("plot", partial, "--out", tmp_path / "partial.png")
    curve = load_curve(partial)
    assert curve.normalized and curve.steps == [50, 100] and curve.final is None
    np.testing.assert_allclose(curve.values, load_curve(trained_run).values, rtol=1e-6)
    (figure,) = saved_figures
    curves_axes, finals_axes = figure.axes
    (line,) = curves_axes.get_lines()
    assert line.get_label() == f"{tmp_path.name}/partial_1" and list(line.get_xdata()) == [50, 100]
    np.testing.assert_allclose(line.get_ydata(), curve.values)
    assert [bar.get_height() for bar in bar_container(finals_axes)] == [curve.values[-1]]


def test_plot_of_a_run_without_evaluations_is_a_clear_error(tmp_path, saved_figures):
    empty = tmp_path / "empty_1"
    empty.mkdir()
    assert "has no evaluations yet" in invoke("plot", empty, "--out", tmp_path / "e.png", expect=1).output
    assert saved_figures == [] and not (tmp_path / "e.png").exists()


def _row(output: str, task: str) -> str:
    """The table row(s) of ``task`` (up to the next row separator)."""
    return output.split(f"│ {task} ", 1)[1].split("├", 1)[0]


def test_list_shows_tasks_datasets_and_availability_without_network(minari_dataset, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("qipo-zoo list must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    output = invoke("list").output
    assert "zoo/flow.yml: 31 tasks" in output
    mini = _row(output, "hopper-medium-mini")
    assert "shipped" in mini and "232 episodes, 97955 steps" in mini
    stats = json.loads((BUILTIN_DIR / "hopper-medium-mini" / "data" / "metadata.json").read_text())
    assert f"{stats['mean_return']:.1f}" in mini
    medium = _row(output, "hopper-medium")
    assert "mujoco/hopper/medium-v0" in medium and "missing" in medium and "-20.2723 / 3234.3" in medium
    assert "antmaze-large-diverse" in output and "AntMaze_Large-v4" in output
    # the remedy is printed once, not once per missing dataset
    assert output.count("download on first use") == 1 and "missing minari dataset(s)" in output
    assert "zoo/diffusion.yml: 31 tasks" in invoke("list", "--algo", "diffusion").output


def test_list_marks_local_minari_datasets_available(minari_dataset, tmp_path):
    config = tmp_path / "mine.yml"
    config.write_text(f"local-random:\n  datasets: [{DATASET_ID}, test/hopper/absent-v0]\n  env: Hopper-v5\n")
    output = invoke("list", "--config", config).output
    row = _row(output, "local-random")
    assert DATASET_ID in row and "yes" in row and "4 episodes" in row
    assert "test/hopper/absent-v0" in row and "missing" in row
    config.write_text("broken:\n  datasets: [x]\n  env: Hopper-v5\n  hyperparams: {betta: 3e-1}\n")
    result = invoke("list", "--config", config, expect=1)
    assert "invalid:" in result.output and "key betta: unknown QIPO hyperparameter; did you mean beta?" in result.output


def test_export_writes_a_policy_that_acts_as_the_run_agent(trained_run, tmp_path):
    out = tmp_path / "hopper.onnx"
    result = invoke("export", trained_run, "--format", "onnx", "--out", out)
    assert f"wrote {out} (onnx): observation (11) + noise (3) -> action" in result.output
    agent = QIPO.load(trained_run / "hopper-medium-mini.zip", device="cpu")
    observation = np.random.default_rng(0).normal(size=(4, 11)).astype(np.float32)
    action = onnxruntime.InferenceSession(str(out)).run(
        None, {"observation": observation, "noise": np.zeros((4, 3), np.float32)}
    )[0]
    np.testing.assert_allclose(action, agent.predict(observation, deterministic=True)[0], atol=1e-5)
    result = invoke("export", trained_run, "--format", "tflite", "--out", out, expect=2)
    assert "'tflite' is not one of 'onnx', 'torchscript'" in result.output
