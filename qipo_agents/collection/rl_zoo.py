"""Trained agents as rl-baselines3-zoo publishes them, ready to act in a Gymnasium env.

rl-baselines3-zoo (and the ``sb3/<algo>-<Env>`` repositories on the Hugging Face Hub) store an agent
as ``<Env>.zip`` (or ``<algo>-<Env>.zip``) with a folder beside it that may hold

* ``vecnormalize.pkl`` (Hub: ``vec_normalize.pkl``): SB3's ``VecNormalize`` statistics. The policy
  was trained on ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, so it must act
  on observations scaled the same way;
* ``config.yml``: the training hyperparameters, whose ``env_wrapper`` (e.g. sb3-contrib's
  ``TimeFeatureWrapper``) changes what the policy observes.

:func:`load_rl_zoo_agent` finds these files, loads the model (replacing the pickled spaces and
schedules that old ``gym``-era saves cannot unpickle) and returns an :class:`ActingPolicy` that
maps the env's raw observations to actions the way the agent was trained to see them.
"""

from __future__ import annotations

import importlib
import json
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from qipo_agents.errors import ConfigError

# SB3 / sb3-contrib algorithm module name -> class name, for agents that can act from a saved zip.
SB3_ALGORITHMS = {
    "sac": "SAC",
    "td3": "TD3",
    "ddpg": "DDPG",
    "ppo": "PPO",
    "a2c": "A2C",
    "dqn": "DQN",
    "tqc": "TQC",
    "trpo": "TRPO",
    "ars": "ARS",
    "crossq": "CrossQ",
    "qrdqn": "QRDQN",
    "ppo_lstm": "RecurrentPPO",
}
_CONTRIB = {"TQC", "TRPO", "ARS", "CrossQ", "QRDQN", "RecurrentPPO"}
VECNORMALIZE_NAMES = ("vecnormalize.pkl", "vec_normalize.pkl")


@dataclass(frozen=True)
class ObservationScaling:
    """VecNormalize's observation statistics: ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``."""

    mean: np.ndarray
    var: np.ndarray
    clip_obs: float
    epsilon: float

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        scaled = (observation - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)


@dataclass
class ActingPolicy:
    """A loaded agent and how it sees the env: wrap the env with :meth:`wrap`, act with :meth:`predict`.

    Attributes:
        model: the SB3 / sb3-contrib model.
        description: e.g. ``"sb3-contrib TQC"``.
        wrappers: env wrappers from the agent's ``config.yml``, applied innermost first.
        scaling: the VecNormalize statistics, or None.
        files: the rl-zoo files that were used (``vecnormalize``, ``config``).
    """

    model: Any
    description: str
    wrappers: list[Callable[[gym.Env], gym.Env]] = field(default_factory=list)
    scaling: ObservationScaling | None = None
    files: dict[str, str] = field(default_factory=dict)

    def wrap(self, env: gym.Env) -> gym.Env:
        return apply_wrappers(env, self.wrappers)

    def predict(self, observation: np.ndarray, deterministic: bool) -> np.ndarray:
        if self.scaling is not None:
            observation = self.scaling(observation)
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return action


def apply_wrappers(env: gym.Env, wrappers: list[Callable[[gym.Env], gym.Env]]) -> gym.Env:
    """``env`` inside ``wrappers``, the first one innermost."""
    for wrapper in wrappers:
        env = wrapper(env)
    return env


class _GymToGymnasium(pickle.Unpickler):
    """Unpickles files written with the old ``gym`` package by reading its classes from ``gymnasium``."""

    def find_class(self, module: str, name: str):
        if module == "gym" or module.startswith("gym."):
            module = "gymnasium" + module[3:]
        return super().find_class(module, name)


