"""Atomic file writes: a temporary file in the same folder, then ``os.replace``, so a reader (or a
run interrupted mid-write) sees the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` when the block ends
    without an error and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as file:
            yield file
        os.chmod(tmp, _mode_of_a_new_file(path))  # mkstemp creates 0600 whatever the umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_of_a_new_file(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would give: those of the file it replaces, else
    ``0o666`` less the process's umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as file:
        file.write(text)
    return Path(path)


def check_writable(path: str | os.PathLike, error: Callable[[str], Exception] = OSError) -> Path:
    """Create ``path``'s folder and check that a file can be written there, before the work whose
    output it will hold (an export, an evaluation); raises ``error(message)`` saying what is wrong."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as cause:
        raise error(f"cannot create the folder of {path}: {cause.strerror or cause}") from cause
    if not os.access(path.parent, os.W_OK):
        raise error(f"cannot write {path}: its folder is not writable")
    return path
