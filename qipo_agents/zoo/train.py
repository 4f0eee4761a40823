"""Run a zoo task: dataset → agent → learn (evaluations, checkpoints, logs) → model → final evaluation.

A run lives in ``<log_folder>/<algo>/<task>_<n>/`` (``n`` counts up from 1, as in
rl-baselines3-zoo) and holds::

    config.yml          the resolved TaskConfig, seed and device (what `--resume` and `eval` read)
    command.txt         the command that started the run (and each resume)
    progress.csv        logger output (earlier parts of a resumed run: progress.1.csv, ...)
    events.out.tfevents.*   TensorBoard
    evaluations.jsonl   one line per evaluation during training
    best_model.zip      the agent with the best evaluation so far
    checkpoints/        qipo_<steps>_steps.zip, the last two kept
    <task>.zip          the trained agent
    final_eval.json     the final evaluation

Ctrl-C, SIGTERM or a crash saves a checkpoint first (saves are atomic; a signal stops training
between two steps, so the checkpoint resumes exactly), and ``resume_run`` continues from the
latest checkpoint for the steps the run still had to do.

A run may start from an agent saved at the end of its critic phase instead of from scratch
(``start_from``): it then trains only the refinement (and distillation), whose settings may differ
from the checkpoint's, so a study of refinement settings shares one warm-up and critic.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import get_system_info
from stable_baselines3.common.vec_env import DummyVecEnv

from qipo_agents.common.atomic import write_text_atomic
from qipo_agents.common.callbacks import CheckpointCallback, EvalCallback, ProgressBarCallback
from qipo_agents.common.device import cpu_description
from qipo_agents.common.evaluation import EvaluationResult, check_env_spaces, evaluate, reference_scores
from qipo_agents.common.interrupts import TrainingSignal
from qipo_agents.common.save_format import read_save_data
from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.data.sources import make_buffer
from qipo_agents.errors import ConfigError, DatasetNotFoundError, QIPOError
from qipo_agents.zoo.config import TaskConfig, task_from_dict
from qipo_agents.zoo.envs import make_env
from qipo_agents.zoo.sources import DatasetSpec, dataset_sources

if TYPE_CHECKING:
    from qipo_agents.qipo.algorithm import QIPO

CONFIG_FILE = "config.yml"
COMMAND_FILE = "command.txt"
FINAL_EVAL_FILE = "final_eval.json"
EVALUATIONS_FILE = "evaluations.jsonl"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "qipo"

Echo = Callable[[str], Any]


class TrainingInterrupted(QIPOError):
    """Training was stopped with Ctrl-C or SIGTERM; ``checkpoint`` is the checkpoint to resume from.

    ``signal_name`` names the signal (None for a ``KeyboardInterrupt`` raised by code, e.g. a
    callback). ``mid_step`` is True when a second Ctrl-C stopped training in the middle of a step:
    the agent is not saved then, and ``checkpoint`` is the latest one saved before.
    """

    def __init__(
        self,
        run_dir: Path,
        checkpoint: Path | None,
        num_timesteps: int,
        signal_name: str | None = None,
        mid_step: bool = False,
    ):
        self.run_dir, self.checkpoint, self.num_timesteps = run_dir, checkpoint, num_timesteps
        self.signal_name, self.mid_step = signal_name, mid_step
        by = f" by {signal_name}" if signal_name else ""
        if mid_step:
            saved = f"the latest checkpoint is {checkpoint}" if checkpoint else "no checkpoint was saved before it"
            message = (
                f"training interrupted{by} at step {num_timesteps}, in the middle of a step: not saved, "
                f"a save would not resume exactly; {saved}"
            )
        else:
            saved = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (no step was trained)"
            message = f"training interrupted{by} at step {num_timesteps}; {saved}"
        super().__init__(message)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + (signal.Signals[self.signal_name] if self.signal_name else signal.SIGINT)


@dataclass
class RunResult:
    """A finished run; ``final`` is None when it has no final evaluation (``n_final_eval_episodes: 0``,
    or training was stopped early by a callback, e.g. a pruned tuning trial)."""

    run_dir: Path
    model_path: Path
    num_timesteps: int
    final: EvaluationResult | None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "model_path": str(self.model_path),
            "num_timesteps": self.num_timesteps,
            "stopped_early": self.stopped_early,
            "final": None if self.final is None else self.final.to_dict(),
        }


# ---------------------------------------------------------------------------------------------- run folders
def run_dirs(log_folder: str | Path, algo: str, task: str) -> list[Path]:
    """Existing ``<log_folder>/<algo>/<task>_<n>`` folders, by ``n``."""
    folder = Path(log_folder) / algo
    pattern = re.compile(rf"{re.escape(task)}_(\d+)")
    found = [(int(m.group(1)), p) for p in folder.glob(f"{task}_*") if (m := pattern.fullmatch(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def create_run_dir(log_folder: str | Path, algo: str, task: str) -> Path:
    """Make ``<log_folder>/<algo>/<task>_<n>`` with the next free ``n`` (safe against a concurrent run)."""
    existing = run_dirs(log_folder, algo, task)
    n = int(existing[-1].name.rsplit("_", 1)[1]) + 1 if existing else 1
    (Path(log_folder) / algo).mkdir(parents=True, exist_ok=True)
    while True:
        run_dir = Path(log_folder) / algo / f"{task}_{n}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1


def read_run_config(run_dir: str | Path) -> tuple[TaskConfig, dict[str, Any]]:
    """``(config, run info)`` from a run's ``config.yml``; run info has ``seed``, ``device`` and
    ``start_from`` (None for a run trained from scratch)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a qipo-zoo run folder (it has no {CONFIG_FILE})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, dict) or "task" not in data:
        raise ConfigError(f"{path} is not a qipo-zoo run config (no `task` key)")
    info = {
        key: data.pop(key, None) for key in ("seed", "device", "start_from", "qipo_agents_version", "created", "system")
    }
    data["name"] = data.pop("task")
    return task_from_dict(data, str(path)), info


