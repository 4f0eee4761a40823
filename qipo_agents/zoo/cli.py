"""The ``qipo-zoo`` command: ``list``, ``train``, ``tune``, ``eval``, ``export``, ``collect``, ``plot``.

Every expected failure (unknown task, invalid config, missing dataset, wrong file) is reported as
one ``Error: ...`` line with exit status 1 — no traceback; Ctrl-C or SIGTERM during training
saves a checkpoint and exits with status 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from qipo_agents import __version__
from qipo_agents.errors import ConfigError, QIPOError

LOG_FOLDER = "logs"


def _user_errors(command: Callable) -> Callable:
    """Report qipo_agents' own errors and file-system errors as click errors, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (QIPOError, OSError) as error:  # our errors, and missing files / permissions / full disks
            raise click.ClickException(str(error)) from error

    return wrapper


def _resolve_device(device: str, profile: str | None) -> tuple[str, str]:
    """``(device, profile)``: the profile defaults to ``gpu`` on a CUDA device, ``cpu`` otherwise."""
    from qipo_agents.common.device import get_device

    try:
        resolved = get_device(device)
    except (ValueError, RuntimeError) as error:
        raise click.BadParameter(str(error), param_hint="--device") from error
    return device, profile or ("gpu" if resolved.type == "cuda" else "cpu")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qipo-zoo")
def main() -> None:
    """Train and evaluate QIPO agents on offline RL tasks with per-task hyperparameters.

    \b
    qipo-zoo list                          tasks, their datasets, and which are here
    qipo-zoo train hopper-medium-mini      train + evaluate on the dataset shipped with the package
    qipo-zoo eval logs/flow/hopper-medium-mini_1 --video hopper.gif
    qipo-zoo train local-hopper-medium --seeds 0 1 2 --n-jobs 2
    qipo-zoo tune local-hopper-medium --n-trials 20 --storage tune.log --study-name hopper
    qipo-zoo plot --aggregate logs/flow/local-hopper-medium_*
    """


# ---------------------------------------------------------------------------------------------- list
@main.command("list")
@click.option("--algo", type=click.Choice(["flow", "diffusion"]), default="flow", show_default=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file layered over zoo/<algo>.yml")
@_user_errors
def list_tasks(algo: str, config_file: str | None) -> None:
    """Tasks, their datasets and whether each dataset is on this machine (no network access)."""
    from rich.console import Console
    from rich.table import Table

    from qipo_agents.data.minari_loader import datasets_root
    from qipo_agents.zoo.config import ZooFile
    from qipo_agents.zoo.sources import DatasetSpec

    zoo = ZooFile.load(algo, config_file)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)
    console.print(f"{zoo.source}: {len(zoo.tasks)} tasks for --algo {algo}; local Minari store: {datasets_root()}")
    table = Table(show_lines=True)
    for column in ("task", "env", "datasets", "here", "data", "reference (random / expert)", "steps cpu / gpu"):
        table.add_column(column, overflow="fold")
    failures, missing = [], {}
    for task in zoo.tasks:
        try:
            gpu, cpu = zoo.resolve(task, "gpu"), zoo.resolve(task, "cpu")
        except ConfigError as error:
            failures.append(f"{task}: invalid: {error}")
            continue
        specs = [DatasetSpec(d) for d in gpu.datasets]
        for spec in specs:
            if not spec.available:
                missing.setdefault(spec.kind, []).append(spec)
        reference = "" if gpu.reference_scores is None else " / ".join(f"{x:g}" for x in gpu.reference_scores)
        table.add_row(
            task,
            gpu.env,
            "\n".join(spec.spec for spec in specs),
            "\n".join(_availability(spec) for spec in specs),
            "\n".join(_data_facts(spec) for spec in specs),
            reference,
            f"{cpu.planned_timesteps:,} / {gpu.planned_timesteps:,}",
        )
    console.print(table)
    for kind, specs in missing.items():
        console.print(f"[yellow]{len(specs)} missing {kind} dataset(s)[/yellow]: {_remedy(kind)}")
    for failure in failures:
        console.print(f"[red]{failure}[/red]")
    if failures:
        raise click.ClickException(f"{len(failures)} task(s) of {zoo.source} are invalid (see above)")


def _availability(spec) -> str:
    if not spec.available:
        return "[yellow]missing[/yellow]"
    return "[green]shipped[/green]" if spec.kind == "builtin" else "[green]yes[/green]"


