"""The zoo YAML: every task validates, and invalid configs fail with messages that name file, task and key."""

from __future__ import annotations

import pytest
import yaml

from qipo_agents.errors import ConfigError
from qipo_agents.zoo.config import ALGOS, PROFILES, ZooFile, load_task, parse_overrides

LOCOMOTION = [
    f"{env}-{kind}"
    for env in ("hopper", "halfcheetah", "walker2d")
    for kind in ("medium", "medium-replay", "medium-expert")
]
ANTMAZE = [
    f"antmaze-{maze}"
    for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
]
LOCAL = [
    f"local-{env}-{kind}"
    for env in ("hopper", "halfcheetah", "walker2d")
    for kind in ("medium", "expert", "medium-expert", "medium-replay", "sac-medium")
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_task_validates(algo, profile):
    zoo = ZooFile.load(algo)
    assert set(zoo.tasks) == set(LOCOMOTION + ANTMAZE + LOCAL + ["hopper-medium-mini"])
    qipo_args = set(zoo.resolve(zoo.tasks[0], profile).agent_class.config_class.model_fields)
    for task, config in zoo.resolve_all(profile).items():
        assert config.name == task and config.algo == algo and config.profile == profile
        assert set(config.hyperparams) <= qipo_args
        assert config.datasets and config.env and config.planned_timesteps > 0
        assert config.reference_scores is not None and config.reference_scores[1] > config.reference_scores[0]


@pytest.mark.parametrize("algo", ALGOS)
def test_gpu_profile_holds_the_papers_values(algo):
    zoo = ZooFile.load(algo)
    for task in LOCOMOTION:
        hp = zoo.resolve(task, "gpu").hyperparams
        assert hp["beta"] == 3.0 and hp["n_support_actions"] == 16 and hp["reward_scaling"] == "locomotion"
        assert (hp["behavior_steps"], hp["critic_steps"], hp["policy_steps"]) == (600_000, 1_000_000, 100_000)
        assert hp["renew_interval"] == 10_000 and hp["gamma"] == 0.99
    for task in ANTMAZE:
        config = zoo.resolve(task, "gpu")
        assert config.hyperparams["n_support_actions"] == 32 and config.hyperparams["reward_scaling"] == "antmaze"
        assert config.reference_scores == (0.0, 1.0) and config.env_package == "gymnasium_robotics"
    medium_expert = zoo.resolve("hopper-medium-expert", "gpu")
    assert medium_expert.datasets == ("mujoco/hopper/medium-v0", "mujoco/hopper/expert-v0")
    assert zoo.resolve("walker2d-medium", "gpu").reference_scores == (1.629008, 4592.3)
    expected_sampler = {"flow": ("midpoint", 3), "diffusion": ("dpm_solver_2", 15)}[algo]
    assert (hp["solver"], hp["n_sampling_steps"]) == expected_sampler


@pytest.mark.parametrize("algo", ["flow", "diffusion"])
def test_every_task_evaluates_by_sampling_actions_as_the_paper_does(algo):
    """predict(deterministic=False) with sampled actions everywhere, a trusted extraction's too; the
    CPU recipes (the embedded default's too) draw them from narrower noise (0.75), every other
    profile as the paper does."""
    zoo = ZooFile.load(algo)
    for task in zoo.tasks:
        for profile in ("gpu", "cpu"):
            config = zoo.resolve(task, profile)
            assert config.deterministic_eval is False, (task, profile)
            assert config.hyperparams.get("extraction_acting", "sampled") == "sampled", (task, profile)
            expected = 0.75 if profile == "cpu" else 1.0
            assert config.hyperparams.get("acting_temperature", 1.0) == expected, (task, profile)


def test_cpu_profile_is_a_smaller_budget_of_the_same_algorithm():
    zoo = ZooFile.load("flow")
    for task in zoo.tasks:
        cpu, gpu = zoo.resolve(task, "cpu"), zoo.resolve(task, "gpu")
        assert cpu.planned_timesteps < gpu.planned_timesteps / 5
        assert cpu.hyperparams["beta"] == gpu.hyperparams["beta"]
        assert cpu.hyperparams["policy_kwargs"]["architecture"] == "mlp"
    # default.cpu wins over a task's own hyperparams; the task's other values stay
    antmaze_cpu, antmaze_gpu = zoo.resolve("antmaze-umaze", "cpu"), zoo.resolve("antmaze-umaze", "gpu")
    assert antmaze_gpu.hyperparams["n_support_actions"] == 32 and antmaze_cpu.hyperparams["n_support_actions"] == 16
    assert antmaze_cpu.hyperparams["reward_scaling"] == "antmaze"
    # one CPU recipe: every local task resolves to the same hyperparameters, and the embedded
    # default to them but a shorter extraction, no behaviour steps during the critic phase and a
    # narrower critic
    recipes = [zoo.resolve(task, "cpu").hyperparams for task in LOCAL]
    assert all(recipe == recipes[0] for recipe in recipes)
    assert recipes[0]["extraction_alpha"] == 0.4 and recipes[0]["policy_kwargs"]["critic_layer_norm"]
    assert (recipes[0]["extraction_trust_limit"], recipes[0]["extraction_trust_concentration"]) == (0.015, 25)
    narrow_critic = {**recipes[0]["policy_kwargs"], "critic_hidden_dims": [128, 128]}
    embedded = zoo.resolve("hopper-medium-mini", "cpu").hyperparams
    assert embedded == {
        **recipes[0],
        "distill_steps": 4000,
        "behavior_during_critic": False,
        "policy_kwargs": narrow_critic,
    }


def test_flow_cpu_recipe_acts_in_one_step_the_embedded_default_after_a_shorter_extraction():
    """The CPU recipe extracts the refined flow's one-step policy on every locomotion task; the
    README's first run (the embedded default) in fewer steps, to stay short."""
    zoo = ZooFile.load("flow")
    for task in LOCAL:
        assert zoo.resolve(task, "cpu").hyperparams["distill_steps"] == 10_000, task
    assert zoo.resolve("hopper-medium-mini", "cpu").hyperparams["distill_steps"] == 4_000
    assert zoo.resolve("local-hopper-medium", "gpu").hyperparams.get("distill_steps", 0) == 0


def test_the_diffusion_cpu_recipe_is_the_flows_with_its_own_sampler():
    """Both agents train the same CPU recipe on every local task; they differ only in path and sampler."""
    flow, diffusion = ZooFile.load("flow"), ZooFile.load("diffusion")
    sampler = ("solver", "n_sampling_steps")
    for task in LOCAL:
        flow_recipe, diffusion_recipe = flow.resolve(task, "cpu"), diffusion.resolve(task, "cpu")
        assert flow_recipe.planned_timesteps == diffusion_recipe.planned_timesteps == 141_000, task
        differing = {
            key
            for key in flow_recipe.hyperparams.keys() | diffusion_recipe.hyperparams.keys()
            if flow_recipe.hyperparams.get(key) != diffusion_recipe.hyperparams.get(key)
        }
        assert differing <= set(sampler), (task, differing)
        assert (diffusion_recipe.hyperparams["solver"], diffusion_recipe.hyperparams["n_sampling_steps"]) == (
            "dpm_solver_2",
            15,
        )


def _zoo(text: str, source: str = "zoo/flow.yml") -> ZooFile:
    return ZooFile(yaml.safe_load(text), "flow", source)


TASK = "hopper-medium:\n  datasets: [mujoco/hopper/medium-v0]\n  env: Hopper-v5\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  hyperparams: {policy_learning_rate: '3e-4'}\n",
            "zoo/flow.yml, task hopper-medium, key policy_learning_rate: '3e-4' is quoted, so YAML reads a string; write 3e-4",
        ),
        ("  hyperparams: {behavior_steps: 1.5e4x}\n", "key behavior_steps: expected an integer, got a string '1.5e4x'"),
        (
            "  hyperparams: {betta: 3.0}\n",
            "task hopper-medium, key betta: unknown QIPO hyperparameter; did you mean beta?",
        ),
        ("  evalfreq: 10\n", "task hopper-medium, key evalfreq: unknown key; did you mean eval_freq?"),
        ("  hyperparams: {beta: [3]}\n", "key beta: expected a number, got a list [3]"),
        ("  eval_freq: yes\n", "key eval_freq: expected an integer, got a boolean True"),
        ("  hyperparams: {n_support_actions: 2.5}\n", "key n_support_actions: expected an integer, got a number 2.5"),
        (
            "  hyperparams: {policy_kwargs: {hiden_dims: [8]}}\n",
            "key policy_kwargs.hiden_dims: unknown policy_kwargs entry",
        ),
        (
            "  hyperparams: {policy_kwargs: {hidden_dims: [8, x]}}\n",
            "key policy_kwargs.hidden_dims[1]: expected an integer",
        ),
        ("  hyperparams: {seed: 1}\n", "key seed: is not set in a zoo config: pass --seed"),
        (
            "  hyperparams: {critic_type: sarsa}\n",
            "task hopper-medium, key critic_type: unknown critic_type 'sarsa'",
        ),
        (
            "  hyperparams: {solver: dpm_solver_2}\n",
            "task hopper-medium, key solver: unknown solver 'dpm_solver_2' for the ot path",
        ),
        ("  cpu: {env: Walker2d-v5}\n", "task hopper-medium (cpu profile), key env: cannot be set in a profile block"),
        ("  cpu: {n_eval_episodes: 0}\n", "(cpu profile), key n_eval_episodes: must be >= 1, got 0"),
        ("  reference_scores: [1.0]\n", "key reference_scores: expected a list of 2 numbers or null, got [1.0]"),
    ],
)
def test_invalid_configs_name_file_task_and_key(extra, expected):
    with pytest.raises(ConfigError) as error:
        _zoo(TASK + extra).resolve("hopper-medium", "cpu")
    assert expected in str(error.value)


