"""`--config FILE` layers a user's tasks over the packaged zoo file, and errors say where the
offending value was written: the user's file, or `--hyperparams`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from qipo_agents.errors import ConfigError
from qipo_agents.zoo.config import ALGOS, ZooFile, load_task, parse_overrides, read_packaged_yaml, zoo_yaml_load
from qipo_agents.zoo.train import read_run_config

from ..conftest import DATASET_ID
from .conftest import TINY, invoke, train_args

# the block of docs/zoo.md's "Adding a task", alone in a file
MY_TASK = """\
my-hopper:
  datasets: [local/hopper/medium-v0]
  env: Hopper-v5
  reference_scores: [-20.272305, 3234.3]
"""


@pytest.fixture
def my_tasks(tmp_path: Path):
    def write(text: str = MY_TASK) -> Path:
        path = tmp_path / "my_tasks.yml"
        path.write_text(text)
        return path

    return write


def _packaged_default(algo: str) -> dict:
    return zoo_yaml_load(read_packaged_yaml(algo)[0])["default"]


@pytest.mark.parametrize("algo", ALGOS)
def test_a_user_task_inherits_the_packaged_default_and_its_profiles(my_tasks, algo):
    path = my_tasks()
    zoo = ZooFile.load(algo, path)
    packaged = ZooFile.load(algo)
    assert zoo.tasks == [*packaged.tasks, "my-hopper"]
    default = _packaged_default(algo)
    cpu = zoo.resolve("my-hopper", "cpu")
    # the packaged CPU recipe, not QIPO's GPU-sized constructor defaults
    assert cpu.hyperparams == {**default["hyperparams"], **default["cpu"]["hyperparams"]}
    assert cpu.eval_freq == default["cpu"]["eval_freq"] and cpu.checkpoint_freq == default["cpu"]["checkpoint_freq"]
    assert cpu.planned_timesteps < 200_000
    assert zoo.resolve("my-hopper", "gpu").hyperparams == default["hyperparams"]
    # exactly what the packaged task on the same data resolves to
    local = packaged.resolve("local-hopper-medium", "cpu")
    assert dataclasses.replace(cpu, name=local.name, description=local.description) == local
    assert load_task("my-hopper", algo, "cpu", config_file=path) == cpu
    # the packaged tasks are unchanged by the layer
    assert zoo.resolve("hopper-medium-mini", "cpu") == packaged.resolve("hopper-medium-mini", "cpu")


def test_a_user_default_overrides_the_packaged_one_key_by_key(my_tasks):
    path = my_tasks(
        """
default:
  log_interval: 7
  hyperparams: {beta: 1.0}
  cpu:
    checkpoint_freq: 11
    hyperparams:
      gamma: 0.9
      policy_kwargs: {hidden_dims: [8, 8], architecture: mlp}
"""
        + MY_TASK
    )
    cpu = load_task("my-hopper", profile="cpu", config_file=path)
    recipe = _packaged_default("flow")["cpu"]
    assert (cpu.log_interval, cpu.checkpoint_freq, cpu.eval_freq) == (7, 11, recipe["eval_freq"])
    assert cpu.hyperparams["beta"] == 1.0 and cpu.hyperparams["gamma"] == 0.9
    assert cpu.hyperparams["critic_type"] == recipe["hyperparams"]["critic_type"] == "expectile"
    assert cpu.hyperparams["policy_kwargs"] == {"hidden_dims": [8, 8], "architecture": "mlp"}  # replaced whole
    gpu = load_task("my-hopper", profile="gpu", config_file=path)
    assert gpu.hyperparams["beta"] == 1.0 and gpu.hyperparams["gamma"] == 0.99 and gpu.log_interval == 7
    # the user's default reaches the packaged tasks too, as an edit of the packaged default would
    assert load_task("hopper-medium-mini", profile="cpu", config_file=path).hyperparams["gamma"] == 0.9


def test_anchors_and_merge_keys_work_inside_a_user_file(my_tasks):
    path = my_tasks(
        """
default:
  cpu:
    hyperparams:
      policy_kwargs: &nets {hidden_dims: [64, 64], architecture: mlp, embed_dim: 16}
"""
        + MY_TASK
        + """\
  cpu:
    hyperparams:
      policy_kwargs:
        <<: *nets
        critic_hidden_dims: [32, 32]