def _data_facts(spec) -> str:
    metadata = spec.metadata()
    facts = []
    if metadata.get("total_episodes") is not None:
        facts.append(f"{metadata['total_episodes']} episodes, {metadata.get('total_steps')} steps")
    if metadata.get("mean_return") is not None:
        facts.append(f"mean return {metadata['mean_return']:.1f}")
    if metadata.get("normalized_score") is not None:
        facts.append(f"D4RL-normalised {metadata['normalized_score']:.1f}")
    return "; ".join(facts)


def _remedy(kind: str) -> str:
    if kind == "minari":
        return (
            "they download on first use when this machine is online (or `minari download ID`); "
            "`python scripts/make_local_datasets.py` builds the local/* ones; `qipo-zoo collect` "
            "records your own; or set MINARI_DATASETS_PATH to a store that has them"
        )
    if kind == "builtin":
        return "they ship with qipo_agents: reinstall the package"
    return "put each file at the path shown, or train with --dataset PATH"


# an agent saved at the end of its critic phase, for `train` and `tune`
START_FROM_OPTION = click.option(
    "--start-from",
    type=click.Path(dir_okay=False),
    metavar="CHECKPOINT",
    help="start from an agent saved at the end of its critic phase (a run's checkpoints/qipo_<steps>_steps.zip) "
    "and train only what follows, with this command's refinement settings (for tune: every trial's)",
)