def test_numbers_with_an_exponent_are_numbers():
    """PyYAML alone reads 3e-4 as a string (YAML 1.1); the zoo reads it as YAML 1.2 does."""
    zoo = ZooFile.load("flow", _write_tmp(TASK + "  hyperparams: {policy_learning_rate: 3e-4, behavior_steps: 1e5}\n"))
    hp = zoo.resolve("hopper-medium", "gpu").hyperparams
    assert hp["policy_learning_rate"] == 3e-4 and hp["behavior_steps"] == 100_000
    assert isinstance(hp["behavior_steps"], int)
    assert parse_overrides(["gamma=9e-1 critic_learning_rate=-1E-3"]) == {"gamma": 0.9, "critic_learning_rate": -1e-3}


def test_errors_in_the_default_block_and_missing_keys():
    with pytest.raises(ConfigError, match=r"zoo/flow.yml, default block, key gamma: expected a number, got a string"):
        _zoo("default:\n  hyperparams: {gamma: high}\n" + TASK).resolve("hopper-medium", "gpu")
    with pytest.raises(ConfigError, match=r"task hopper-medium, key datasets: is required"):
        _zoo("hopper-medium: {env: Hopper-v5}").resolve("hopper-medium", "gpu")
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        ZooFile.load("flow", _write_tmp("a: [b"))