def read_vecnormalize(path: str | Path, observation_shape: tuple[int, ...]) -> ObservationScaling | None:
    """The observation statistics of a ``VecNormalize`` pickle (None if it does not scale observations).

    Raises:
        ConfigError: the file cannot be read, or its statistics have another shape than the
            observations the policy receives.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            vec_normalize = _GymToGymnasium(f).load()
        rms = vec_normalize.obs_rms
        mean, var = np.asarray(rms.mean, dtype=np.float64), np.asarray(rms.var, dtype=np.float64)
    except (OSError, pickle.UnpicklingError, AttributeError, ImportError, EOFError) as error:
        raise ConfigError(f"{path} is not a readable VecNormalize file ({type(error).__name__}: {error})") from error
    if not getattr(vec_normalize, "norm_obs", True):
        return None
    if mean.shape != tuple(observation_shape):
        raise ConfigError(
            f"the VecNormalize statistics in {path} are for observations of shape {mean.shape}, but the policy "
            f"receives {tuple(observation_shape)}: is it the file of this agent and env?"
        )
    return ObservationScaling(mean, var, float(vec_normalize.clip_obs), float(vec_normalize.epsilon))


class _RLZooConfigLoader(yaml.SafeLoader):
    """Reads rl-zoo's ``config.yml`` (an ``OrderedDict`` dump) without executing any YAML tag."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return {key: value for key, value in pairs}


_RLZooConfigLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def read_env_wrappers(path: str | Path) -> list[Callable[[gym.Env], gym.Env]]:
    """The ``env_wrapper`` entries of an rl-zoo ``config.yml``: ``"module.Class"``, ``{"module.Class":
    {kwargs}}`` or a list of these, as rl-baselines3-zoo's ``get_wrapper_class`` reads them."""
    path = Path(path)
    try:
        config = yaml.load(path.read_text(), Loader=_RLZooConfigLoader) or {}
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise ConfigError(f"{path} is not a readable rl-baselines3-zoo config.yml ({error})") from error
    if config.get("frame_stack"):
        raise ConfigError(f"{path}: agents trained with frame_stack cannot be rolled out here")
    entries = config.get("env_wrapper") or []
    entries = entries if isinstance(entries, list) else [entries]
    wrappers = []
    for entry in entries:
        name, kwargs = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        module_name, _, class_name = str(name).rpartition(".")
        try:
            wrapper_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as error:
            raise ConfigError(f"{path}: env_wrapper {name!r} cannot be imported ({error})") from error
        wrappers.append(lambda env, cls=wrapper_class, kw=dict(kwargs or {}): cls(env, **kw))
    return wrappers


def rl_zoo_files(model_path: Path) -> dict[str, Path]:
    """``vecnormalize`` and ``config`` files found beside ``model_path`` in rl-zoo's layouts:
    ``<dir>/<stem>/`` (rl-trained-agents), ``<dir>/`` (Hugging Face Hub) and ``<dir>/<Env>/`` when the
    zip is named ``<algo>-<Env>.zip``."""
    stem = model_path.stem
    folders = [model_path.parent / stem, model_path.parent]
    if "-" in stem:
        folders.insert(1, model_path.parent / stem.split("-", 1)[1])
    found: dict[str, Path] = {}
    for folder in folders:
        for name in VECNORMALIZE_NAMES:
            if "vecnormalize" not in found and (folder / name).is_file():
                found["vecnormalize"] = folder / name
        if "config" not in found and (folder / "config.yml").is_file():
            found["config"] = folder / "config.yml"
    return found


