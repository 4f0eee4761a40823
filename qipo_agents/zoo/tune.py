"""``qipo-zoo tune``: hyperparameter search with Optuna on a storage that workers share.

Several ``qipo-zoo tune`` processes with the same ``--storage`` and ``--study-name`` work on one
study, on one machine or on many (as rl-baselines3-zoo's ``-optimize``). Every trial is an
ordinary run folder, ``<log_folder>/tune/<study>/trial_<number>/``, trained by the same code as
``qipo-zoo train``: the task's profile, then ``--hyperparams``, then the trial's sampled values.
Its objective is the final D4RL-normalised score; the evaluations made during training are
reported to Optuna, so a pruner can stop a poor trial early (recorded as PRUNED). Ctrl-C marks
the running trial as FAIL (Optuna's own handling) and keeps every finished one.

Search spaces live beside the zoo files, ``zoo/<algo>_search.yml``; each key is a QIPO
hyperparameter (validated like the zoo's)::

    beta: {type: float, low: 0.5, high: 10.0, log: true}
    renew_interval: {type: int, low: 500, high: 5000, log: true}
    n_support_actions: {type: categorical, choices: [8, 16, 32]}
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from stable_baselines3.common.callbacks import BaseCallback

from qipo_agents.common.validation import did_you_mean
from qipo_agents.errors import ConfigError
from qipo_agents.zoo.config import (
    ConfigLocation,
    agent_class,
    check_hyperparams,
    hyperparams_dir,
    load_task,
    zoo_yaml_load,
)

Echo = Callable[[str], Any]


# ---------------------------------------------------------------------------------------------- search spaces
class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Distribution):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        _check_range(self.low, self.high, self.log)
        if self.step is not None and (self.log or self.step <= 0):
            raise ValueError("step must be > 0 and cannot be combined with log: true")
        return self

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


class IntRange(_Distribution):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        _check_range(self.low, self.high, self.log)
        if self.step < 1 or (self.log and self.step != 1):
            raise ValueError("step must be >= 1, and 1 with log: true")
        return self

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


class Choice(_Distribution):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)

    def suggest(self, trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def bounds(self) -> list[Any]:
        return list(self.choices)


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"the range is empty: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ValueError(f"log: true needs low > 0, got {low}")


Distribution = Annotated[FloatRange | IntRange | Choice, Field(discriminator="type")]


class _SearchSpaceModel(BaseModel):
    space: dict[str, Distribution]


@dataclass(frozen=True)
class SearchSpace:
    """Hyperparameter name -> distribution, validated against ``QIPO``'s arguments."""

    algo: str
    source: str
    distributions: dict[str, FloatRange | IntRange | Choice]

    @classmethod
    def load(cls, algo: str, path: str | Path | None = None) -> SearchSpace:
        """The packaged ``zoo/<algo>_search.yml``, or the YAML file at ``path``."""
        file = Path(path) if path is not None else hyperparams_dir() / f"{algo}_search.yml"
        source = str(path) if path is not None else f"zoo/{algo}_search.yml"
        if not file.is_file():
            raise ConfigError(f"search space file {file} does not exist")
        try:
            raw = zoo_yaml_load(file.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"{source} is not valid YAML: {error}") from error
        return cls.from_dict(raw, algo, source)

    @classmethod
    def from_dict(cls, raw: Any, algo: str, source: str) -> SearchSpace:
        where = ConfigLocation(source)
        if not isinstance(raw, Mapping) or not raw:
            raise where.error(None, "expected a mapping of QIPO hyperparameters to distributions")
        known = agent_class(algo).config_class.model_fields
        for key in raw:
            if key not in known:
                raise where.error(str(key), f"is not a hyperparameter of the agent{did_you_mean(key, known)}")
        try:
            distributions = _SearchSpaceModel(space=raw).space
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(part) for part in first["loc"][1:2])
            message = first["msg"].removeprefix("Value error, ")
            raise where.error(key, f"{message} (a distribution is {{type: float|int|categorical, ...}})") from None
        for key, distribution in distributions.items():  # every value the trial can take is a valid setting
            for value in distribution.bounds():
                check_hyperparams({key: value}, algo, where)
        return cls(algo, source, distributions)

    def sample(self, trial) -> dict[str, Any]:
        return {name: distribution.suggest(trial, name) for name, distribution in self.distributions.items()}