def write_run_config(run_dir: Path, config: TaskConfig, seed: int, device: str, start_from: Path | None = None) -> None:
    from qipo_agents import __version__

    values = config.to_dict()
    data = {
        "task": values.pop("name"),
        "algo": values.pop("algo"),
        "profile": values.pop("profile"),
        "seed": seed,
        "device": device,
        **({"start_from": str(start_from)} if start_from is not None else {}),
        "qipo_agents_version": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        # a seed repeats its run exactly only on the same CPU kind and library versions
        "system": {
            **{key: str(value) for key, value in get_system_info(print_info=False)[0].items()},
            "CPU": cpu_description(),
        },
        **values,
    }
    write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def check_start_checkpoint(config: TaskConfig, checkpoint: str | Path, changed: set[str] | None = None) -> dict:
    """Check that ``checkpoint`` can start a run of ``config``: an agent of the task's algorithm
    saved at the end of its critic phase, trained with the task's settings for every phase it ran.
    Settings in ``config`` (and the names in ``changed``, e.g. a search space's) may differ from
    the checkpoint's only where the later phases read them (``refinement_settings``).

    Returns the hyperparameters to load it with: the refinement settings ``config`` changes.
    """
    checkpoint = Path(checkpoint)
    try:
        data = read_save_data(checkpoint)
    except (FileNotFoundError, QIPOError) as error:
        raise ConfigError(f"--start-from {checkpoint}: {error}") from error
    agent_class = config.agent_class
    if data.get("class") != agent_class.__name__:
        raise ConfigError(
            f"--start-from {checkpoint} holds a {data.get('class')} agent; task {config.name} trains {agent_class.__name__} "
            f"(--algo {config.algo})"
        )
    saved = data.get("config", {})
    training_state = data.get("training_state", {})
    schedule = training_state.get("schedule") or {}
    critic_end = schedule.get("behavior_steps", 0) + schedule.get("critic_steps", 0)
    position = training_state.get("schedule_position")
    if not schedule or position != critic_end:
        raise ConfigError(
            f"--start-from {checkpoint} was saved at step {position}; a run can start from the end of the "
            f"critic phase only (step {critic_end}: checkpoints/{CHECKPOINT_PREFIX}_{critic_end}_steps.zip of its run)"
        )
    planned = {name: config.hyperparams.get(name, saved.get(name)) for name in ("behavior_steps", "critic_steps")}
    # a setting the checkpoint does not hold (a file written before it existed) loads at its default;
    # a refinement setting the task leaves unset runs at its default too, whatever the checkpoint's run used
    fields = agent_class.config_class.model_fields
    defaults = {name: field.get_default(call_default_factory=True) for name, field in fields.items()}
    refinement_settings = agent_class.config_class.refinement_settings
    wanted = {name: defaults[name] for name in refinement_settings} | dict(config.hyperparams)
    differs = {name for name, value in wanted.items() if _plain(saved.get(name, defaults[name])) != _plain(value)}
    earlier = sorted(differs - refinement_settings)
    earlier += sorted((changed or set()) - refinement_settings - set(earlier))
    if earlier or planned != {name: schedule[name] for name in planned}:
        listed = ", ".join(f"{name} (checkpoint: {saved.get(name)!r})" for name in earlier) or "the phase lengths"
        raise ConfigError(
            f"--start-from {checkpoint} was trained with other settings than task {config.name} sets for its "
            f"behaviour and critic phases: {listed}; only the refinement's settings may change "
            f"({', '.join(sorted(refinement_settings))})"
        )
    return {name: wanted[name] for name in differs}