# ---------------------------------------------------------------------------------------------- train
@main.command()
@click.argument("task")
@click.argument("extra_overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--algo", type=click.Choice(["flow", "diffusion"]), default="flow", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--seeds",
    "seeds",
    type=int,
    multiple=True,
    metavar="S [S ...]",
    help="train one run per seed (--seeds 0 1 2) and write a summary over them",
)
@click.option("--n-jobs", type=click.IntRange(min=1), default=1, show_default=True, help="with --seeds: runs at a time")
@click.option(
    "--trial",
    metavar="STORAGE:STUDY:N",
    help="train with the hyperparameters of trial N of a `qipo-zoo tune` study (and its seed, unless --seed/--seeds)",
)
@START_FROM_OPTION
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
@click.option("--profile", type=click.Choice(["cpu", "gpu"]), help="budget profile [default: gpu with CUDA, else cpu]")
@click.option(
    "-H",
    "--hyperparams",
    multiple=True,
    metavar="KEY=VALUE",
    help="override a QIPO hyperparameter or run setting, value read as YAML: --hyperparams beta=5.0 "
    "'policy_kwargs={hidden_dims: [64, 64]}' (several may follow one flag)",
)
@click.option("--dataset", "datasets", multiple=True, metavar="SOURCE", help="train on this data instead (repeatable)")
@click.option("--log-folder", default=LOG_FOLDER, show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[RUN_DIR]",
    help="continue an interrupted run from its last checkpoint (default: the task's latest run)",
)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file layered over zoo/<algo>.yml")
@click.option("--verbose", type=int, default=1, show_default=True, help="0: quiet; 1: phase changes")
@click.option("--progress/--no-progress", default=True, show_default=True, help="show a progress bar")
@click.option("--result-file", type=click.Path(dir_okay=False), hidden=True, help="write the run's result as JSON")
@click.pass_context
@_user_errors
def train(
    context: click.Context,
    task: str,
    extra_overrides: Sequence[str],
    algo: str,
    seed: int,
    seeds: Sequence[int],
    n_jobs: int,
    trial: str | None,
    start_from: str | None,
    device: str,
    profile: str | None,
    hyperparams: Sequence[str],
    datasets: Sequence[str],
    log_folder: str,
    resume: str | None,
    config_file: str | None,
    verbose: int,
    progress: bool,
    result_file: str | None,
) -> None:
    """Train TASK (see `qipo-zoo list`) into LOG_FOLDER/ALGO/TASK_N/ and evaluate the result.

    Hyperparameters come from zoo/ALGO.yml (profile `cpu` without CUDA), then --hyperparams.
    With --seeds, one such run per seed (--n-jobs at a time) and LOG_FOLDER/ALGO/TASK_seeds_N.json
    with their scores and aggregate.
    """
    from qipo_agents.common.atomic import write_text_atomic
    from qipo_agents.zoo.config import load_task, parse_overrides
    from qipo_agents.zoo.train import TrainingInterrupted, read_run_config, resume_run, run_dirs, train_task

    # --seeds 0 1 2: click takes the first value; the others arrive as bare integers among KEY=VALUE
    items = [item for item in [*hyperparams, *extra_overrides] if not (seeds and item.lstrip("-").isdigit())]
    seeds = [*seeds, *(int(item) for item in extra_overrides if seeds and item.lstrip("-").isdigit())]
    seed_given = context.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT
    if seeds and seed_given:
        raise click.UsageError("give --seed or --seeds, not both")
    if trial is not None:
        if resume is not None:
            raise click.UsageError("--trial starts a new run: drop --resume")
        from qipo_agents.zoo.tune import trial_settings

        settings = trial_settings(trial, task)
        algo, profile = settings["algo"], profile or settings["profile"]
        items = [*settings["items"], *items]
        datasets = datasets or tuple(settings["datasets"] or ())
        config_file = config_file or settings["config_file"]
        seed = seed if seed_given else settings["seed"]
        start_from = start_from or settings["start_from"]
    if start_from is not None and (seeds or resume is not None):
        raise click.UsageError(
            "--start-from continues one saved agent, whose random state it carries: drop --seeds and --resume"
        )
    if seeds:
        if resume is not None:
            raise click.UsageError("--seeds starts new runs: resume each run folder on its own")
        from qipo_agents.zoo.seeds import train_seeds

        device, profile = _resolve_device(device, profile)
        load_task(task, algo, profile, parse_overrides(items), list(datasets) or None, config_file)  # fail fast
        args = _train_args(task, algo, device, profile, log_folder, datasets, config_file, items)
        train_seeds([*args, "--verbose", str(verbose)], seeds, n_jobs, log_folder, algo, task, echo=click.echo)
        return
    if resume is not None:
        if items or datasets or config_file or profile:
            raise ConfigError(
                "a resumed run keeps its config.yml: drop --hyperparams, --dataset, --config and --profile"
            )
        run_dir = _resume_dir(resume, log_folder, algo, task, run_dirs)
        saved, _ = read_run_config(run_dir)
        if saved.name != task:
            raise ConfigError(f"{run_dir} is a run of {saved.name}, not of {task}")
        algo = saved.algo  # an explicit RUN_DIR decides the agent
        command = _command(
            ["train", task, "--algo", algo, "--resume", str(run_dir)], device if device != "auto" else None
        )
        run = functools.partial(
            resume_run,
            run_dir,
            command,
            device=None if device == "auto" else device,
            verbose=verbose,
            progress=progress,
        )
    else:
        device, profile = _resolve_device(device, profile)
        config = load_task(task, algo, profile, parse_overrides(items), list(datasets) or None, config_file)
        args = _train_args(task, algo, device, profile, log_folder, datasets, config_file, items)
        if start_from is not None:
            args[4:4] = ["--start-from", start_from]
        run = functools.partial(
            train_task,
            config,
            seed,
            device,
            log_folder,
            _command([*args[:4], "--seed", str(seed), *args[4:]]),
            verbose=verbose,
            progress=progress,
            start_from=start_from,
        )
    try:
        result = run(echo=click.echo)
    except TrainingInterrupted as stop:
        click.echo(f"\n{stop}", err=True)
        if stop.checkpoint is not None:
            click.echo(f"resume with: qipo-zoo train {task} --algo {algo} --resume {stop.run_dir}", err=True)
        sys.exit(stop.exit_status)
    if result.final is not None:
        click.echo(f"final evaluation after {result.num_timesteps} steps: {result.final}")
    click.echo(f"run folder: {result.run_dir}")
    if result_file is not None:
        write_text_atomic(result_file, json.dumps(result.to_dict(), indent=2) + "\n")


def _train_args(
    task: str,
    algo: str,
    device: str,
    profile: str,
    log_folder: str,
    datasets: Sequence[str],
    config_file: str | None,
    items: Sequence[str],
) -> list[str]:
    """The ``train`` command line of a run, without its seed: what command.txt records."""
    args = ["train", task, "--algo", algo, "--device", device, "--profile", profile, "--log-folder", log_folder]
    for source in datasets:
        args += ["--dataset", source]
    if config_file:
        args += ["--config", config_file]
    if items:
        args += ["--hyperparams", *items]
    return args


