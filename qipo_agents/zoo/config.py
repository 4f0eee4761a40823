"""Per-task zoo configuration: YAML -> validated, typed :class:`TaskConfig`.

The hyperparameter files live at the top of the repository in ``zoo/<algo>.yml`` (``flow``,
``diffusion``) and ship inside the package as ``qipo_agents.zoo.hyperparams``. Each file maps a
task name to a block; the ``default`` block applies to every task::

    default:                       # every field of TaskConfig except datasets / env ...
      eval_freq: 50000
      hyperparams:                 # keyword arguments of QIPO.__init__
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
layer is validated before it is merged: unknown keys (with close matches) and wrong types (values
are checked by pydantic against the type hints, strictly: no boolean or quoted number for a
number) raise :class:`~qipo_agents.errors.ConfigError` naming the file (or ``--hyperparams``), the task
and the key; ``hyperparams`` keys are checked against the signature of ``QIPO.__init__`` (and
``policy_kwargs`` / ``path_kwargs`` against the network and path constructors), and the values
against QIPO's own argument checks, so a typo fails before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import inspect
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BeforeValidator, Strict, StrictBool, StrictFloat, StrictStr, TypeAdapter, ValidationError

from qipo_agents.errors import ConfigError

ALGOS = ("flow", "diffusion")
PROFILES = ("cpu", "gpu")
DEFAULT_BLOCK = "default"

# QIPO.__init__ arguments the zoo sets itself (from the command line or the run folder).
_RESERVED_HYPERPARAMS = {
    "policy": "the zoo always uses 'MlpPolicy'",
    "dataset": "set the task's `datasets`, or pass --dataset",
    "seed": "pass --seed",
    "device": "pass --device",
    "verbose": "pass --verbose",
    "tensorboard_log": "the zoo logs TensorBoard events into the run folder",
    "schedule": "the phase schedule is computed from behavior_steps / critic_steps / policy_steps",
    "_init_setup_model": "internal",
}
# QIPOPolicy arguments QIPO fills in from the data and its own hyperparameters.
_POLICY_ARGS_SET_BY_QIPO = {
    "obs_dim",
    "action_dim",
    "guidance_max",
    "use_value_network",
    "actor_learning_rate",
    "critic_learning_rate",
    "one_step_learning_rate",
}


def _run_field(
    default: Any = dataclasses.MISSING, minimum: int | None = None, factory: Any = dataclasses.MISSING
) -> Any:
    """A field a profile block (``cpu:`` / ``gpu:``) may override."""
    return field(default=default, default_factory=factory, metadata={"profile": True, "minimum": minimum})


@dataclass(frozen=True)
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
        log_interval: gradient steps between logger dumps.
        hyperparams: keyword arguments of ``QIPO.__init__``.
    """

    name: str
    algo: str
    profile: str
    datasets: tuple[str, ...]
    env: str
    description: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_package: str | None = None
    env_from_dataset: bool = False
    reference_scores: tuple[float, float] | None = None
    n_timesteps: int | None = _run_field(None, minimum=1)
    eval_freq: int = _run_field(50_000, minimum=0)
    n_eval_episodes: int = _run_field(10, minimum=1)
    n_final_eval_episodes: int = _run_field(10, minimum=0)
    n_eval_envs: int = _run_field(1, minimum=1)
    deterministic_eval: bool = _run_field(False)
    checkpoint_freq: int = _run_field(50_000, minimum=0)
    log_interval: int = _run_field(1_000, minimum=1)
    hyperparams: dict[str, Any] = _run_field(factory=dict)

    @property
    def agent_class(self) -> type:
        return agent_class(self.algo)

    @property
    def planned_timesteps(self) -> int:
        """Gradient steps a full run takes: ``n_timesteps``, else the sum of the phases (the
        distillation's included)."""
        if self.n_timesteps is not None:
            return self.n_timesteps
        defaults = _qipo_defaults()
        return sum(
            int(self.hyperparams.get(name, defaults[name]))
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
_PROFILE_KEYS = tuple(f.name for f in dataclasses.fields(TaskConfig) if f.metadata.get("profile"))
_RUN_KEYS = tuple(key for key in _PROFILE_KEYS if key != "hyperparams")  # budget, evaluation, checkpoints
_REQUIRED_KEYS = ("datasets", "env")


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TaskConfig)