def _plain(value: Any) -> Any:
    """``value`` as its JSON form (tuples as lists), so a YAML value compares to a saved one."""
    return json.loads(json.dumps(value))


def model_path(run_dir: Path, task: str) -> Path:
    return Path(run_dir) / f"{task}.zip"


# ---------------------------------------------------------------------------------------------- pieces
def load_task_data(config: TaskConfig) -> OfflineBuffer:
    """The task's datasets, concatenated; fails within seconds (DatasetNotFoundError) when one is missing."""
    try:
        sources = dataset_sources(config.datasets)
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"{error} With qipo-zoo, `--dataset SOURCE` trains task {config.name} on data given by id or path."
        ) from error
    return make_buffer(sources)


def make_task_env(config: TaskConfig, render: bool = False) -> gym.Env:
    dataset = None
    if config.env_from_dataset:
        first = DatasetSpec(config.datasets[0])
        if first.kind == "path" and first.location.suffix.lower() in (".hdf5", ".h5"):
            raise ConfigError(f"task {config.name}: env_from_dataset needs a Minari dataset, not {first.spec}")
        dataset = first.source()
    return make_env(config.env, config.env_kwargs, config.env_package, dataset, render=render)


def evaluation_envs(config: TaskConfig, env: gym.Env, n_envs: int | None = None) -> list[gym.Env]:
    """``env`` and ``n_envs - 1`` more (default: the task's ``n_eval_envs``) made the same way,
    wrappers included, run side by side."""
    n_envs = config.n_eval_envs if n_envs is None else n_envs
    return [env] + [make_task_env(config) for _ in range(n_envs - 1)]


def close_copies(envs: list[gym.Env]) -> None:
    """Close the copies :func:`evaluation_envs` made: every env but the first, which its caller owns."""
    for copy in envs[1:]:
        copy.close()


def task_reference(config: TaskConfig, metadata: dict[str, Any]) -> tuple[float, float] | None:
    if config.reference_scores is not None:
        return tuple(config.reference_scores)
    return reference_scores(metadata)


def _emergency_checkpoint(agent, checkpoint_dir: Path, echo: Echo) -> Path | None:
    """Save the agent as the newest checkpoint (atomic), unless nothing was trained or it is already saved."""
    if agent.num_timesteps == 0:
        return None
    path = checkpoint_dir / f"{CHECKPOINT_PREFIX}_{agent.num_timesteps}_steps.zip"
    if path.exists():
        return path
    try:
        return agent.save(path)
    except Exception as error:  # noqa: BLE001 - keep the original failure; the previous checkpoint stays usable
        echo(f"could not save a checkpoint at step {agent.num_timesteps}: {error}")
        return CheckpointCallback.latest(checkpoint_dir, CHECKPOINT_PREFIX)


def _configure_logger(run_dir: Path, resuming: bool, verbose: int):
    progress = run_dir / "progress.csv"
    if resuming and progress.exists():
        # SB3's CSV output truncates the file: keep the earlier part next to it
        part = 1
        while (run_dir / f"progress.{part}.csv").exists():
            part += 1
        progress.rename(run_dir / f"progress.{part}.csv")
    # --verbose 0: the CSV and TensorBoard logs only, no table on stdout
    return configure(str(run_dir), (["stdout"] if verbose else []) + ["csv", "tensorboard"])