def _write_tmp(text: str):
    import tempfile

    handle = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    handle.write(text)
    handle.close()
    return handle.name


def test_unknown_task_lists_close_matches():
    with pytest.raises(ConfigError) as error:
        load_task("hoper-medium")
    message = str(error.value)
    assert "unknown task 'hoper-medium' in zoo/flow.yml" in message and "Did you mean hopper-medium" in message
    with pytest.raises(ConfigError, match="not a task"):
        load_task("default")


def test_layers_resolve_in_order():
    zoo = _zoo(
        """
default:
  eval_freq: 1
  hyperparams: {beta: 1.0, gamma: 0.5, critic_tau: 0.1}
  cpu:
    hyperparams: {gamma: 0.6, policy_tau: 0.2}
hopper-medium:
  datasets: [mujoco/hopper/medium-v0]
  env: Hopper-v5
  eval_freq: 2
  hyperparams: {beta: 2.0, gamma: 0.7, policy_tau: 0.3}
  cpu:
    hyperparams: {beta: 4.0}
"""
    )
    gpu = zoo.resolve("hopper-medium", "gpu")
    assert (gpu.eval_freq, gpu.hyperparams) == (2, {"beta": 2.0, "gamma": 0.7, "critic_tau": 0.1, "policy_tau": 0.3})
    cpu = zoo.resolve("hopper-medium", "cpu", overrides={"critic_tau": 0.05, "eval_freq": 3})
    # default -> task -> default.cpu -> task.cpu -> overrides
    assert cpu.hyperparams == {"beta": 4.0, "gamma": 0.6, "critic_tau": 0.05, "policy_tau": 0.2}
    assert cpu.eval_freq == 3
    assert zoo.resolve("hopper-medium", "gpu", datasets=["x.hdf5"]).datasets == ("x.hdf5",)


