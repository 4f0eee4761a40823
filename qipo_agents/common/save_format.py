"""The save file: a zip with JSON metadata and one ``.pth`` per group of state dicts.

Layout (format version 4)::

    data.json        {"format": "qipo_agents", "format_version": 4, "class": ..., "config": the
                      hyperparameters, verbose / seed / tensorboard_log, spaces, scalers, counters,
                      training state (schedule, position, phase), system info}
    policy.pth       state dict of the policy (every network)
    optimizers.pth   {name: optimiser state dict}
    _version.txt     the qipo_agents version that wrote the file

A file of another format version is refused with an error that names its format and the
qipo_agents version that wrote it; nothing migrates older formats (format 3 held the
hyperparameters as constructor arguments, before they had a typed config).

Files are written atomically (a temporary file in the same folder, then ``os.replace``), so an
interrupted save never leaves a truncated zip behind. Tensors are loaded with
``weights_only=True`` and ``map_location`` so a CUDA-saved agent loads on a CPU machine.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from qipo_agents.common.atomic import atomic_write
from qipo_agents.errors import SaveFileError

FORMAT_NAME = "qipo_agents"
FORMAT_VERSION = 4


def zip_path(path: str | os.PathLike) -> Path:
    """``path`` with a ``.zip`` suffix added when it has none (as SB3 does)."""
    path = Path(path)
    return path if path.suffix == ".zip" else path.with_name(path.name + ".zip")


def write_save_file(path: str | os.PathLike | IO[bytes], data: dict[str, Any], tensors: dict[str, Any]) -> Any:
    """Write ``data`` as ``data.json`` and each ``tensors[name]`` as ``name.pth`` to ``path`` (atomically,
    ``.zip`` added when missing; returns the path), or into an open binary file (``io.BytesIO``, a
    file opened ``"wb"``; as Stable-Baselines3 accepts; returns it)."""
    if _is_file_object(path):
        _write_archive(path, data, tensors)
        return path
    path = zip_path(path)
    with atomic_write(path, binary=True) as raw:
        _write_archive(raw, data, tensors)
    return path


def _write_archive(file: IO[bytes], data: dict[str, Any], tensors: dict[str, Any]) -> None:
    from qipo_agents import __version__

    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **data}
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(payload, indent=2, default=_json_default))
        for name, obj in tensors.items():
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            archive.writestr(f"{name}.pth", buffer.getvalue())
        archive.writestr("_version.txt", __version__)


def _is_file_object(path: Any) -> bool:
    return hasattr(path, "read") or hasattr(path, "write")


def read_save_data(path: str | os.PathLike | IO[bytes]) -> dict[str, Any]:
    """Read only a save file's ``data.json`` (hyperparameters, spaces, counters), no tensors.

    Raises the errors of :func:`read_save_file`.
    """
    path, archive = _open_save_file(path)
    with archive:
        return _read_data(path, archive)


def read_save_file(
    path: str | os.PathLike | IO[bytes], device: torch.device | str = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a save file, from its path or an open binary file; returns ``(data, tensors)``.

    Raises:
        FileNotFoundError: no file at ``path`` (nor at ``path + ".zip"``).
        SaveFileError: not a zip, not a qipo_agents save, a newer format, or a damaged member.
    """
    path, archive = _open_save_file(path)
    with archive:
        data = _read_data(path, archive)
        tensors = {}
        for name in sorted(archive.namelist()):
            if not name.endswith(".pth"):
                continue
            try:
                tensors[name[:-4]] = torch.load(io.BytesIO(archive.read(name)), map_location=device, weights_only=True)
            except Exception as exc:  # a damaged member raises zlib, pickle or torch errors
                raise SaveFileError(f"{path} is corrupt: its member {name} cannot be loaded ({exc})") from exc
    return data, tensors


def _open_save_file(path: str | os.PathLike | IO[bytes]) -> tuple[Any, zipfile.ZipFile]:
    """The save file at ``path`` (or ``path + ".zip"``), or an open binary file, opened as a zip
    archive; with what error messages call it."""
    if _is_file_object(path):
        name = getattr(path, "name", None) or f"the {type(path).__name__} passed"
        try:
            return name, zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise SaveFileError(f"{name} is not a qipo_agents save file (not a readable zip archive: {exc})") from exc
    path = Path(path)
    if not path.exists():
        if not zip_path(path).exists():
            tried = str(path) if zip_path(path) == path else f"{path} (nor {zip_path(path)})"
            raise FileNotFoundError(f"no saved agent at {tried}")
        path = zip_path(path)
    try:
        return path, zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SaveFileError(f"{path} is not a qipo_agents save file (not a readable zip archive: {exc})") from exc


def _read_data(path: Any, archive: zipfile.ZipFile) -> dict[str, Any]:
    """The archive's ``data.json``, checked to be a qipo_agents save of a format this version reads."""
    names = set(archive.namelist())
    if "data.json" not in names:
        hint = " It looks like a Stable-Baselines3 model." if "policy.pth" in names else ""
        raise SaveFileError(f"{path} is not a qipo_agents save file (it has no data.json).{hint}")
    try:
        data = json.loads(archive.read("data.json"))
    except (ValueError, zipfile.BadZipFile) as exc:
        raise SaveFileError(f"{path} is corrupt: its data.json cannot be read ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise SaveFileError(
            f"{path} is not a qipo_agents save file (its data.json has format "
            f"{data.get('format') if isinstance(data, dict) else None!r}); "
            "Stable-Baselines3 models load with their own classes"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SaveFileError(
            f"{path} was written in save format {version!r} by qipo_agents {data.get('qipo_agents_version')}, "
            f"but this qipo_agents reads format {FORMAT_VERSION}; upgrade qipo_agents to load it"
        )
    if version < FORMAT_VERSION:
        raise SaveFileError(
            f"{path} was written in save format {version} by qipo_agents {data.get('qipo_agents_version')}; "
            f"this qipo_agents reads format {FORMAT_VERSION} only. Load it with the version that wrote it, "
            "or train the agent again"
        )
    return data


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in data.json")