def _restore_evaluations(evaluation: EvalCallback, run_dir: Path, resumed_at: int) -> None:
    """Give a resumed run's callback the evaluations made up to its checkpoint (``resumed_at``), so
    ``evaluations.npz`` and ``evaluations.jsonl`` keep the whole run and the best model is the
    best of all; evaluations after the checkpoint (a run killed without its emergency checkpoint)
    are dropped, they are made again."""
    path = run_dir / EVALUATIONS_FILE
    if not path.exists():
        return
    kept = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [entry for entry in kept if entry["timesteps"] <= resumed_at]
    write_text_atomic(path, "".join(json.dumps(entry) + "\n" for entry in kept))
    for entry in kept:
        evaluation.evaluations_timesteps.append(entry["timesteps"])
        evaluation.evaluations_results.append(entry["returns"])
        evaluation.evaluations_length.append(entry["lengths"])
        evaluation.best_mean_reward = max(evaluation.best_mean_reward, entry["mean_return"])


def _carry_evaluations(checkpoint: Path, run_dir: Path) -> None:
    """Begin a run started from ``checkpoint`` with the evaluations that the checkpoint's own run
    made (``<run>/checkpoints/<name>.zip``, when that run folder is there): the behaviour model's
    scores stay beside the refined policy's. ``_learn`` keeps those up to the checkpoint's step."""
    source = checkpoint.parent.parent / EVALUATIONS_FILE
    if checkpoint.parent.name == CHECKPOINT_DIR and source.is_file():
        write_text_atomic(run_dir / EVALUATIONS_FILE, source.read_text())


def _learn(
    agent,
    config: TaskConfig,
    run_dir: Path,
    env: gym.Env,
    total: int | None,
    seed: int,
    resuming: bool,
    progress: bool,
    echo: Echo,
    after_eval: BaseCallback | None = None,
) -> None:
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    agent.set_logger(_configure_logger(run_dir, resuming, agent.verbose))
    envs = evaluation_envs(config, env)
    evaluation = EvalCallback(
        DummyVecEnv([(lambda copy=copy: copy) for copy in envs]),
        eval_freq=config.eval_freq,
        n_eval_episodes=config.n_eval_episodes,
        deterministic=config.deterministic_eval,
        reference=task_reference(config, agent.dataset_metadata),
        best_model_save_path=run_dir,
        log_path=run_dir,
        seed=seed,
        callback_after_eval=after_eval,
    )
    if resuming:
        _restore_evaluations(evaluation, run_dir, agent.num_timesteps)
    callbacks: list[BaseCallback] = [
        evaluation,
        CheckpointCallback(
            config.checkpoint_freq, checkpoint_dir, name_prefix=CHECKPOINT_PREFIX, keep=config.n_checkpoints_kept
        ),
    ]
    if progress:
        callbacks.append(ProgressBarCallback(only_on_terminal=True))
    try:
        agent.learn(
            total_timesteps=total,
            callback=callbacks,
            log_interval=config.log_interval,
            reset_num_timesteps=not resuming,
        )
    except KeyboardInterrupt as interrupt:
        # Ctrl-C and SIGTERM arrive between two steps (learn() defers them): the saved agent resumes
        # exactly. A second Ctrl-C stops mid-step: saving that half-done step would not
        signal_name = interrupt.signal_name if isinstance(interrupt, TrainingSignal) else None
        if isinstance(interrupt, TrainingSignal) and not interrupt.at_step_boundary:
            checkpoint = CheckpointCallback.latest(checkpoint_dir, CHECKPOINT_PREFIX)
            raise TrainingInterrupted(run_dir, checkpoint, agent.num_timesteps, signal_name, mid_step=True) from None
        checkpoint = _emergency_checkpoint(agent, checkpoint_dir, echo)
        raise TrainingInterrupted(run_dir, checkpoint, agent.num_timesteps, signal_name) from None
    except BaseException:
        checkpoint = _emergency_checkpoint(agent, checkpoint_dir, echo)
        if checkpoint is not None:
            echo(
                f"training stopped by an error at step {agent.num_timesteps}; the checkpoint {checkpoint} "
                f"is usable: fix the cause, then `qipo-zoo train {config.name} --algo {config.algo} --resume {run_dir}`"
            )
        raise
    finally:
        close_copies(envs)


def _finish(
    agent, config: TaskConfig, run_dir: Path, env: gym.Env, seed: int, echo: Echo
) -> tuple[Path, EvaluationResult | None]:
    path = agent.save(model_path(run_dir, config.name))
    echo(f"saved the agent to {path}")
    if config.n_final_eval_episodes == 0:
        return path, None
    reference = task_reference(config, agent.dataset_metadata)
    echo(f"final evaluation: {config.n_final_eval_episodes} episodes of {config.env}")
    envs = evaluation_envs(config, env)
    try:
        result = evaluate(agent, envs, config.n_final_eval_episodes, config.deterministic_eval, seed, reference)
    finally:
        close_copies(envs)
    report = evaluation_report(
        config.env, seed, len(envs), agent, config.deterministic_eval, reference, result, config=config
    )
    write_text_atomic(run_dir / FINAL_EVAL_FILE, json.dumps(report, indent=2) + "\n")
    return path, result