def test_command_line_overrides_are_read_as_yaml_and_validated():
    parsed = parse_overrides(
        ["beta=5 gamma=0.9", "policy_kwargs={hidden_dims: [64, 64], architecture: mlp}", "alpha_q=null"]
    )
    assert parsed == {
        "beta": 5,
        "gamma": 0.9,
        "policy_kwargs": {"hidden_dims": [64, 64], "architecture": "mlp"},
        "alpha_q": None,
    }
    config = load_task("hopper-medium", profile="cpu", overrides=parsed)
    assert config.hyperparams["beta"] == 5.0 and isinstance(config.hyperparams["beta"], float)
    assert load_task("hopper-medium", overrides=parse_overrides(["policy_learning_rate=3e-4"])).hyperparams[
        "policy_learning_rate"
    ] == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="--hyperparams, key policy_learning_rate: expected a number"):
        load_task("hopper-medium", overrides=parse_overrides(["policy_learning_rate=fast"]))
    with pytest.raises(ConfigError, match="key env: is part of the task"):
        load_task("hopper-medium", overrides=parse_overrides(["env=Walker2d-v5"]))
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_overrides(["beta"])


def test_resolved_config_round_trips_through_a_run_config():
    from qipo_agents.zoo.config import task_from_dict

    config = load_task("antmaze-large-diverse", "diffusion", "cpu")
    assert task_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())), "config.yml") == config


def test_one_step_distillation_is_configurable_from_the_zoo():
    overrides = parse_overrides(["distill_steps=5000", "policy_kwargs={one_step_hidden_dims: [64, 64]}"])
    config = load_task("hopper-medium", profile="cpu", overrides=overrides)
    assert config.hyperparams["distill_steps"] == 5000
    assert config.hyperparams["policy_kwargs"]["one_step_hidden_dims"] == [64, 64]
    with pytest.raises(ConfigError, match="one_step_learning_rate"):  # QIPO sets it from distill_learning_rate
        load_task("hopper-medium", overrides=parse_overrides(["policy_kwargs={one_step_learning_rate: 0.1}"]))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("algo", ALGOS)
def test_sac_recipe_tasks_validate_without_their_data(algo, profile, minari_root):
    zoo = ZooFile.load(algo)
    for env, reference in (("hopper", 3234.3), ("halfcheetah", 12135.0), ("walker2d", 4592.3)):
        for kind in ("medium-replay", "sac-medium"):
            config = zoo.resolve(f"local-{env}-{kind}", profile)
            assert list(config.datasets) == [f"local/{env}/{kind}-v0"] and config.reference_scores[1] == reference