def _resume_dir(resume: str, log_folder: str, algo: str, task: str, run_dirs) -> Path:
    if resume != "latest":
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise ConfigError(f"--resume {resume}: no such run folder")
        return run_dir
    existing = run_dirs(log_folder, algo, task)
    if not existing:
        raise ConfigError(f"no run of {task} under {Path(log_folder) / algo} to resume")
    return existing[-1]


def _command(args: list[str], device: str | None = None) -> str:
    if device:
        args = [*args, "--device", device]
    return shlex.join(["qipo-zoo", *args])


# ---------------------------------------------------------------------------------------------- tune
@main.command()
@click.argument("task")
@click.argument("extra_overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--algo", type=click.Choice(["flow", "diffusion"]), default="flow", show_default=True)
@click.option("--n-trials", type=click.IntRange(min=1), required=True, help="trials this worker runs")
@click.option(
    "--storage",
    required=True,
    help="a journal file ending in .log (one machine or a shared filesystem), or a database URL "
    "(sqlite:///study.db, postgresql://...) that workers on several machines share",
)
@click.option("--study-name", required=True, help="the study; workers with the same name share it")
@click.option("--sampler", type=click.Choice(["tpe", "random"]), default="tpe", show_default=True)
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True)
@click.option("--search-space", type=click.Path(dir_okay=False), help="a YAML file instead of zoo/<algo>_search.yml")
@click.option(
    "-H",
    "--hyperparams",
    multiple=True,
    metavar="KEY=VALUE",
    help="fixed settings of every trial (e.g. a smaller budget for a smoke test), as for train",
)
@START_FROM_OPTION
@click.option("--seed", type=int, default=0, show_default=True, help="training seed of every trial")
@click.option("--device", default="auto", show_default=True)
@click.option("--profile", type=click.Choice(["cpu", "gpu"]), help="budget profile [default: gpu with CUDA, else cpu]")
@click.option("--dataset", "datasets", multiple=True, metavar="SOURCE", help="train on this data instead (repeatable)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file layered over zoo/<algo>.yml")
@click.option("--log-folder", default=LOG_FOLDER, show_default=True, type=click.Path(file_okay=False))
@click.option("--verbose", type=int, default=0, show_default=True)
@_user_errors
def tune(
    task: str,
    extra_overrides: Sequence[str],
    algo: str,
    n_trials: int,
    storage: str,
    study_name: str,
    sampler: str,
    pruner: str,
    search_space: str | None,
    hyperparams: Sequence[str],
    seed: int,
    device: str,
    profile: str | None,
    datasets: Sequence[str],
    config_file: str | None,
    log_folder: str,
    verbose: int,
    start_from: str | None,
) -> None:
    """Search TASK's hyperparameters with Optuna: run N trials of a study that workers share.

    Every trial is a run folder, LOG_FOLDER/tune/STUDY/trial_N/; its objective is the final
    D4RL-normalised score. Start the same command on several machines (with a database URL) or
    several times on one (with a .log file) to run workers in parallel. Retrain a trial with
    `qipo-zoo train TASK --trial STORAGE:STUDY:N`.
    """
    from qipo_agents.zoo.config import parse_overrides
    from qipo_agents.zoo.train import TrainingInterrupted
    from qipo_agents.zoo.tune import tune as run_tune

    device, profile = _resolve_device(device, profile)
    try:
        study = run_tune(
            task,
            algo,
            profile,
            device,
            n_trials,
            storage,
            study_name,
            sampler=sampler,
            pruner=pruner,
            overrides=parse_overrides([*hyperparams, *extra_overrides]),
            datasets=list(datasets) or None,
            config_file=config_file,
            search_space=search_space,
            seed=seed,
            log_folder=log_folder,
            verbose=verbose,
            echo=click.echo,
            start_from=start_from,
        )
    except TrainingInterrupted as stop:
        click.echo(f"\n{stop}; the trial is marked FAIL in the study, the finished trials are kept", err=True)
        sys.exit(stop.exit_status)
    states = [trial.state.name for trial in study.trials]
    counts = ", ".join(f"{states.count(state)} {state.lower()}" for state in sorted(set(states)))
    click.echo(f"study {study_name}: {len(states)} trials ({counts})")
    try:
        best = study.best_trial
    except ValueError:  # no trial has completed yet
        return
    click.echo(f"best: trial {best.number}, score {best.value:.2f}, {best.params}")
    click.echo(f"retrain it: qipo-zoo train {task} --trial {storage}:{study_name}:{best.number}")