def _saved_data(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise ConfigError(f"{path} is not a readable Stable-Baselines3 model zip ({error})") from error


def algorithm_of(path: Path, data: dict[str, Any], algo: str | None = None) -> str:
    """The SB3 class name that saved ``path``: ``algo`` if given, else the policy's module
    (``stable_baselines3.sac.policies``), else the file or folder name (``ppo-HalfCheetah-v3.zip``,
    ``rl-trained-agents/ppo/HalfCheetah-v3_1/``)."""
    if algo is not None:
        if algo.lower() not in SB3_ALGORITHMS:
            raise ConfigError(f"unknown --algo {algo!r}; choose one of {', '.join(sorted(SB3_ALGORITHMS))}")
        return SB3_ALGORITHMS[algo.lower()]
    module = (data.get("policy_class") or {}).get("__module__", "")
    candidates = [module.split(".")[1] if module.count(".") >= 1 else ""]
    candidates += [re.split(r"[-_]", path.stem)[0].lower()] + [p.name.lower() for p in path.parents][:3]
    for candidate in candidates:
        if candidate in SB3_ALGORITHMS:
            return SB3_ALGORITHMS[candidate]
    raise ConfigError(
        f"{path}: cannot tell which Stable-Baselines3 algorithm saved it (policy module {module!r}); "
        "name it with --algo (e.g. --algo ppo)"
    )


def load_rl_zoo_agent(
    path: str | Path,
    env: gym.Env,
    vecnormalize: str | Path | None = None,
    config: str | Path | None = None,
    algo: str | None = None,
    device: str = "cpu",
) -> ActingPolicy:
    """Load an SB3 / sb3-contrib model zip as rl-baselines3-zoo stores it, ready to act in ``env``.

    Args:
        path: the model zip.
        env: the raw environment (its spaces replace the pickled ones).
        vecnormalize: the VecNormalize file; None looks for it in rl-zoo's layouts.
        config: the rl-zoo ``config.yml`` (for ``env_wrapper``); None looks for it likewise.
        algo: the algorithm (``ppo``, ``tqc``...) when the file does not tell.

    Raises:
        ConfigError: unreadable files, a missing package, or a model whose observation or action
            shape does not fit the env (with its wrappers).
    """
    path = Path(path)
    data = _saved_data(path)
    class_name = algorithm_of(path, data, algo)
    package = "sb3_contrib" if class_name in _CONTRIB else "stable_baselines3"
    try:
        algo_class = getattr(importlib.import_module(package), class_name)
    except ImportError as error:
        pip = "sb3-contrib" if package == "sb3_contrib" else "stable-baselines3"
        raise ConfigError(
            f"{path} is a {class_name} agent from {package}, which is not installed: pip install {pip} ({error})"
        ) from error
    found = rl_zoo_files(path)
    files = {
        name: str(Path(given) if given is not None else found[name])
        for name, given in (("vecnormalize", vecnormalize), ("config", config))
        if given is not None or name in found
    }
    wrappers = read_env_wrappers(files["config"]) if "config" in files else []
    acting_env = apply_wrappers(env, wrappers)
    _check_shape(path, "observation", data, acting_env.observation_space, wrappers)
    _check_shape(path, "action", data, acting_env.action_space, wrappers)
    scaling = None
    if "vecnormalize" in files:
        scaling = read_vecnormalize(files["vecnormalize"], acting_env.observation_space.shape)
    # saves of older SB3 / gym pickled their spaces and schedules: replace what acting does not need
    custom = {
        "observation_space": acting_env.observation_space,
        "action_space": acting_env.action_space,
        "learning_rate": 0.0,
        "lr_schedule": lambda _: 0.0,
        "clip_range": lambda _: 0.0,
        "exploration_schedule": lambda _: 0.0,
        "replay_buffer_class": None,
    }
    try:
        model = algo_class.load(path, custom_objects=custom, device=device)
    except Exception as error:  # noqa: BLE001 - SB3 raises many kinds on a foreign zip
        raise ConfigError(
            f"{path} could not be loaded as a {class_name} agent: {type(error).__name__}: {error}"
        ) from error
    return ActingPolicy(model, f"{package.replace('_', '-')} {class_name}", wrappers, scaling, files)


def _check_shape(path: Path, kind: str, data: dict[str, Any], space: gym.Space, wrappers: list) -> None:
    saved_space = data.get(f"{kind}_space") or {}
    saved = saved_space.get("_shape", saved_space.get("shape"))  # gymnasium / old gym spaces
    if saved is None or tuple(saved) == tuple(space.shape):
        return
    hint = ""
    if kind == "observation" and not wrappers:
        hint = (
            "; if it was trained behind an env_wrapper (such as TimeFeatureWrapper), give its rl-zoo "
            "config.yml with --config or keep the rl-zoo folder layout beside the zip"
        )
    raise ConfigError(
        f"{path} expects {kind}s of shape {tuple(saved)}, but the env{' with its wrappers' if wrappers else ''} "
        f"gives {tuple(space.shape)}: is it an agent of this env?{hint}"
    )
