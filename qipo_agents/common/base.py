"""OfflineAlgorithm: the Stable-Baselines3 surface of an offline agent.

``learn / predict / save / load / get_parameters / set_parameters``, the SB3 logger and callbacks,
seeding and device placement. An algorithm names its ``config_class`` (a frozen pydantic model of
its hyperparameters: the constructor's keyword arguments build ``self.config``, saves hold it) and
implements four hooks: ``_setup_model`` (build networks from the spaces), ``_train_step`` (one
gradient step, returns a loss dataclass), ``_predict`` (normalised observations to actions) and
``_state`` / ``_load_state`` (what else a save holds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import os
import platform
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
)
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import configure_logger, set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from qipo_agents.common.callbacks import ProgressBarCallback
from qipo_agents.common.device import get_device
from qipo_agents.common.evaluation import check_env_spaces
from qipo_agents.common.interrupts import DeferredInterrupts, defer_interrupts
from qipo_agents.common.save_format import read_save_file, write_save_file
from qipo_agents.common.validation import settings_error
from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.data.sources import make_buffer
from qipo_agents.errors import SaveFileError, SpaceMismatchError


def box_to_dict(space: gym.spaces.Box) -> dict[str, Any]:
    return {"low": space.low.tolist(), "high": space.high.tolist(), "dtype": str(space.dtype)}


def box_from_dict(data: dict[str, Any]) -> gym.spaces.Box:
    dtype = np.dtype(data["dtype"])
    return gym.spaces.Box(np.asarray(data["low"], dtype=dtype), np.asarray(data["high"], dtype=dtype), dtype=dtype)


CUDA_GENERATOR_STATE_BYTES = 16  # a CUDA (Philox) generator's state: its seed and offset, 8 bytes each


class OfflineAlgorithm(ABC):
    """Base class of offline agents trained from a dataset instead of an environment.

    Args:
        policy: ``"MlpPolicy"`` (the only policy family; its shape is set by ``policy_kwargs``).
        dataset: any source :func:`qipo_agents.data.make_buffer` accepts — a Minari id or
            ``MinariDataset``, a D4RL HDF5 path, an SB3 ``ReplayBuffer``, a dict of arrays, an
            :class:`~qipo_agents.data.OfflineBuffer`, or a list of these (concatenated). ``None`` only
            when loading.
        verbose: 0 silent, 1 training logs to stdout.
        seed: seeds Python, NumPy, torch and the agent's sampling generator.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:1"``...
        tensorboard_log: folder for TensorBoard event files (None: no TensorBoard).
        hyperparameters: the fields of ``config_class``; the agent keeps them as ``self.config``.

    ``agent.<hyperparameter>`` reads ``agent.config.<hyperparameter>``; assigning it
    (``agent.best_of_n = 4``) replaces ``agent.config`` by a validated copy with that value.
    """

    policy_aliases = ("MlpPolicy",)
    #: The frozen pydantic model of the algorithm's hyperparameters.
    config_class: ClassVar[type[BaseModel]]
    #: Constructor arguments a save holds beside the config (the run's, not the algorithm's).
    run_settings = ("verbose", "seed", "tensorboard_log")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give each algorithm a constructor signature that lists its config's fields as keyword
        arguments, so ``help()``, ``inspect.signature`` and notebooks show them."""
        super().__init_subclass__(**kwargs)
        if "config_class" not in cls.__dict__:
            return
        explicit = [p for p in inspect.signature(cls.__init__).parameters.values() if p.kind is not p.VAR_KEYWORD]
        fields = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.get_default(call_default_factory=True),
                annotation=field.annotation,
            )
            for name, field in cls.config_class.model_fields.items()
        ]
        cls.__signature__ = inspect.Signature(explicit[1:] + fields)  # without self, as for a class

    def __init__(
        self,
        policy: str,
        dataset: Any = None,
        verbose: int = 0,
        seed: int | None = None,
        device: str | torch.device = "auto",
        tensorboard_log: str | None = None,
        _init_setup_model: bool = True,
        **hyperparameters: Any,
    ):
        if policy not in self.policy_aliases:
            raise ValueError(
                f"unknown policy {policy!r}; use one of {self.policy_aliases} (shape it with policy_kwargs)"
            )
        try:  # refused before any data is read
            self.config = self.config_class(**hyperparameters)
        except ValidationError as error:
            raise settings_error(error, self.config_class) from None
        self.verbose, self.seed = verbose, seed
        self.device = get_device(device)
        self.tensorboard_log = tensorboard_log
        self.num_timesteps = 0
        self.observation_space: gym.spaces.Box | None = None
        self.action_space: gym.spaces.Box | None = None
        self.dataset_metadata: dict[str, Any] = {}
        self.buffer: OfflineBuffer | None = None
        self._env: VecEnv | None = None
        self._logger: Logger | None = None
        self._custom_logger = False
        self._learn_start = (time.perf_counter(), 0)
        self._loss_sums: dict[str, float] = defaultdict(float)
        self._loss_counts: dict[str, int] = defaultdict(int)
        self._interrupts: DeferredInterrupts | None = None  # while learn() runs
        self.set_random_seed(seed)
        if dataset is not None:
            self.buffer = make_buffer(dataset)
            self.observation_space = self.buffer.observation_space
            self.action_space = self.buffer.action_space
            self.dataset_metadata = dict(self.buffer.metadata)
            if _init_setup_model:
                self._setup_model()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _setup_model(self) -> None:
        """Build networks and scalers from ``observation_space``, ``action_space`` (and ``buffer``)."""

    @abstractmethod
    def _train_step(self) -> Any:
        """One gradient step; returns a dataclass whose tensor/float fields are logged as ``train/<field>``."""

    @abstractmethod
    def _predict(self, observations: np.ndarray, deterministic: bool, **options: Any) -> np.ndarray:
        """Actions ``(n, action_dim)`` for raw observations ``(n, obs_dim)``; ``options`` are the
        algorithm's extra ``predict`` keywords."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(json_state, tensor_state)``: what a save holds besides hyperparameters and spaces."""

    @abstractmethod
    def _load_state(self, json_state: dict[str, Any], tensor_state: dict[str, Any]) -> None:
        """Restore what :meth:`_state` returned."""

    def _training_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(json_state, tensor_state)`` of an unfinished training run (schedule position, a phase's
        sampled data): what a checkpoint needs, beyond the parameters, to resume exactly."""
        return {}, {}

    def _load_training_state(self, json_state: dict[str, Any], tensor_state: dict[str, Any]) -> None:
        """Restore what :meth:`_training_state` returned (empty for files that hold none)."""

    def __getattr__(self, name: str) -> Any:
        # called only when normal lookup fails: a hyperparameter reads the config
        config = self.__dict__.get("config")
        if config is not None and name in type(config).model_fields:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if "config" in self.__dict__ and name in self.config_class.model_fields:
            try:
                value = self.config.replace(**{name: value})
            except ValidationError as error:
                raise settings_error(error, self.config_class) from None
            name = "config"
        super().__setattr__(name, value)

    # ------------------------------------------------------------------ SB3 plumbing
    @property
    def logger(self) -> Logger:
        if self._logger is None:
            self._logger = configure_logger(self.verbose, None, "", True)
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        """Use ``logger`` (e.g. from ``stable_baselines3.common.logger.configure``) instead of the default."""
        self._logger = logger
        self._custom_logger = True

    def get_env(self) -> VecEnv | None:
        """The agent's environment as a ``VecEnv``, as SB3's callbacks read it (``training_env``).

        An offline agent does not train in it: it is where the agent is evaluated. It is the env
        given to :meth:`set_env` (or ``load(..., env=...)``), else one ``gym.make`` of the dataset's
        ``env_id``, made on first use; None when neither is known.
        """
        if self._env is None and self.dataset_metadata.get("env_id"):
            env_id = self.dataset_metadata["env_id"]
            try:
                self._env = DummyVecEnv([lambda: gym.make(env_id)])
            except gym.error.Error as error:
                raise gym.error.Error(
                    f"the dataset's environment {env_id!r} cannot be made ({error}); "
                    "give the agent an evaluation env with agent.set_env(env)"
                ) from error
        return self._env

    def set_env(self, env: gym.Env | VecEnv | str) -> None:
        """Use ``env`` (an env, a ``VecEnv`` or an env id) as the agent's environment (see :meth:`get_env`).

        Raises:
            SpaceMismatchError: its observation or action space is not the agent's.
        """
        if isinstance(env, str):
            env = gym.make(env)
        vec_env = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env])
        check_env_spaces(vec_env, self.observation_space, self.action_space)
        self._env = vec_env

    def get_vec_normalize_env(self) -> None:
        """Observations are normalised inside the agent (``normalize_observations``), never by a
        ``VecNormalize`` wrapper; SB3's ``EvalCallback`` asks."""
        return None

    def set_random_seed(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        set_random_seed(seed, using_cuda=self.device.type == "cuda")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def _restore_generator(self, state: torch.Tensor, path: str | os.PathLike) -> None:
        """Continue the saved sampling generator's stream, or, when the file was written on another
        device type (a CUDA generator's state does not fit a CPU generator, nor the reverse), seed a
        fresh stream from that state: loading the same file twice still continues identically, but
        not as the saving device would have."""
        if state.numel() == self.generator.get_state().numel():
            self.generator.set_state(state)
            return
        if state.numel() not in (torch.Generator().get_state().numel(), CUDA_GENERATOR_STATE_BYTES):
            raise RuntimeError(f"its random generator state has {state.numel()} bytes, which no torch device writes")
        seed = int.from_bytes(hashlib.sha256(state.numpy().tobytes()).digest()[:8], "little")
        self.generator.manual_seed(seed)
        if self._continues_training():
            warnings.warn(
                f"{path} was saved with the random generator of another device type than {self.device}: "
                "learn() continues with a random stream seeded from the saved one, so the resumed run is not "
                "the one the saving device would have trained (the weights and actions load exactly). "
                "Resume on the device type it was saved on for an exact continuation.",
                stacklevel=3,
            )

    def _continues_training(self) -> bool:
        """Whether a saved run stopped inside its schedule (a later ``learn()`` resumes it); agents
        override this where the schedule is known. Default: yes, to warn rather than stay silent."""
        return True

    def set_dataset(self, dataset: Any) -> None:
        """Attach a dataset (any :func:`~qipo_agents.data.make_buffer` source) to a loaded agent to resume ``learn``."""
        buffer = make_buffer(dataset)
        buffer.check_compatible(self.observation_space, self.action_space)
        self.buffer = buffer
        self._on_dataset_attached()

    def _on_dataset_attached(self) -> None:
        """Called after :meth:`set_dataset` so an algorithm can rebuild what it derives from the data."""

    def learn(
        self,
        total_timesteps: int | None = None,
        callback: BaseCallback | list | None = None,
        log_interval: int = 1000,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ):
        """Train for ``total_timesteps`` gradient steps (the algorithm documents how they split).

        Args:
            callback: an SB3 callback, a list of them, or a function ``f(locals, globals) -> bool``.
            log_interval: dump the logger every this many gradient steps.
            tb_log_name: TensorBoard run name (default: the class name).
            reset_num_timesteps: False continues the step counter (resuming a loaded agent).
            progress_bar: show a tqdm/rich progress bar.

        Raises:
            TrainingSignal: a ``KeyboardInterrupt`` for Ctrl-C (SIGINT) or SIGTERM received while
                learning in the main thread. It is raised once the step in progress and its
                callbacks are done, or sooner where the step draws samples (a support renewal:
                the step is then undone and redone on resume), so that the agent saved then
                resumes exactly as the uninterrupted run; a second Ctrl-C while waiting raises it
                at once, mid-step (``at_step_boundary`` False). See :func:`~qipo_agents.common.interrupts.defer_interrupts`.
                A signal ignored when learn() starts stays ignored: a job a script started in the
                background (``nohup python train.py &``) begins with SIGINT ignored, so SIGINT does
                not stop it, while SIGTERM still does, between two steps as above.
        """
        if self.buffer is None:
            raise RuntimeError(
                "this agent has no dataset to learn from: pass dataset=... to load() or call set_dataset()"
            )
        total_timesteps = self._setup_learn(total_timesteps, reset_num_timesteps)
        if not self._custom_logger:
            self._logger = configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name or type(self).__name__, reset_num_timesteps
            )
        callback = self._init_callback(callback, progress_bar)
        self._learn_start = (time.perf_counter(), self.num_timesteps)
        with defer_interrupts() as interrupts:
            self._interrupts = interrupts
            try:
                callback.on_training_start(locals(), globals())
                while self.num_timesteps < total_timesteps:
                    # Ctrl-C or SIGTERM during the last step (or its callbacks) stops here, where the
                    # step is whole: a save of the agent now resumes exactly
                    interrupts.raise_pending()
                    losses = self._train_step()
                    self.num_timesteps += 1
                    self._accumulate(losses)
                    if log_interval and self.num_timesteps % log_interval == 0:
                        self.dump_logs()
                    callback.update_locals(locals())
                    if not callback.on_step():
                        break
                callback.on_training_end()
            finally:
                self._interrupts = None
        return self

    def _raise_pending_interrupt(self) -> None:
        """Raise the Ctrl-C or SIGTERM received during the current step, if any, as a
        :class:`~qipo_agents.common.interrupts.TrainingSignal`, from inside the step: for work long
        enough to be worth stopping part-way (between two chunks of a sampling loop), whose caller
        undoes what the step changed so far as the signal passes, so the agent stops whole, as
        between two steps. Does nothing outside :meth:`learn`."""
        if self._interrupts is not None:
            self._interrupts.raise_pending()

    def _setup_learn(self, total_timesteps: int | None, reset_num_timesteps: bool) -> int:
        """Returns the step count at which this ``learn`` call stops."""
        if reset_num_timesteps:
            self.num_timesteps = 0
        if total_timesteps is None:
            raise ValueError("total_timesteps is required")
        return self.num_timesteps + int(total_timesteps)

    def _init_callback(self, callback, progress_bar: bool) -> BaseCallback:
        if isinstance(callback, list):
            callback = CallbackList(callback)
        elif callback is None:
            callback = CallbackList([])
        elif not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)
        return callback

    def _accumulate(self, losses: Any) -> None:
        for field in dataclasses.fields(losses):
            value = getattr(losses, field.name)
            self._loss_sums[field.name] += value.detach() if isinstance(value, torch.Tensor) else value
            self._loss_counts[field.name] += 1

    def dump_logs(self) -> None:
        """Record the mean of every loss field since the last dump under ``train/`` and dump."""
        for name, total in self._loss_sums.items():
            self.logger.record(f"train/{name}", float(total) / self._loss_counts[name])
        self._loss_sums.clear()
        self._loss_counts.clear()
        self.logger.record("time/total_timesteps", self.num_timesteps)
        started, start_steps = self._learn_start
        self.logger.record(
            "time/fps", int((self.num_timesteps - start_steps) / max(time.perf_counter() - started, 1e-9))
        )
        self._record_extra_logs()
        self.logger.dump(step=self.num_timesteps)

    def _record_extra_logs(self) -> None:
        """Record algorithm-specific keys (e.g. ``time/phase``) before each dump."""

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        **options: Any,
    ) -> tuple[np.ndarray, None]:
        """SB3's ``predict``: one observation ``(obs_dim,)`` or a batch ``(n, obs_dim)`` to actions.

        ``state`` and ``episode_start`` exist for SB3 compatibility (the policy is not recurrent);
        ``options`` are algorithm-specific keywords passed to ``_predict``.
        Returns ``(action, None)`` with ``action`` of shape ``(action_dim,)`` or ``(n, action_dim)``,
        inside the action space's bounds.
        """
        if self.observation_space is None:
            raise RuntimeError("this agent has no networks yet: construct it with a dataset or load() it")
        obs = self._check_observation(observation)
        actions = self._predict(obs.reshape(-1, self.observation_space.shape[0]), deterministic, **options)
        actions = np.clip(actions, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        return (actions[0] if obs.ndim == 1 else actions), None

    def _check_observation(self, observation: Any) -> np.ndarray:
        expected = self.observation_space.shape
        try:
            obs = np.ascontiguousarray(observation, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise SpaceMismatchError(
                f"observation must be a numeric array of shape {expected} or (n, {expected[0]}), "
                f"got {type(observation).__name__} ({exc})"
            ) from exc
        if obs.shape != expected and not (obs.ndim == 2 and obs.shape[1:] == expected):
            raise SpaceMismatchError(
                f"observation has shape {obs.shape}, but this agent expects {expected} or a batch (n, {expected[0]}); "
                "is it the environment the dataset was collected in?"
            )
        if not np.isfinite(obs).all():
            raise ValueError("observation contains NaN or inf")
        return obs

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike | io.BufferedIOBase) -> Path | io.BufferedIOBase:
        """Save to ``path`` (``.zip`` added if missing), atomically, and return the written path; or
        into an open binary file (``io.BytesIO``, a file opened ``"wb"``), returned as given."""
        from qipo_agents import __version__

        json_state, tensor_state = self._state()
        training_json, training_tensors = self._training_state()
        # the sampling generator drives every minibatch, noise and support draw: saving it makes a
        # run resumed from this file continue exactly as the uninterrupted run would have
        training_tensors = {**training_tensors, "generator": self.generator.get_state()}
        tensor_state = {**tensor_state, "training_state": training_tensors}
        data = {
            "class": type(self).__name__,
            "qipo_agents_version": __version__,
            "config": self.config.model_dump(mode="json"),
            **{name: getattr(self, name) for name in self.run_settings},
            "observation_space": box_to_dict(self.observation_space),
            "action_space": box_to_dict(self.action_space),
            "num_timesteps": self.num_timesteps,
            "dataset_metadata": self.dataset_metadata,
            "system_info": system_info(),
            "training_state": training_json,
            **json_state,
        }
        return write_save_file(path, data, tensor_state)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | io.BufferedIOBase,
        env: gym.Env | VecEnv | str | None = None,
        device: str | torch.device = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        dataset: Any = None,
        **kwargs: Any,
    ):
        """Load a saved agent (Stable-Baselines3's signature).

        Args:
            path: the ``.zip`` written by :meth:`save` (``.zip`` may be left out), or an open
                binary file holding it.
            env: the agent's environment (see :meth:`get_env`); its spaces must be the agent's.
            device: ``"auto"``, ``"cpu"``, ``"cuda:1"``...
            custom_objects: saved entries to replace instead of reading them, as in SB3: a saved
                hyperparameter's name, ``"observation_space"`` or ``"action_space"``.
            print_system_info: print the system the file was saved on beside this one.
            dataset: data (any :func:`~qipo_agents.data.make_buffer` source) to resume ``learn``.
            kwargs: override saved hyperparameters that do not change network shapes
                (e.g. ``verbose``, ``tensorboard_log``, ``n_sampling_steps``); QIPO agents also
                take ``distill_steps`` here, to distil a trained agent (its one-step network starts fresh).

        Raises:
            SaveFileError: corrupt, foreign or newer-format file, one that holds another agent class,
                or one saved with hyperparameters this version of qipo_agents does not know.
            TypeError: an override in ``kwargs`` that is not a hyperparameter.
            KeyError: a ``custom_objects`` key that the file does not hold.
        """
        device = get_device(device)
        data, tensors = read_save_file(path, device=device)
        saved_class = data.get("class")
        if saved_class not in _class_names(cls):
            raise SaveFileError(
                f"{path} holds a {saved_class} agent; load it with {saved_class}.load(...) instead of {cls.__name__}"
            )
        from qipo_agents import __version__

        if print_system_info:
            print("== saved on ==", *(f"{k}: {v}" for k, v in data.get("system_info", {}).items()), sep="\n")
            print("== this system ==", *(f"{k}: {v}" for k, v in system_info().items()), sep="\n")
        agent_class = next((c for c in _all_subclasses(cls) if c.__name__ == saved_class), cls)
        saved_config = data.get("config")
        if not isinstance(saved_config, dict):
            raise SaveFileError(f"{path} is corrupt or incomplete: it holds no config")
        saved = {**saved_config, **{name: data.get(name) for name in agent_class.run_settings}}
        custom_objects = dict(custom_objects or {})
        replaceable = set(saved) | {"observation_space", "action_space"}
        unknown = sorted(set(custom_objects) - replaceable)
        if unknown:
            raise KeyError(
                f"custom_objects names {', '.join(unknown)}, which {path} does not hold; it can replace "
                f"observation_space, action_space or a saved hyperparameter ({', '.join(sorted(saved))})"
            )
        for name in ("observation_space", "action_space"):
            if name in custom_objects:
                data[name] = box_to_dict(custom_objects.pop(name))
        saved = {**saved, **custom_objects}
        known = {*agent_class.config_class.model_fields, *agent_class.run_settings}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise SaveFileError(
                f"{path} was saved by qipo_agents {data.get('qipo_agents_version')} with hyperparameters this "
                f"version ({__version__}) does not know: {', '.join(unknown)}; load it with the "
                "qipo_agents version that wrote it, or a newer one"
            )
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(
                f"{agent_class.__name__}.load() got unknown hyperparameters {', '.join(unknown)}; "
                f"see help({agent_class.__name__}) for the ones a saved agent accepts"
            )
        try:
            agent = agent_class(
                "MlpPolicy",
                None,
                device=device,
                _init_setup_model=False,
                **{**saved, **kwargs},
            )
            agent.observation_space = box_from_dict(data["observation_space"])
            agent.action_space = box_from_dict(data["action_space"])
            agent.dataset_metadata = data.get("dataset_metadata", {})
            agent.num_timesteps = int(data.get("num_timesteps", 0))
            agent._setup_model()
            agent._load_state(data, tensors)
            training_tensors = dict(tensors.get("training_state", {}))
            generator_state = training_tensors.pop("generator", None)
            agent._load_training_state(data.get("training_state", {}), training_tensors)
            if generator_state is not None:
                agent._restore_generator(generator_state.cpu(), path)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise SaveFileError(f"{path} is corrupt or incomplete: {exc}") from exc
        if dataset is not None:
            agent.set_dataset(dataset)
        if env is not None:
            agent.set_env(env)
        return agent

    def get_parameters(self) -> dict[str, dict]:
        """State dicts by name (``"policy"`` and each optimiser), as in SB3."""
        return self._state()[1]

    def set_parameters(
        self,
        load_path_or_dict: str | os.PathLike | dict,
        exact_match: bool = True,
        device: str | torch.device = "auto",
    ) -> None:
        """Load parameters from a save file or from :meth:`get_parameters`'s output (SB3's signature).

        ``device`` is where a file's tensors are read to before they are copied into the agent's
        networks (``"auto"``: the agent's device).
        """
        if isinstance(load_path_or_dict, dict):
            params = load_path_or_dict
        else:
            read_to = self.device if device == "auto" else get_device(device)
            _, params = read_save_file(load_path_or_dict, device=read_to)
        current = self.get_parameters()
        missing = set(current) - set(params)
        if exact_match and missing:
            raise ValueError(f"parameters for {sorted(missing)} are missing")
        self._load_parameters({k: v for k, v in params.items() if k in current})

    @abstractmethod
    def _load_parameters(self, params: dict[str, dict]) -> None:
        """Load state dicts named as in :meth:`get_parameters`."""


def _all_subclasses(cls) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _all_subclasses(sub)
    return found


def _class_names(cls) -> set[str]:
    return {c.__name__ for c in _all_subclasses(cls)}


def system_info() -> dict[str, str]:
    """Versions recorded in every save file, as SB3 records them."""
    import gymnasium

    from qipo_agents import __version__

    return {
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "qipo_agents": __version__,
        "PyTorch": torch.__version__,
        "GPU Enabled": str(torch.cuda.is_available()),
        "Numpy": np.__version__,
        "Gymnasium": gymnasium.__version__,
    }