# ---------------------------------------------------------------------------------------------- storage
def open_storage(storage: str, must_exist: bool = False):
    """An Optuna storage: a path ending in ``.log`` is a JournalStorage file (one machine, or a shared
    filesystem); anything else is an RDB URL (``sqlite:///study.db``, ``postgresql://...``)."""
    import optuna

    check_storage_name(storage)
    if storage.endswith(".log"):
        path = Path(storage)
        if must_exist and not path.is_file():
            raise ConfigError(f"--storage {storage}: no such journal file")
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if must_exist and storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"--storage {storage}: no such database file")
    try:
        return optuna.storages.RDBStorage(storage)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many kinds (driver missing, bad URL, refused)
        raise ConfigError(f"--storage {storage}: cannot open the database: {error}") from error


def check_storage_name(storage: str) -> None:
    if not storage.endswith(".log") and "://" not in storage:
        raise ConfigError(
            f"--storage {storage!r}: give a journal file ending in .log, or a database URL such as "
            "sqlite:///study.db or postgresql://user@host/db"
        )


def load_study(storage: str, study_name: str):
    import optuna

    opened = open_storage(storage, must_exist=True)
    names = optuna.get_all_study_names(opened)
    if study_name not in names:
        listed = ", ".join(names) if names else "none"
        raise ConfigError(f"--storage {storage} has no study {study_name!r} (studies there: {listed})")
    return optuna.load_study(study_name=study_name, storage=opened)


# ---------------------------------------------------------------------------------------------- trials
class ReportToTrial(BaseCallback):
    """After each evaluation (as the ``EvalCallback``'s ``callback_after_eval``): report its score
    to the Optuna trial at the current step, and stop training when the pruner says so."""

    def __init__(self, trial):
        super().__init__()
        self.trial, self.pruned = trial, False

    def _on_step(self) -> bool:
        result = self.parent.last_result
        value = result.normalized_mean if result.normalized_mean is not None else result.mean_return
        self.trial.report(value, step=self.model.num_timesteps)
        self.pruned = self.trial.should_prune()
        return not self.pruned


def trial_overrides(trial) -> dict[str, Any]:
    """The hyperparameters a finished trial trained with: the study's ``--hyperparams``, then its samples."""
    return {**trial.user_attrs.get("overrides", {}), **trial.params}


def find_trial(study, number: int):
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number:
            return trial
    raise ConfigError(f"study {study.study_name!r} has no trial {number} (it has {len(study.trials)})")


def parse_trial_ref(reference: str) -> tuple[str, str, int]:
    """``STORAGE:STUDY:NUMBER`` (the storage may hold colons itself: ``sqlite:///s.db:study:3``)."""
    parts = reference.rsplit(":", 2)
    if len(parts) != 3 or not parts[2].isdigit() or not parts[0] or not parts[1]:
        raise ConfigError(f"--trial {reference!r}: write STORAGE:STUDY:NUMBER, e.g. tune.log:hopper:3")
    return parts[0], parts[1], int(parts[2])