def agent_class(algo: str) -> type:
    """The agent class trained by ``algo``."""
    from qipo_agents import QIPODiffusion, QIPOFlow

    classes = {"flow": QIPOFlow, "diffusion": QIPODiffusion}
    if algo not in classes:
        raise ConfigError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return classes[algo]


def _qipo_defaults() -> dict[str, Any]:
    from qipo_agents.qipo.algorithm import QIPO

    return {
        name: p.default for name, p in inspect.signature(QIPO.__init__).parameters.items() if p.default is not p.empty
    }


def hyperparameter_types() -> dict[str, Any]:
    """``{name: type hint}`` of every ``QIPO.__init__`` argument a zoo config may set."""
    from qipo_agents.qipo.algorithm import QIPO

    hints = typing.get_type_hints(QIPO.__init__)
    names = [n for n in inspect.signature(QIPO.__init__).parameters if n != "self" and n not in _RESERVED_HYPERPARAMS]
    return {name: hints.get(name, Any) for name in names}


def _signature_types(func, skip: set[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(func)
    names = [n for n in inspect.signature(func).parameters if n != "self" and n not in skip]
    return {name: hints.get(name, Any) for name in names}


def _nested_kwarg_types(algo: str) -> dict[str, dict[str, Any]]:
    """Accepted keys and types of the dict-valued hyperparameters ``policy_kwargs`` and ``path_kwargs``."""
    from qipo_agents.generative.paths import OptimalTransportPath, VPPath
    from qipo_agents.qipo.policy import QIPOPolicy

    path_class = {"ot": OptimalTransportPath, "vp": VPPath}[agent_class(algo).path_name]
    return {
        "policy_kwargs": _signature_types(QIPOPolicy.__init__, _POLICY_ARGS_SET_BY_QIPO),
        "path_kwargs": _signature_types(path_class.__init__, set()),
    }


# ---------------------------------------------------------------------------------------------- value checks
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


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}" if value is not None else "null"


def _hint_name(hint: Any) -> str:
    if hint is Any:
        return "any value"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_hint_name(a) for a in args)
    if hint is type(None):
        return "null"
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            kinds = {_hint_name(a).removeprefix("a ").removeprefix("an ") for a in args}
            return f"a list of {len(args)} {kinds.pop()}s" if len(kinds) == 1 else f"a list of {len(args)} values"
        inner = _hint_name(args[0]).removeprefix("a ").removeprefix("an ") if args else "value"
        return f"a list of {inner}s"
    if origin is dict or hint is dict:
        return "a mapping"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _integral(value: Any) -> Any:
    """``100000.0`` (YAML's ``1e5``) -> ``100000``; anything else is left to the integer check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_Integer = Annotated[int, BeforeValidator(_integral), Strict()]
_STRICT_LEAVES = {bool: StrictBool, int: _Integer, float: StrictFloat, str: StrictStr}
_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
}


def _strict(hint: Any) -> Any:
    """``hint`` for pydantic with strict leaves (no boolean or numeric string for a number, no
    number for a string; integral floats are integers) inside lax containers (a YAML list is a tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return Union[tuple(_strict(a) for a in args)]  # noqa: UP007 - built from a tuple of hints
    if origin in (list, Sequence):
        return list[_strict(args[0]) if args else Any]
    if origin is tuple:
        return tuple[tuple(a if a is Ellipsis else _strict(a) for a in args)]
    if origin is dict:
        return dict[_strict(args[0]), _strict(args[1])] if args else dict
    return _STRICT_LEAVES.get(hint, hint)


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(_strict(hint))


def check_value(value: Any, hint: Any, where: ConfigLocation, key: str) -> Any:
    """``value`` validated by pydantic against the type ``hint`` (and normalised: ints to floats,
    lists to tuples); a mismatch is a :class:`ConfigError` naming the key and what was expected."""
    try:
        return _adapter(hint).validate_python(value)
    except ValidationError as error:
        raise _value_error(error.errors()[0], value, hint, where, key) from None


def _value_error(error: dict[str, Any], value: Any, hint: Any, where: ConfigLocation, key: str) -> ConfigError:
    path = key + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    if error["type"] in ("missing", "too_short", "too_long"):  # a fixed-size list of the wrong length
        return where.error(key, f"expected {_hint_name(hint)}, got {value!r}")
    found = error["input"]
    expected = _EXPECTED.get(error["type"])
    if expected in ("an integer", "a number") and isinstance(found, str) and _is_number(found):
        return where.error(path, f"{found!r} is quoted, so YAML reads a string; write {found.strip()}")
    if expected is None:
        return where.error(path, f"{error['msg']}, got {_describe(found)}")
    return where.error(path, f"expected {expected}, got {_describe(found)}")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _unknown_key(key: str, valid: Sequence[str], where: ConfigLocation, what: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), list(valid), n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return where.error(str(key), f"unknown {what}{hint} (valid: {', '.join(valid)})")


def check_hyperparams(raw: Any, algo: str, where: ConfigLocation, prefix: str = "") -> dict[str, Any]:
    """Keys checked against ``QIPO.__init__`` and values against their type hints."""
    if not isinstance(raw, Mapping):
        raise where.error(
            prefix.rstrip(".") or "hyperparams", f"expected a mapping of QIPO arguments, got {_describe(raw)}"
        )
    types_ = hyperparameter_types()
    nested = _nested_kwarg_types(algo)
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _RESERVED_HYPERPARAMS:
            raise where.error(f"{prefix}{key}", f"is not set in a zoo config: {_RESERVED_HYPERPARAMS[key]}")
        if key in _RUN_KEYS:
            raise where.error(
                f"{prefix}{key}", "is a run setting, not a QIPO hyperparameter: set it beside `hyperparams`, not in it"
            )
        if key not in types_:
            raise _unknown_key(key, list(types_), where, "QIPO hyperparameter")
        value = check_value(value, types_[key], where, f"{prefix}{key}")
        if key in nested and value is not None:
            value = _check_nested(value, nested[key], where, f"{prefix}{key}")
        checked[key] = value
    return checked


def _check_nested(
    value: Mapping[str, Any], accepted: dict[str, Any], where: ConfigLocation, name: str
) -> dict[str, Any]:
    """Entries of ``policy_kwargs`` / ``path_kwargs`` checked against the constructor they are passed to."""
    checked = {}
    for key, item in value.items():
        if key not in accepted:
            raise _unknown_key(f"{name}.{key}", [f"{name}.{n}" for n in accepted], where, f"{name} entry")
        checked[key] = check_value(item, accepted[key], where, f"{name}.{key}")
    return checked


def _check_block(raw: Any, algo: str, where: ConfigLocation, allowed: Sequence[str]) -> dict[str, Any]:
    """One task / default / profile block: known keys, typed values (profile blocks left as they are)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise where.error(None, f"expected a mapping of settings, got {_describe(raw)}")
    hints = _field_types()
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        if key in PROFILES and key in allowed:
            checked[key] = value  # validated when that profile is resolved
            continue
        if key not in allowed:
            if key in PROFILES or key in _TASK_KEYS:
                raise where.error(str(key), "cannot be set in a profile block (only run settings and hyperparams)")
            if key in hyperparameter_types():
                raise where.error(str(key), "is a QIPO hyperparameter: set it in the block's `hyperparams:`")
            raise _unknown_key(key, list(allowed), where, "key")
        if key == "hyperparams":
            checked[key] = check_hyperparams(value, algo, where)
            continue
        value = check_value(value, hints[key], where, key)
        minimum = next(f.metadata.get("minimum") for f in dataclasses.fields(TaskConfig) if f.name == key)
        if minimum is not None and value is not None and value < minimum:
            raise where.error(key, f"must be >= {minimum}, got {value}")
        if key == "reference_scores" and value is not None and not value[1] > value[0]:
            raise where.error(key, f"the expert return must exceed the random return, got {list(value)}")
        if key == "datasets" and not value:
            raise where.error(key, "lists no dataset")
        checked[key] = value
    return checked


def _merge(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"hyperparams": {}}
    for layer in layers:
        for key, value in layer.items():
            if key in PROFILES:
                continue
            if key == "hyperparams":
                merged["hyperparams"].update(value)
            else:
                merged[key] = value
    return merged


def _semantic_problem(config: TaskConfig) -> str | None:
    """What QIPO's own argument checks (critic type, solver, reward scaling...) refuse in
    ``config``, run without data or networks; None when it passes them."""
    try:
        config.agent_class("MlpPolicy", None, seed=0, device="cpu", _init_setup_model=False, **config.hyperparams)
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def _check_semantics(config: TaskConfig, where: ConfigLocation) -> None:
    problem = _semantic_problem(config)
    if problem is not None:
        raise where.error(None, f"invalid hyperparameters: {problem}")


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
            raise ConfigError(f"{source}: expected a mapping of task names to settings, got {_describe(raw)}")
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
            (file, _check_block(raw, self.algo, ConfigLocation(file, DEFAULT_BLOCK), base_keys))
            for file, raw in self._defaults
        ]
        entry = _check_block(block, self.algo, ConfigLocation(source, task), base_keys)
        default_profiles = [
            _check_block(default.get(profile), self.algo, ConfigLocation(file, DEFAULT_BLOCK, profile), _PROFILE_KEYS)
            for file, default in defaults
        ]
        task_profile = _check_block(entry.get(profile), self.algo, ConfigLocation(source, task, profile), _PROFILE_KEYS)
        layers = [*(default for _, default in defaults), entry, *default_profiles, task_profile]
        command_line = check_overrides(overrides, self.algo) if overrides else {}
        merged = _merge([*layers, command_line])
        if datasets is not None:
            merged["datasets"] = check_value(list(datasets), list[str], ConfigLocation("--dataset"), "datasets")
        where = ConfigLocation(source, task)
        for key in _REQUIRED_KEYS:
            if key not in merged:
                raise where.error(key, "is required (set it in the task's block)")
        config = _build(merged, name=task, algo=self.algo, profile=profile)
        problem = _semantic_problem(config)
        if problem is not None:
            file_hyperparams = _merge(layers)["hyperparams"]
            raise _blame(config, problem, file_hyperparams, list(command_line.get("hyperparams", {})), where)
        return config

    def resolve_all(self, profile: str) -> dict[str, TaskConfig]:
        return {task: self.resolve(task, profile) for task in self.tasks}


def _parse_yaml(text: str, source: str) -> Any:
    try:
        raw = zoo_yaml_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {error}") from error
    return {} if raw is None else raw


def _blame(
    config: TaskConfig,
    problem: str,
    file_hyperparams: Mapping[str, Any],
    overridden: Sequence[str],
    where: ConfigLocation,
) -> ConfigError:
    """The error of a config QIPO refuses, located where the refused values were set: in
    ``--hyperparams`` when the files' own values give another verdict (the key named when putting
    that one key back to the files' value makes the config valid), else in the task's file."""

    def problem_without(keys: Sequence[str]) -> str | None:
        hyperparams = {k: v for k, v in config.hyperparams.items() if k not in keys}
        hyperparams.update({k: file_hyperparams[k] for k in keys if k in file_hyperparams})
        return _semantic_problem(dataclasses.replace(config, hyperparams=hyperparams))

    if overridden and problem_without(overridden) != problem:
        culprits = [key for key in overridden if problem_without([key]) is None]
        return ConfigLocation("--hyperparams").error(", ".join(culprits) or None, f"invalid hyperparameters: {problem}")
    return where.error(None, f"invalid hyperparameters: {problem}")


def _build(values: Mapping[str, Any], **implicit: str) -> TaskConfig:
    values = dict(values)
    values["datasets"] = tuple(values["datasets"])
    if values.get("reference_scores") is not None:
        values["reference_scores"] = tuple(values["reference_scores"])
    return TaskConfig(**implicit, **values)


def check_overrides(overrides: Mapping[str, Any], algo: str) -> dict[str, Any]:
    """Command-line settings split into run fields and hyperparameters, validated like the YAML."""
    where = ConfigLocation("--hyperparams")
    run_keys = list(_RUN_KEYS)
    qipo_keys = list(hyperparameter_types())
    run_fields: dict[str, Any] = {}
    hyperparams: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in run_keys:
            run_fields[key] = value
        elif key in _TASK_KEYS:
            raise where.error(key, "is part of the task, not a hyperparameter (use --dataset for the data)")
        elif key in qipo_keys or key in _RESERVED_HYPERPARAMS:
            hyperparams[key] = value
        else:
            close = difflib.get_close_matches(str(key), run_keys + qipo_keys, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise where.error(
                str(key),
                f"unknown run setting or QIPO hyperparameter{hint} "
                f"(run settings: {', '.join(run_keys)}; QIPO hyperparameters: {', '.join(qipo_keys)})",
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
    fields_ = {k: v for k, v in data.items() if k in _TASK_KEYS}
    checked = _check_block(fields_, algo, ConfigLocation(source, str(data["name"])), _TASK_KEYS)
    config = _build(checked, name=str(data["name"]), algo=algo, profile=profile)
    _check_semantics(config, where)
    return config


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