"""
    )
    assert load_task("my-hopper", profile="cpu", config_file=path).hyperparams["policy_kwargs"] == {
        "hidden_dims": [64, 64],
        "architecture": "mlp",
        "embed_dim": 16,
        "critic_hidden_dims": [32, 32],
    }


def test_a_user_task_replaces_the_packaged_task_of_its_name(my_tasks):
    path = my_tasks("hopper-medium:\n  datasets: [mine.hdf5]\n  env: Hopper-v5\n")
    zoo = ZooFile.load("flow", path)
    assert zoo.tasks == ZooFile.load("flow").tasks  # same tasks, same order
    config = zoo.resolve("hopper-medium", "cpu")
    assert config.datasets == ("mine.hdf5",) and config.reference_scores is None and config.description == ""
    assert config.hyperparams == load_task("local-hopper-medium", profile="cpu").hyperparams


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MY_TASK + "  hyperparams: {betta: 3.0}\n", "task my-hopper, key betta: unknown QIPO hyperparameter"),
        (
            MY_TASK + "  cpu: {hyperparams: {gamma: high}}\n",
            "task my-hopper (cpu profile), key gamma: expected a number",
        ),
        ("default:\n  hyperparams: {gamma: high}\n" + MY_TASK, "default block, key gamma: expected a number"),
        ("default:\n  cpu: {env: Walker2d-v5}\n" + MY_TASK, "default block (cpu profile), key env: cannot be set"),
        ("my-hopper: {env: Hopper-v5}\n", "task my-hopper, key datasets: is required"),
        (
            MY_TASK + "  cpu: {hyperparams: {critic_type: sarsa}}\n",  # default.cpu sets one
            "task my-hopper (cpu profile), key critic_type: unknown critic_type 'sarsa'",
        ),
        (MY_TASK + "  hyperparams: {eval_freq: 10}\n", "key eval_freq: is a run setting, not a QIPO hyperparameter"),
        (MY_TASK + "  beta: 3.0\n", "key beta: is a QIPO hyperparameter: set it in the block's `hyperparams:`"),
    ],
)
def test_errors_in_a_user_file_name_that_file(my_tasks, text, expected):
    path = my_tasks(text)
    with pytest.raises(ConfigError) as error:
        load_task("my-hopper", profile="cpu", config_file=path)
    message = str(error.value)
    assert message.startswith(f"{path}, ") and expected in message
    assert "zoo/flow.yml" not in message


def test_invalid_yaml_in_a_user_file_names_that_file(my_tasks):
    path = my_tasks("my-hopper: [a")
    with pytest.raises(ConfigError, match=f"{path} is not valid YAML"):
        ZooFile.load("flow", path)
    with pytest.raises(ConfigError, match="unknown task 'my-hoper' in zoo/flow.yml .*Did you mean my-hopper"):
        load_task("my-hoper", config_file=my_tasks())


def test_list_shows_the_packaged_tasks_and_the_users(my_tasks):
    path = my_tasks()
    output = invoke("list", "--config", path).output
    assert f"zoo/flow.yml + {path}: 32 tasks" in output
    assert "hopper-medium-mini" in output and "antmaze-large-diverse" in output and "my-hopper" in output
    assert "141,000 / 1,700,000" in next(line for line in output.splitlines() if "my-hopper" in line)


def test_a_run_from_a_user_file_records_its_whole_config(my_tasks, minari_dataset, tmp_path):
    """config.yml holds every resolved value, the packaged ones included, so the run folder
    reproduces the run (and resumes, and evaluates) without the user's file."""
    path = my_tasks(f"tiny:\n  datasets: [{DATASET_ID}]\n  env: Hopper-v5\n  reference_scores: [-20.272305, 3234.3]\n")
    logs = tmp_path / "logs"
    invoke(*train_args("tiny", logs, "--config", path))
    run = logs / "flow" / "tiny_1"
    recorded = yaml.safe_load((run / "config.yml").read_text())
    recipe = _packaged_default("flow")["cpu"]["hyperparams"]
    assert recorded["hyperparams"]["critic_type"] == recipe["critic_type"]
    assert recorded["hyperparams"]["normalize_observations"] is recipe["normalize_observations"] is True
    expected = load_task("tiny", "flow", "cpu", parse_overrides(TINY), config_file=path)
    path.unlink()
    assert read_run_config(run)[0] == expected


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "eval_frq=10",
            "--hyperparams, key eval_frq: unknown run setting or QIPO hyperparameter; did you mean eval_freq?",
        ),
        ("betta=3", "--hyperparams, key betta: unknown run setting or QIPO hyperparameter; did you mean beta?"),
        ("solver=foo", "--hyperparams, key solver: unknown solver 'foo'"),
        ("critic_type=foo", "--hyperparams, key critic_type: unknown critic_type 'foo'"),
    ],
)
def test_bad_command_line_settings_are_reported_as_such(override, expected):
    result = invoke("train", "hopper-medium-mini", "--device", "cpu", "-H", override, expect=1)
    assert f"Error: {expected}" in result.output
    assert "zoo/flow.yml" not in result.output


def test_unknown_command_line_keys_list_run_settings_and_hyperparameters():
    with pytest.raises(ConfigError) as error:
        load_task("hopper-medium-mini", profile="cpu", overrides={"eval_frq": 10})
    message = str(error.value)
    assert "run settings: n_timesteps, eval_freq, n_eval_episodes," in message
    assert "QIPO hyperparameters: behavior_steps, " in message and "policy_kwargs" in message


def test_qipo_refusals_are_blamed_on_the_setting_that_caused_them(my_tasks):
    bad_solver = my_tasks(MY_TASK + "  hyperparams: {solver: dpm_solver_2}\n")
    # the file's own value is wrong: the file is named, whatever else the command line sets
    with pytest.raises(ConfigError, match=rf"^{bad_solver}, task my-hopper, key solver: unknown solver"):
        load_task("my-hopper", profile="cpu", overrides={"beta": 2.0}, config_file=bad_solver)
    # ... and a command line that fixes it makes the task valid
    assert load_task("my-hopper", "flow", "cpu", {"solver": "euler"}, config_file=bad_solver).hyperparams["solver"] == (
        "euler"
    )
    # the file fixed by one setting and broken by another: the command line is named
    with pytest.raises(ConfigError, match=r"^--hyperparams, key critic_type: unknown critic"):
        load_task("my-hopper", "flow", "cpu", {"solver": "euler", "critic_type": "sarsa"}, config_file=bad_solver)
    # two settings refused together: either one alone would pass
    with pytest.raises(ConfigError, match=r"^--hyperparams, key beta, guidance_max: beta=5.0"):
        load_task("hopper-medium-mini", profile="cpu", overrides={"beta": 5.0, "guidance_max": 4.0})