def tune(
    task: str,
    algo: str,
    profile: str,
    device: str,
    n_trials: int,
    storage: str,
    study_name: str,
    sampler: str = "tpe",
    pruner: str = "median",
    overrides: Mapping[str, Any] | None = None,
    datasets: Sequence[str] | None = None,
    config_file: str | None = None,
    search_space: str | None = None,
    seed: int = 0,
    log_folder: str | Path = "logs",
    verbose: int = 0,
    echo: Echo = print,
    start_from: str | Path | None = None,
):
    """Run ``n_trials`` trials of ``study_name`` in this process; returns the study.

    With ``start_from`` (an agent saved at the end of its critic phase) every trial trains only
    the refinement from that checkpoint, so the study searches refinement settings at the cost of
    the refinement alone; a search space that samples a setting of an earlier phase is refused.
    """
    import optuna

    from qipo_agents.zoo.train import check_start_checkpoint, train_task

    overrides = dict(overrides or {})
    check_storage_name(storage)
    space = SearchSpace.load(algo, search_space)
    base = load_task(task, algo, profile, overrides, datasets, config_file)  # fails before any trial
    if base.n_final_eval_episodes == 0:
        raise ConfigError("tuning maximises the final evaluation: n_final_eval_episodes must be at least 1")
    clash = sorted(set(space.distributions) & set(overrides))
    if clash:
        raise ConfigError(f"--hyperparams sets {', '.join(clash)}, which the search space samples; drop one")
    if start_from is not None:
        check_start_checkpoint(base, start_from, changed=set(space.distributions))
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(n_startup_trials=5, multivariate=True),
        "random": optuna.samplers.RandomSampler,
    }
    pruners = {"median": _median_pruner, "none": optuna.pruners.NopPruner}
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(storage),
        study_name=study_name,
        direction="maximize",
        sampler=samplers[sampler](),
        pruner=pruners[pruner](),
        load_if_exists=True,
    )
    study.set_user_attr("task", task)
    study.set_user_attr("algo", algo)
    folder = Path(log_folder) / "tune" / study_name

    def objective(trial) -> float:
        sampled = space.sample(trial)
        config = load_task(task, algo, profile, {**overrides, **sampled}, datasets, config_file)
        run_dir = folder / f"trial_{trial.number}"
        attrs = {
            "task": task,
            "algo": algo,
            "profile": profile,
            "seed": seed,
            "overrides": overrides,
            "datasets": list(datasets) if datasets else None,
            "config_file": config_file,
            "start_from": None if start_from is None else str(start_from),
            "run_dir": str(run_dir),
            "host": socket.gethostname(),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        echo(f"trial {trial.number}: {_describe_params(sampled)} -> {run_dir}")
        report = ReportToTrial(trial)
        command = f"qipo-zoo train {task} --trial {storage}:{study_name}:{trial.number}"
        result = train_task(
            config,
            seed,
            device,
            log_folder,
            command,
            verbose=verbose,
            progress=False,
            echo=echo,
            run_dir=run_dir,
            after_eval=report,
            start_from=start_from,
        )
        if report.pruned:
            echo(f"trial {trial.number} pruned at step {result.num_timesteps}")
            raise optuna.TrialPruned()
        value = result.final.normalized_mean
        value = result.final.mean_return if value is None else value
        echo(f"trial {trial.number}: final {value:.2f}")
        return value

    study.optimize(objective, n_trials=n_trials, catch=(FloatingPointError, RuntimeError))
    return study


def _median_pruner():
    """Optuna's median pruner: once 5 trials have finished, a trial whose evaluation falls below the
    median of the earlier trials' at the same step is stopped."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5)


def _describe_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def trial_settings(reference: str, task: str) -> dict[str, Any]:
    """What ``qipo-zoo train TASK --trial STORAGE:STUDY:N`` trains with: the trial's algo, profile,
    seed, data, starting checkpoint and hyperparameters (as ``--hyperparams`` items, read back by
    ``parse_overrides``)."""
    storage, study_name, number = parse_trial_ref(reference)
    trial = find_trial(load_study(storage, study_name), number)
    missing = [key for key in ("task", "algo", "profile", "seed") if key not in trial.user_attrs]
    if missing:
        raise ConfigError(f"trial {number} of {study_name!r} was not made by qipo-zoo tune (no {', '.join(missing)})")
    if trial.user_attrs["task"] != task:
        raise ConfigError(f"trial {number} of {study_name!r} tuned {trial.user_attrs['task']}, not {task}")
    items = [
        f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
        for key, value in trial_overrides(trial).items()
    ]
    return {
        "algo": trial.user_attrs["algo"],
        "profile": trial.user_attrs["profile"],
        "seed": int(trial.user_attrs["seed"]),
        "datasets": trial.user_attrs.get("datasets"),
        "config_file": trial.user_attrs.get("config_file"),
        "start_from": trial.user_attrs.get("start_from"),
        "items": items,
    }
