"""Evaluation environments of zoo tasks, and rendering an episode to a GIF / MP4."""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from qipo_agents.errors import ConfigError

VIDEO_SIZE = 320  # rendered frame width and height (pixels) when the env accepts a size
# Import name -> what to pip install, for env packages that are optional.
_OPTIONAL_PACKAGES = {"gymnasium_robotics": 'gymnasium-robotics (pip install "qipo_agents[antmaze]")'}


def use_offscreen_rendering() -> None:
    """Default MuJoCo to EGL (headless GPU/CPU rendering) unless the user chose a backend.

    MuJoCo reads ``MUJOCO_GL`` when it is first imported, so this must run before any MuJoCo env
    is created in the process.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")


def import_env_package(name: str | None) -> None:
    """Import the module that registers the task's environments (e.g. ``gymnasium_robotics``)."""
    if not name:
        return
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        what = _OPTIONAL_PACKAGES.get(name, name)
        raise ConfigError(
            f"this task's environment needs the package {what}, which is not installed ({error})"
        ) from error
    if hasattr(gym, "register_envs"):
        gym.register_envs(module)


def make_env(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    env_package: str | None = None,
    dataset_source: str | None = None,
    render: bool = False,
) -> gym.Env:
    """The evaluation env: ``gym.make(env_id, **env_kwargs)``, or the Minari dataset's own eval env.

    Dict observations are flattened (``FlattenObservation``) in the order the data layer flattens
    them, so agents trained on flattened Minari observations act in it directly.

    Args:
        dataset_source: a Minari id or dataset folder whose ``eval_env_spec`` to use instead of ``env_id``.
        render: create the env with ``render_mode="rgb_array"``.
    """
    import_env_package(env_package)
    kwargs = dict(env_kwargs or {})
    if render:
        kwargs["render_mode"] = "rgb_array"
    try:
        if dataset_source is not None:
            env = _env_from_dataset(dataset_source, kwargs)
        elif render:
            try:  # MuJoCo envs take a frame size; smaller frames keep videos small
                env = gym.make(env_id, **{"width": VIDEO_SIZE, "height": VIDEO_SIZE, **kwargs})
            except TypeError:
                env = gym.make(env_id, **kwargs)
        else:
            env = gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        hint = f"; install the package that registers it (env_package: {env_package})" if env_package else ""
        raise ConfigError(f"cannot create the evaluation environment {env_id!r}: {error}{hint}") from error
    if isinstance(env.observation_space, (gym.spaces.Dict, gym.spaces.Tuple)):
        env = gym.wrappers.FlattenObservation(env)
    return env


def _env_from_dataset(source: str, kwargs: dict[str, Any]) -> gym.Env:
    """Minari's ``recover_environment(eval_env=True)``: the dataset's evaluation env (its collection
    env when it names none), after Minari has checked the packages the dataset requires."""
    from qipo_agents.data.minari_loader import minari_data_dir, open_minari_dataset

    folder = minari_data_dir(Path(source))
    if folder is not None:
        import minari

        dataset = minari.MinariDataset(folder)
    else:
        dataset = open_minari_dataset(source, download=False)
    try:
        return dataset.recover_environment(eval_env=True, **kwargs)
    except ValueError as error:  # Minari: "Environment cannot be recovered when env_spec is None"
        raise ConfigError(
            f"dataset {source!r} records no environment ({error}); set the task's env and env_from_dataset: false"
        ) from error


def check_video_path(path: str | os.PathLike) -> Path:
    """``path`` if it names a .gif or .mp4 file (checked before any episode is run)."""
    path = Path(path)
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"--video {path}: write a .gif or an .mp4 file")
    return path


def write_video(frames: list[np.ndarray], path: str | os.PathLike, env_fps: float | None, max_fps: int = 30) -> Path:
    """Write ``frames`` (H, W, 3 uint8) as a GIF or MP4 (by ``path``'s suffix), keeping at most ``max_fps``."""
    import imageio.v3 as iio

    path = check_video_path(path)
    suffix = path.suffix.lower()
    if not frames:
        raise ConfigError("the episode produced no frames to write")
    env_fps = float(env_fps or max_fps)
    stride = max(1, math.ceil(env_fps / max_fps))
    frames = [np.asarray(f, dtype=np.uint8) for f in frames[::stride]]
    fps = env_fps / stride
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)  # pillow: duration in ms
    else:
        try:
            iio.imwrite(path, np.stack(frames), fps=fps)
        except (ImportError, ValueError, RuntimeError, OSError) as error:
            raise ConfigError(
                f"writing {path} needs the ffmpeg plugin of imageio (pip install imageio-ffmpeg), or "
                f"write a .gif instead ({error})"
            ) from error
    return path
