"""Private, atomic file writes: temp file in the same directory, fsync, `os.replace`.

Files that may hold secrets are created 0600 inside 0700 directories, so no other user can
read them even for the instant between creation and rename.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def ensure_private_dir(path: Path) -> Path:
    """Create `path` 0700, and any missing parent 0700 too (mkdir's `mode` alone applies only
    to the last one, and the umask would decide for the others)."""
    old = os.umask(0o077)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    finally:
        os.umask(old)
    with contextlib.suppress(OSError):  # a directory we do not own: leave it to its owner
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    return path


#: Flags for appending to a private journal: never through a symlink planted in its place.
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)


def write_private(path: Path, data: bytes | str) -> None:
    """Atomically replace `path` with `data`, mode 0600, in a private directory."""
    ensure_private_dir(path.parent)
    write_atomic(path, data, mode=0o600)


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Atomically replace `path` with `data` (a reader never sees half a file). A `path` that
    is a device or a FIFO is written into, not replaced."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        # A device or a FIFO (`-O /dev/null`, `-O /dev/stdout`): write into it. Renaming a
        # file over it would replace /dev/null itself for everyone.
        with open(path, "wb") as fh:
            fh.write(data)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