# ---------------------------------------------------------------------------------------------- eval
@main.command("eval")
@click.argument("run_or_model", type=click.Path(exists=True))
@click.option("--episodes", type=click.IntRange(min=1), help="[default: the run's n_final_eval_episodes, else 10]")
@click.option("--seed", type=int, default=0, show_default=True, help="episode i resets with seed + i")
@click.option("--video", type=click.Path(dir_okay=False), help="write the first episode to a .gif or .mp4")
@click.option("--env", "env_id", help="evaluation env id (default: the run's, or the one recorded with the data)")
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--deterministic/--stochastic",
    default=None,
    help="[default: the run's setting, else stochastic; a trusted extraction acts as its extraction_acting says]",
)
@click.option(
    "--best-of-n",
    type=click.IntRange(min=1),
    help="act with the best of N sampled actions by Q [default: the agent's own best_of_n]",
)
@click.option(
    "--extraction-acting",
    type=click.Choice(["sampled", "deterministic"]),
    help="how a trusted Q-guided extraction acts unless --deterministic [default: the agent's extraction_acting]",
)
@click.option(
    "--acting-temperature",
    type=click.FloatRange(min=0.0, max=1.0),
    help="scale of the noise a sampled action starts from (1: sample the policy, 0: its zero-noise action) "
    "[default: the agent's acting_temperature]",
)
@click.option("--sampler", is_flag=True, help="act with the multi-step sampler, not a distilled one-step policy")
@click.option(
    "--n-envs",
    type=click.IntRange(min=1),
    help="episodes run at once, one batched predict per step [default: the run's n_eval_envs, else 1]",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="also write the evaluation as JSON here (final_eval.json's fields, with the model and acting rule)",
)
@_user_errors
def eval_command(
    run_or_model: str,
    episodes: int | None,
    seed: int,
    video: str | None,
    env_id: str | None,
    device: str,
    deterministic: bool | None,
    best_of_n: int | None,
    extraction_acting: str | None,
    acting_temperature: float | None,
    sampler: bool,
    n_envs: int | None,
    out: str | None,
) -> None:
    """Evaluate a run folder's agent (or a saved agent zip): mean ± std return and D4RL-normalised score."""
    from qipo_agents.common.atomic import check_writable, write_text_atomic
    from qipo_agents.zoo.evaluate import evaluate_target

    if out is not None:  # fail before a long evaluation, not after it
        check_writable(out, lambda message: ConfigError(f"--out: {message}"))
    evaluated = evaluate_target(
        run_or_model,
        episodes,
        seed,
        video,
        env_id,
        device,
        deterministic,
        best_of_n,
        sampler,
        n_envs,
        extraction_acting,
        acting_temperature,
    )
    click.echo(f"{evaluated.model} in {evaluated.env_id}: {evaluated.result}")
    if evaluated.video is not None:
        click.echo(f"video of episode 1: {evaluated.video}")
    if out is not None:
        written = write_text_atomic(out, json.dumps(evaluated.report, indent=2) + "\n")
        click.echo(f"wrote {written}")


# ---------------------------------------------------------------------------------------------- export
@main.command("export")
@click.argument("run_or_model", type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript"]),
    default=None,
    help="[default: from the --out suffix: .onnx, or .pt/.pth for TorchScript]",
)
@click.option("--out", required=True, type=click.Path(), help="the file to write (policy.onnx, policy.pt)")
@_user_errors
def export_command(run_or_model: str, fmt: str | None, out: str) -> None:
    """Write the acting policy of a run folder (or a saved agent zip) as ONNX or TorchScript.

    Inputs `observation` (batch, obs_dim) and `noise` (batch, action_dim), output `action`:
    zero noise gives predict(obs, deterministic=True), standard normal noise a sampled action.
    """
    from qipo_agents.qipo.algorithm import QIPO
    from qipo_agents.qipo.export import export_format
    from qipo_agents.zoo.evaluate import locate_model

    model, _ = locate_model(run_or_model)
    agent = QIPO.load(model, device="cpu")
    path = agent.export(out, format=fmt)
    click.echo(
        f"wrote {path} ({export_format(path, fmt)}): observation ({agent.observation_space.shape[0]}) + noise "
        f"({agent.action_space.shape[0]}) -> action, {type(agent).__name__} from {model}"
    )