def evaluation_report(
    env_id: str,
    seed: int,
    n_envs: int,
    agent: QIPO,
    deterministic: bool,
    reference: tuple[float, float] | None,
    result: EvaluationResult,
    config: TaskConfig | None = None,
) -> dict[str, Any]:
    """An evaluation as ``final_eval.json`` records it: the run's task (with ``config``), the env,
    ``seed`` (episode ``i`` resets with ``seed + i``; a run's final evaluation uses the run's seed),
    ``n_envs`` (episodes run at once: sampled actions draw their noise in that order, so a sampled
    evaluation repeats exactly only with the same ``n_envs``), the agent's gradient steps, the
    acting rule (``deterministic``: how the ``agent`` acted when the evaluation asked for
    ``deterministic``, :meth:`QIPO.acts_deterministically
    <qipo_agents.qipo.algorithm.QIPO.acts_deterministically>`, and the ``acting_temperature`` its
    sampled actions start from) and the returns."""
    task = {"task": config.name, "algo": config.algo, "profile": config.profile} if config is not None else {}
    return {
        **task,
        "seed": seed,
        "n_envs": n_envs,
        "num_timesteps": agent.num_timesteps,
        "env": env_id,
        "n_episodes": len(result.returns),
        "deterministic": agent.acts_deterministically(deterministic),
        "acting_temperature": agent.acting_temperature,
        "reference_scores": list(reference) if reference else None,
        **result.to_dict(),
    }


# ---------------------------------------------------------------------------------------------- entry points
def train_task(
    config: TaskConfig,
    seed: int,
    device: str,
    log_folder: str | Path,
    command: str,
    verbose: int = 1,
    progress: bool = True,
    echo: Echo = print,
    run_dir: Path | None = None,
    after_eval: BaseCallback | None = None,
    start_from: str | Path | None = None,
) -> RunResult:
    """Train ``config`` in a new run folder; returns where everything went and the final evaluation.

    Args:
        run_dir: the run folder to create (it must not exist); None: the next free
            ``<log_folder>/<algo>/<task>_<n>``.
        after_eval: called after every evaluation (SB3's ``callback_after_eval``); when it stops
            training, the agent is saved and the final evaluation is skipped.
        start_from: an agent saved at the end of its critic phase (:func:`check_start_checkpoint`):
            the run trains the phases after it, with ``config``'s refinement settings, from the
            checkpoint's networks and random state (``seed`` then only seeds the evaluations).
    """
    checkpoint = None if start_from is None else Path(start_from)
    overrides = {} if checkpoint is None else check_start_checkpoint(config, checkpoint)

    def open_folder(agent) -> Path:
        folder = run_dir if run_dir is not None else create_run_dir(log_folder, config.algo, config.name)
        if run_dir is not None:
            folder.mkdir(parents=True)
        write_run_config(folder, config, seed, device, checkpoint)
        write_text_atomic(folder / COMMAND_FILE, command + "\n")
        planned = config.planned_timesteps if checkpoint is None else agent.schedule.total
        echo(
            f"training {type(agent).__name__} on {config.name} ({config.profile} profile, {len(agent.buffer)} "
            f"transitions, {planned} gradient steps, device {agent.device}) in {folder}"
            + ("" if checkpoint is None else f", from step {agent.num_timesteps} of {checkpoint}")
        )
        if checkpoint is not None:
            _carry_evaluations(checkpoint, folder)
        return folder

    return _run(config, seed, device, verbose, progress, echo, checkpoint, overrides, open_folder, after_eval)


