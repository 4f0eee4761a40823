"""Per-task zoo configuration: YAML -> validated, typed :class:`TaskConfig`.

The hyperparameter files live at the top of the repository in ``zoo/<algo>.yml`` (``flow``,
``diffusion``) and ship inside the package as ``qipo_agents.zoo.hyperparams``. Each file maps a
task name to a block; the ``default`` block applies to every task::

    default:                       # every field of TaskConfig except datasets / env ...
      eval_freq: 50000
      hyperparams:                 # fields of the agent's config (QIPOConfig)
        beta: 3.0
      cpu:                         # profile block: used when training without CUDA
        hyperparams:
          behavior_steps: 30000
    hopper-medium:
      datasets: [mujoco/hopper/medium-v0]
      env: Hopper-v5
      reference_scores: [-20.272305, 3234.3]

A task resolves in layers, each overriding the last key by key (a ``hyperparams`` block is merged
argument by argument; any other value, a dict included, is replaced whole):
``default`` → the task's block → ``default.<profile>`` → ``<task>.<profile>`` → command-line
overrides. Profile blocks may set the run fields (budget, evaluation, checkpoints) and
``hyperparams``, not the task's data or environment.

A user's file (``--config my_tasks.yml``) is layered over the packaged file of the same algo: its
tasks join the packaged ones (one of the same name replaces the packaged task), and its ``default``
block, with its profile blocks, applies right after the packaged one, by the same rules
(``default`` → user ``default`` → task → ``default.<profile>`` → user ``default.<profile>`` → ...).

The files are read with :class:`ZooYAMLLoader` (``3e-4`` is a number, as in YAML 1.2). Every
value of every layer is validated before it is merged, strictly, by the field it sets: a
:class:`TaskConfig` field, or a field of the agent's config (:class:`~qipo_agents.qipo.config.QIPOConfig`,
``policy_kwargs`` and ``path_kwargs`` entries included). Unknown keys (with close matches), wrong
types (no boolean or quoted number for a number) and out-of-range values raise
:class:`~qipo_agents.errors.ConfigError` naming the file (or ``--hyperparams``), the task and the
key. The merged hyperparameters are then checked together by the same config; a combination it
refuses is blamed on the layer that set the refused keys last, which the merge recorded. So a typo
fails before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from qipo_agents.common.validation import (
    Integer,
    describe_value,
    did_you_mean,
    error_location,
    explain,
    validate_setting,
)
from qipo_agents.errors import ConfigError

ALGOS = ("flow", "diffusion")
PROFILES = ("cpu", "gpu")
DEFAULT_BLOCK = "default"

# agent arguments the zoo sets itself (from the command line or the run folder)
_RESERVED_HYPERPARAMS = {
    "policy": "the zoo always uses 'MlpPolicy'",
    "dataset": "set the task's `datasets`, or pass --dataset",
    "seed": "pass --seed",
    "device": "pass --device",
    "verbose": "pass --verbose",
    "tensorboard_log": "the zoo logs TensorBoard events into the run folder",
}


def _reference_pair(value: Any) -> Any:
    if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"expected a list of 2 numbers or null, got {value!r}")
    return None if value is None else tuple(value)


def _random_below_expert(value: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is not None and not value[1] > value[0]:
        raise ValueError(f"the expert return must exceed the random return, got {list(value)}")
    return value


def _some_dataset(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("lists no dataset")
    return value


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TaskConfig:
    """One task, resolved for one agent (``algo``) and one compute profile.

    Attributes:
        name: the task's key in the YAML (``hopper-medium``).
        algo: ``"flow"`` (:class:`~qipo_agents.QIPOFlow`) or ``"diffusion"`` (:class:`~qipo_agents.QIPODiffusion`).
        profile: ``"gpu"`` (the paper's budgets) or ``"cpu"`` (smaller budgets, same algorithm).
        description: one line shown by ``qipo-zoo list``.
        datasets: dataset sources, concatenated in order: Minari ids (``mujoco/hopper/medium-v0``),
            D4RL-format ``.hdf5`` paths (``~`` and ``${VAR}`` / ``${VAR:-default}`` expanded), Minari
            dataset folders, or ``builtin:<name>`` for a dataset shipped with the package.
        env: Gymnasium id of the evaluation environment (``Hopper-v5``, ``AntMaze_UMaze-v4``).
        env_kwargs: keyword arguments of ``gym.make``.
        env_package: module to import before ``gym.make`` so it registers the env
            (``gymnasium_robotics`` for AntMaze); None for Gymnasium's own envs.
        env_from_dataset: build the evaluation env from the first Minari dataset's
            ``eval_env_spec`` (exact maze layout and goal for AntMaze) instead of ``gym.make(env)``.
        reference_scores: ``[random, expert]`` returns of the D4RL-normalised score
            ``100 (R - random) / (expert - random)``; None: the dataset's own.
        n_timesteps: total gradient steps, split over the phases in the proportions of
            ``behavior_steps : critic_steps : policy_steps : distill_steps``; None: exactly those steps.
        eval_freq: gradient steps between evaluations (0: none during training).
        n_eval_episodes: episodes per evaluation during training.
        n_final_eval_episodes: episodes of the final evaluation (10 in the D4RL protocol).
        n_eval_envs: episodes run at once, with one batched ``predict`` call per step (1: one by
            one; the episodes' reset seeds are the same either way).
        deterministic_eval: act with ``predict(..., deterministic=True)`` (the zero-noise central
            action) when evaluating; False (default) samples one action from the policy, as QGPO and
            the paper evaluate.
        checkpoint_freq: gradient steps between checkpoints (0: only on interruption).
        n_checkpoints_kept: the latest checkpoints a run keeps (None: every one; the one at the end
            of the critic phase is always kept).
        log_interval: gradient steps between logger dumps.
        hyperparams: the hyperparameters the task sets, fields of the agent's config (the others
            keep their defaults).
    """

    name: str
    algo: str
    profile: str
    datasets: Annotated[tuple[str, ...], AfterValidator(_some_dataset)]
    env: str
    description: str = ""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    env_package: str | None = None
    env_from_dataset: bool = False
    reference_scores: Annotated[
        tuple[float, float] | None, BeforeValidator(_reference_pair), AfterValidator(_random_below_expert)
    ] = None
    n_timesteps: Integer | None = Field(None, ge=1)
    eval_freq: Integer = Field(50_000, ge=0)
    n_eval_episodes: Integer = Field(10, ge=1)
    n_final_eval_episodes: Integer = Field(10, ge=0)
    n_eval_envs: Integer = Field(1, ge=1)
    deterministic_eval: bool = False
    checkpoint_freq: Integer = Field(50_000, ge=0)
    n_checkpoints_kept: Integer | None = Field(2, ge=1)
    log_interval: Integer = Field(1_000, ge=1)
    hyperparams: dict[str, Any] = Field(default_factory=dict)

    @property
    def agent_class(self) -> type:
        return agent_class(self.algo)

    @property
    def planned_timesteps(self) -> int:
        """Gradient steps a full run takes: ``n_timesteps``, else the sum of the phases (the
        distillation's included)."""
        if self.n_timesteps is not None:
            return self.n_timesteps
        fields = self.agent_class.config_class.model_fields
        return sum(
            int(self.hyperparams.get(name, fields[name].default))
            for name in ("behavior_steps", "critic_steps", "policy_steps", "distill_steps")
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-friendly values (tuples as lists), in field order; inverse of :func:`task_from_dict`."""
        return _plain(dataclasses.asdict(self))


# ---------------------------------------------------------------------------------------------- YAML
class ZooYAMLLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``3e-4`` and ``1e5`` are floats
    (YAML 1.1, PyYAML's default, needs ``3.0e-4`` and reads ``3e-4`` as a string)."""


ZooYAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def zoo_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` with :class:`ZooYAMLLoader`: every zoo file, search space and
    ``--hyperparams`` value is read this way."""
    return yaml.load(text, Loader=ZooYAMLLoader)  # noqa: S506 - a SafeLoader subclass


# ---------------------------------------------------------------------------------------------- schema
# Keys of a task block: TaskConfig's fields minus those the zoo fills in, plus the profile blocks.
_IMPLICIT_FIELDS = ("name", "algo", "profile")
_TASK_KEYS = tuple(f.name for f in dataclasses.fields(TaskConfig) if f.name not in _IMPLICIT_FIELDS)
# budget, evaluation, checkpoints: what a profile block may set besides hyperparams
_RUN_KEYS = _TASK_KEYS[_TASK_KEYS.index("n_timesteps") : _TASK_KEYS.index("hyperparams")]
_PROFILE_KEYS = (*_RUN_KEYS, "hyperparams")
_REQUIRED_KEYS = ("datasets", "env")


def agent_class(algo: str) -> type:
    """The agent class trained by ``algo``."""
    from qipo_agents import QIPODiffusion, QIPOFlow

    classes = {"flow": QIPOFlow, "diffusion": QIPODiffusion}
    if algo not in classes:
        raise ConfigError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return classes[algo]


class ConfigLocation:
    """Where a value comes from, for error messages: ``zoo/flow.yml, task hopper-medium (cpu profile)``."""

    def __init__(self, source: str, task: str | None = None, block: str | None = None):
        self.source, self.task, self.block = source, task, block

    def __str__(self) -> str:
        text = self.source
        if self.task is not None:
            text += ", default block" if self.task == DEFAULT_BLOCK else f", task {self.task}"
        if self.block is not None:
            text += f" ({self.block} profile)"
        return text

    def error(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{self}, key {key}: {message}" if key else f"{self}: {message}")


# ---------------------------------------------------------------------------------------------- value checks
def _check(owner: type, key: str, value: Any, where: ConfigLocation) -> Any:
    """``value`` of the field ``key`` of ``owner`` (TaskConfig or an agent's config), validated
    strictly; a refusal is a :class:`ConfigError` naming the key (``policy_kwargs.hidden_dims[1]``)."""
    try:
        return validate_setting(owner, key, value)
    except ValidationError as error:
        first = error.errors()[0]
        first = {**first, "loc": (key, *first["loc"])}
        raise where.error(error_location(first), explain(first, owner)) from None


def _unknown_key(key: str, valid: Sequence[str], where: ConfigLocation, what: str) -> ConfigError:
    return where.error(str(key), f"unknown {what}{did_you_mean(key, valid)} (valid: {', '.join(valid)})")


def check_hyperparams(raw: Any, algo: str, where: ConfigLocation) -> dict[str, Any]:
    """A ``hyperparams`` block: keys checked against the fields of ``algo``'s config, each value
    validated strictly by its field."""
    if not isinstance(raw, Mapping):
        raise where.error("hyperparams", f"expected a mapping of QIPO arguments, got {describe_value(raw)}")
    config_class = agent_class(algo).config_class
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _RESERVED_HYPERPARAMS:
            raise where.error(key, f"is not set in a zoo config: {_RESERVED_HYPERPARAMS[key]}")
        if key in _RUN_KEYS:
            raise where.error(
                key, "is a run setting, not a QIPO hyperparameter: set it beside `hyperparams`, not in it"
            )
        if key not in config_class.model_fields:
            raise _unknown_key(key, list(config_class.model_fields), where, "QIPO hyperparameter")
        checked[key] = _check(config_class, key, value, where)
    return checked


def _check_block(raw: Any, algo: str, where: ConfigLocation, allowed: Sequence[str]) -> dict[str, Any]:
    """One task / default / profile block: known keys, typed values (profile blocks left as they are)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise where.error(None, f"expected a mapping of settings, got {describe_value(raw)}")
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        if key in PROFILES and key in allowed:
            checked[key] = value  # validated when that profile is resolved
        elif key not in allowed:
            if key in PROFILES or key in _TASK_KEYS:
                raise where.error(str(key), "cannot be set in a profile block (only run settings and hyperparams)")
            if key in agent_class(algo).config_class.model_fields:
                raise where.error(str(key), "is a QIPO hyperparameter: set it in the block's `hyperparams:`")
            raise _unknown_key(key, list(allowed), where, "key")
        elif key == "hyperparams":
            checked[key] = check_hyperparams(value, algo, where)
        else:
            checked[key] = _check(TaskConfig, key, value, where)
    return checked


@dataclasses.dataclass
class _Merged:
    """Layers merged key by key, and for each hyperparameter the layer that set it last: its
    ``(layer index, location)``, so a refusal of the merged values is blamed by a lookup."""

    run_fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    hyperparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    set_by: dict[str, tuple[int, ConfigLocation]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, layers: Sequence[tuple[ConfigLocation, Mapping[str, Any]]]) -> _Merged:
        merged = cls()
        for index, (where, layer) in enumerate(layers):
            for key, value in layer.items():
                if key == "hyperparams":
                    merged.hyperparams.update(value)
                    merged.set_by.update(dict.fromkeys(value, (index, where)))
                elif key not in PROFILES:
                    merged.run_fields[key] = value
        return merged

    def check_together(self, algo: str, fallback: ConfigLocation) -> None:
        """Validate the hyperparameters together (the combinations the agent's config refuses);
        the error names the layer that set the refused keys last, and those keys."""
        try:
            agent_class(algo).config_class.model_validate(self.hyperparams)
        except ValidationError as error:
            first = error.errors()[0]
            involved = [key for key in first.get("ctx", {}).get("fields", ()) if key in self.set_by]
            if not involved:
                raise fallback.error(None, explain(first)) from None
            last = max(self.set_by[key][0] for key in involved)
            keys = [key for key in involved if self.set_by[key][0] == last]
            raise self.set_by[keys[0]][1].error(", ".join(keys), explain(first)) from None


# ---------------------------------------------------------------------------------------------- files
class ZooFile:
    """A hyperparameter file (``zoo/flow.yml``), parsed, or a user's file layered over it;
    :meth:`resolve` builds a task's config.

    A file layered over another (``base``) adds its tasks to the base's (a task of the same name
    replaces the base's task whole), and its ``default`` block applies after the base's, key by key
    as every layer does: so its tasks inherit the packaged defaults and profiles. Every block keeps
    the name of the file it came from, for error messages.
    """

    def __init__(self, raw: Any, algo: str, source: str, base: ZooFile | None = None):
        if algo not in ALGOS:
            raise ConfigError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: expected a mapping of task names to settings, got {describe_value(raw)}")
        for key in raw:
            if not isinstance(key, str):
                raise ConfigError(f"{source}: task names must be strings, got {key!r}")
        if base is not None and base.algo != algo:
            raise ConfigError(f"{source} cannot be layered over {base.source}: {algo} and {base.algo} configs")
        self.algo = algo
        self.files: tuple[str, ...] = (*base.files, source) if base is not None else (source,)
        self.source = " + ".join(self.files)  # what `list` and unknown-task errors name
        # (file, block) of every default block, base first, and of every task
        self._defaults: list[tuple[str, Any]] = list(base._defaults) if base is not None else []
        self._tasks: dict[str, tuple[str, Any]] = dict(base._tasks) if base is not None else {}
        if DEFAULT_BLOCK in raw:
            self._defaults.append((source, raw[DEFAULT_BLOCK]))
        for name, block in raw.items():
            if name != DEFAULT_BLOCK:
                self._tasks[name] = (source, block)  # a task of the same name keeps the base's place

    @classmethod
    def load(cls, algo: str, path: str | Path | None = None) -> ZooFile:
        """The packaged ``zoo/<algo>.yml``, with the YAML file at ``path`` (``--config``) layered over it."""
        text, source = read_packaged_yaml(algo)
        packaged = cls(_parse_yaml(text, source), algo, source)
        if path is None:
            return packaged
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return cls(_parse_yaml(path.read_text(), str(path)), algo, str(path), base=packaged)

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def resolve(
        self,
        task: str,
        profile: str,
        overrides: Mapping[str, Any] | None = None,
        datasets: Sequence[str] | None = None,
    ) -> TaskConfig:
        """The validated config of ``task`` under ``profile`` (``"cpu"`` / ``"gpu"``).

        Args:
            overrides: command-line ``key=value`` settings: run fields (``eval_freq``...) or
                QIPO hyperparameters, applied last.
            datasets: replace the task's datasets (``--dataset``).
        """
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        if task == DEFAULT_BLOCK:
            raise ConfigError(f"{DEFAULT_BLOCK!r} holds the shared settings of {self.source}; it is not a task")
        if task not in self._tasks:
            close = difflib.get_close_matches(task, self.tasks, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(
                f"unknown task {task!r} in {self.source}.{hint} `qipo-zoo list` shows the {len(self.tasks)} tasks."
            )
        source, block = self._tasks[task]
        base_keys = (*_TASK_KEYS, *PROFILES)
        defaults = [
            (
                ConfigLocation(file, DEFAULT_BLOCK),
                _check_block(raw, self.algo, ConfigLocation(file, DEFAULT_BLOCK), base_keys),
            )
            for file, raw in self._defaults
        ]
        where = ConfigLocation(source, task)
        entry = _check_block(block, self.algo, where, base_keys)
        default_profiles = [
            (
                location := ConfigLocation(at.source, DEFAULT_BLOCK, profile),
                _check_block(default.get(profile), self.algo, location, _PROFILE_KEYS),
            )
            for at, default in defaults
        ]
        task_where = ConfigLocation(source, task, profile)
        task_profile = _check_block(entry.get(profile), self.algo, task_where, _PROFILE_KEYS)
        layers = [*defaults, (where, entry), *default_profiles, (task_where, task_profile)]
        if overrides:
            layers.append((ConfigLocation("--hyperparams"), check_overrides(overrides, self.algo)))
        merged = _Merged.of(layers)
        if datasets is not None:
            merged.run_fields["datasets"] = _check(TaskConfig, "datasets", list(datasets), ConfigLocation("--dataset"))
        for key in _REQUIRED_KEYS:
            if key not in merged.run_fields:
                raise where.error(key, "is required (set it in the task's block)")
        merged.check_together(self.algo, where)
        return TaskConfig(
            name=task, algo=self.algo, profile=profile, **merged.run_fields, hyperparams=merged.hyperparams
        )

    def resolve_all(self, profile: str) -> dict[str, TaskConfig]:
        return {task: self.resolve(task, profile) for task in self.tasks}


def _parse_yaml(text: str, source: str) -> Any:
    try:
        raw = zoo_yaml_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {error}") from error
    return {} if raw is None else raw


def check_overrides(overrides: Mapping[str, Any], algo: str) -> dict[str, Any]:
    """Command-line settings split into run fields and hyperparameters, validated like the YAML."""
    where = ConfigLocation("--hyperparams")
    qipo_keys = list(agent_class(algo).config_class.model_fields)
    run_fields: dict[str, Any] = {}
    hyperparams: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _RUN_KEYS:
            run_fields[key] = value
        elif key in _TASK_KEYS:
            raise where.error(key, "is part of the task, not a hyperparameter (use --dataset for the data)")
        elif key in qipo_keys or key in _RESERVED_HYPERPARAMS:
            hyperparams[key] = value
        else:
            raise where.error(
                str(key),
                f"unknown run setting or QIPO hyperparameter{did_you_mean(key, [*_RUN_KEYS, *qipo_keys])} "
                f"(run settings: {', '.join(_RUN_KEYS)}; QIPO hyperparameters: {', '.join(qipo_keys)})",
            )
    checked = _check_block(run_fields, algo, where, _PROFILE_KEYS)
    checked["hyperparams"] = check_hyperparams(hyperparams, algo, where)
    return checked


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["beta=5", "policy_kwargs={hidden_dims: [64, 64]}"]`` -> values read with ``yaml.safe_load``.

    One item may hold several space-separated ``key=value`` pairs (``"beta=5 gamma=0.9"``).
    """
    pairs: list[str] = []
    for item in items:
        pairs += [p for p in re.split(r"\s+(?=[A-Za-z_][A-Za-z0-9_]*=)", item.strip()) if p]
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(
                f"--hyperparams: {pair!r} is not KEY=VALUE (e.g. beta=3.0 or policy_learning_rate=1.0e-4)"
            )
        try:
            parsed[key] = zoo_yaml_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"--hyperparams: the value of {key} ({text!r}) is not valid YAML: {error}") from error
    return parsed


def task_from_dict(data: Mapping[str, Any], source: str) -> TaskConfig:
    """Rebuild a resolved :class:`TaskConfig` (e.g. a run's ``config.yml``), validating it again."""
    where = ConfigLocation(source)
    missing = [k for k in (*_IMPLICIT_FIELDS, *_REQUIRED_KEYS, "hyperparams") if k not in data]
    if missing:
        raise where.error(None, f"is not a resolved zoo config: missing {', '.join(missing)}")
    algo, profile = data["algo"], data["profile"]
    if algo not in ALGOS or profile not in PROFILES:
        raise where.error(None, f"unknown algo {algo!r} or profile {profile!r}")
    fields = {k: v for k, v in data.items() if k in _TASK_KEYS}
    checked = _Merged.of([(where, _check_block(fields, algo, ConfigLocation(source, str(data["name"])), _TASK_KEYS))])
    checked.check_together(algo, where)
    return TaskConfig(
        name=str(data["name"]), algo=algo, profile=profile, **checked.run_fields, hyperparams=checked.hyperparams
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- packaged files
def hyperparams_dir() -> Path:
    """Folder of the packaged ``<algo>.yml`` files.

    The top-level ``zoo/`` folder ships as the package ``qipo_agents.zoo.hyperparams``
    (``package-dir`` in ``pyproject.toml``): a wheel installs it next to this module; an editable
    install maps it to the repository's ``zoo/``; a source checkout used without installing (or
    installed before the mapping existed) reads the repository's ``zoo/`` directly.
    """
    candidates = [Path(__file__).resolve().parent / "hyperparams"]
    try:
        candidates.append(Path(str(importlib.resources.files("qipo_agents.zoo.hyperparams"))))
    except Exception:  # noqa: BLE001 - not importable here (source checkout): use the fallback below
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "zoo")
    for candidate in candidates:
        if (candidate / "flow.yml").is_file():
            return candidate
    raise ConfigError(
        "the zoo hyperparameter files are missing from this installation (expected the package "
        "qipo_agents.zoo.hyperparams or a zoo/ folder next to qipo_agents/); reinstall qipo_agents"
    )


def read_packaged_yaml(algo: str) -> tuple[str, str]:
    """``(text, display name)`` of the packaged ``zoo/<algo>.yml``."""
    if algo not in ALGOS:
        raise ConfigError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return (hyperparams_dir() / f"{algo}.yml").read_text(), f"zoo/{algo}.yml"


def load_task(
    task: str,
    algo: str = "flow",
    profile: str = "gpu",
    overrides: Mapping[str, Any] | None = None,
    datasets: Sequence[str] | None = None,
    config_file: str | Path | None = None,
) -> TaskConfig:
    """Resolve ``task`` from the packaged ``zoo/<algo>.yml``, with ``config_file`` layered over it."""
    return ZooFile.load(algo, config_file).resolve(task, profile, overrides, datasets)