# ---------------------------------------------------------------------------------------------- collect
@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--env", "env_id", required=True, help="Gymnasium env id to roll out in, e.g. Hopper-v5")
@click.option("--dataset-id", required=True, help="Minari id to create, e.g. local/hopper/sac-v0")
@click.option("--steps", type=click.IntRange(min=1), default=1_000_000, show_default=True, help="env steps to record")
@click.option("--stochastic/--deterministic", default=True, show_default=True, help="sample actions (D4RL) or not")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--env-package", help="module that registers the env (e.g. gymnasium_robotics)")
@click.option("--ref-min-score", type=float, help="random-policy return [default: D4RL's for the env family]")
@click.option("--ref-max-score", type=float, help="expert return [default: D4RL's for the env family]")
@click.option("--author", default="qipo-zoo collect", show_default=True)
@click.option("--author-email", default="none@example.com", show_default=True)
@click.option("--description", help="dataset description [default: a summary of the collection]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option(
    "--vecnormalize",
    type=click.Path(exists=True, dir_okay=False),
    help="VecNormalize statistics the agent acts behind [default: found in the rl-zoo layout]",
)
@click.option(
    "--agent-config",
    type=click.Path(exists=True, dir_okay=False),
    help="the agent's rl-zoo config.yml, for its env_wrapper [default: found in the rl-zoo layout]",
)
@click.option("--algo", help="the SB3 algorithm (ppo, tqc, ...) when the zip does not tell")
@_user_errors
def collect(
    model: str,
    env_id: str,
    dataset_id: str,
    steps: int,
    stochastic: bool,
    seed: int,
    env_package: str | None,
    ref_min_score: float | None,
    ref_max_score: float | None,
    author: str,
    author_email: str,
    description: str | None,
    device: str,
    progress: bool,
    vecnormalize: str | None,
    agent_config: str | None,
    algo: str | None,
) -> None:
    """Roll out MODEL (an SB3 / sb3-contrib zip or a qipo_agents save) into a local Minari dataset.

    rl-baselines3-zoo agents act as they were trained: behind their VecNormalize statistics and
    env wrappers (read from <dir>/<stem>/vecnormalize.pkl and config.yml, or the Hugging Face
    layout), while the dataset records the env's raw observations. The dataset goes to the local
    Minari store ($MINARI_DATASETS_PATH, else ~/.minari/datasets), written episode by episode.
    """
    from qipo_agents.collection import collect as run_collect

    if (ref_min_score is None) != (ref_max_score is None):
        raise click.UsageError("give both --ref-min-score and --ref-max-score, or neither")
    reference = None if ref_min_score is None else (ref_min_score, ref_max_score)
    if reference is not None and not reference[1] > reference[0]:
        raise click.BadParameter("--ref-max-score must exceed --ref-min-score")
    done = run_collect(
        model,
        env_id,
        dataset_id,
        steps,
        stochastic=stochastic,
        seed=seed,
        env_package=env_package,
        reference=reference,
        author=author,
        author_email=author_email,
        description=description,
        device=device,
        progress=progress,
        vecnormalize=vecnormalize,
        config=agent_config,
        algo=algo,
    )
    text = f"wrote Minari dataset {done.dataset_id} to {done.path}: {done.n_episodes} episodes, {done.n_steps} steps"
    if len(done.returns):
        text += (
            f"; return {done.returns.mean():.1f} ± {done.returns.std():.1f} over {len(done.returns)} complete episodes"
        )
        if done.normalized is not None:
            text += f", D4RL-normalised {done.normalized.mean():.1f}"
    click.echo(text)


# ---------------------------------------------------------------------------------------------- plot
@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="learning_curves.png", show_default=True, type=click.Path(dir_okay=False))
@click.option(
    "--aggregate/--per-run",
    default=False,
    show_default=True,
    help="one curve per task and agent over its runs (seeds): the mean with a bootstrap 95%% CI, and the IQM",
)
@_user_errors
def plot(run_dirs: Sequence[str], out: str, aggregate: bool) -> None:
    """Learning curves and final scores of one or several runs, to a PNG."""
    from qipo_agents.zoo.plot import plot_runs

    path = plot_runs(list(run_dirs), out, aggregate=aggregate)
    click.echo(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