def resume_run(
    run_dir: str | Path,
    command: str,
    device: str | None = None,
    verbose: int = 1,
    progress: bool = True,
    echo: Echo = print,
) -> RunResult:
    """Continue ``run_dir`` from its latest checkpoint for the steps it still had to do, then finish it."""
    run_dir = Path(run_dir)
    config, info = read_run_config(run_dir)
    seed = int(info["seed"]) if info.get("seed") is not None else 0
    final_model = model_path(run_dir, config.name)
    if final_model.exists() and (run_dir / FINAL_EVAL_FILE).exists():
        raise ConfigError(f"{run_dir} has finished training and its final evaluation; nothing to resume")
    # the trained agent is saved only once learning is complete: then only the final evaluation is left
    checkpoint = (
        final_model if final_model.exists() else CheckpointCallback.latest(run_dir / CHECKPOINT_DIR, CHECKPOINT_PREFIX)
    )
    overrides = {}
    if checkpoint is None and info.get("start_from"):  # interrupted before its first checkpoint of its own
        checkpoint = Path(info["start_from"])
        overrides = check_start_checkpoint(config, checkpoint)
    if checkpoint is None:
        raise ConfigError(f"{run_dir} has no checkpoint to resume from (in {run_dir / CHECKPOINT_DIR})")

    def reopen_folder(agent) -> Path:
        with open(run_dir / COMMAND_FILE, "a") as file:
            file.write(command + "\n")
        planned, done = _plan(agent, config), agent.num_timesteps
        remaining = 0 if checkpoint == final_model else max(planned - done, 0)
        echo(f"resuming {run_dir} from {checkpoint.name}: step {done} of {planned}, {remaining} to go")
        return run_dir

    device = device or info.get("device") or "auto"
    return _run(config, seed, device, verbose, progress, echo, checkpoint, overrides, reopen_folder, None, final_model)


def _plan(agent, config: TaskConfig) -> int:
    """The gradient steps the whole run takes: the agent's schedule once it is fixed, else the config's."""
    return agent.schedule.total if agent.schedule is not None else config.planned_timesteps


def _run(
    config: TaskConfig,
    seed: int,
    device: str,
    verbose: int,
    progress: bool,
    echo: Echo,
    checkpoint: Path | None,
    overrides: dict[str, Any],
    open_folder: Callable[[Any], Path],
    after_eval: BaseCallback | None,
    finished_model: Path | None = None,
) -> RunResult:
    """A run's steps, whether it starts (from scratch, or from ``checkpoint`` with the refinement
    settings ``overrides``) or resumes (from ``checkpoint``): data, agent, run folder (what
    ``open_folder`` writes there), the training left to do, the trained agent and its final
    evaluation. ``finished_model``: the run's trained agent, which has nothing left to learn."""
    echo(f"loading datasets: {', '.join(config.datasets)}")
    buffer = load_task_data(config)
    with closing(make_task_env(config)) as env:
        agent = _make_agent(config, buffer, seed, device, verbose, checkpoint, overrides)
        check_env_spaces(env, agent.observation_space, agent.action_space)
        run_dir = open_folder(agent)
        planned, trained = _plan(agent, config), finished_model is not None and checkpoint == finished_model
        if checkpoint is None:  # a new run: exactly its n_timesteps (None: the configured phases)
            _learn(agent, config, run_dir, env, config.n_timesteps, seed, False, progress, echo, after_eval)
        elif not trained and agent.num_timesteps < planned:
            steps = planned - agent.num_timesteps
            _learn(agent, config, run_dir, env, steps, seed, True, progress, echo, after_eval)
        if not trained and agent.num_timesteps < planned:
            path = agent.save(model_path(run_dir, config.name))
            echo(f"training stopped early at step {agent.num_timesteps} of {planned}; saved the agent to {path}")
            return RunResult(run_dir, path, agent.num_timesteps, None, stopped_early=True)
        path, result = _finish(agent, config, run_dir, env, seed, echo)
        return RunResult(run_dir, path, agent.num_timesteps, result)


def _make_agent(config: TaskConfig, buffer, seed: int, device: str, verbose: int, checkpoint, overrides):
    """A new agent of ``config`` on ``buffer``, or the one saved at ``checkpoint`` (with ``overrides``)
    given ``buffer``, which must be the data it was trained on."""
    if checkpoint is None:
        try:
            return config.agent_class(
                "MlpPolicy", buffer, seed=seed, device=device, verbose=verbose, **config.hyperparams
            )
        except QIPOError:
            raise
        except (ValueError, TypeError) as error:  # the agent's checks that need the data (e.g. network shapes)
            raise ConfigError(f"task {config.name}: cannot build the agent: {error}") from error
    agent = config.agent_class.load(checkpoint, device=device, verbose=verbose, **overrides)
    trained_on, task_data = agent.dataset_metadata.get("dataset_ids"), buffer.metadata.get("dataset_ids")
    if trained_on != task_data:
        raise ConfigError(f"{checkpoint} was trained on {trained_on}; task {config.name} trains on {task_data}")
    agent.set_dataset(buffer)
    return agent
