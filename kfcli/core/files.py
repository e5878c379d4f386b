"""Private, atomic file writes: temp file in the same directory, fsync, `os.replace`.

Every file kfcli writes is created 0600 (secrets, customers' words, media), inside 0700
directories, so no other user can read it even for the instant between creation and rename.
A private directory that already exists is trusted only when `lstat` shows it is one: a
directory (not a symlink), owned by this user, writable by nobody else
(`ensure_private_dir`); anything else is exit 3 naming the path, since someone else could
then read or replace what kfcli puts there.

`-O FILE` targets are checked by `check_output`: a directory, or an existing file, FIFO or
device without --force, is refused before anything is sent or written.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def ensure_private_dir(path: Path, *, under: Path | None = None) -> Path:
    """Create `path` 0700 (and any missing parent 0700 too: mkdir's `mode` alone applies
    only to the last one, and the umask would decide for the others), then check it with
    lstat: a symlink, a directory of another user or one that group or others can write
    is refused (`UnsafeDirectory`, exit 3, naming it). Group/other read bits on our own
    directory are simply taken away.

    `under`: a directory `path` is inside whose components below it are checked too (the
    store's `NAME.media` when `path` is `NAME.media/ab`): a planted symlink there would
    carry everything beneath elsewhere. Without it, only `path` itself is checked.
    """
    if under is None:
        chain = [path]
    else:
        chain = [p for p in reversed(path.parents) if under in p.parents] + [path]
    old = os.umask(0o077)
    try:
        chain[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in chain:  # each checked before anything is made inside it
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
            check_private_dir(directory)
    finally:
        os.umask(old)
    return path


def check_private_dir(path: Path) -> None:
    """`UnsafeDirectory` (exit 3) unless lstat shows `path` is a directory of this user that
    nobody else can write; group/other read bits are taken away."""
    from kfcli.core.errors import UnsafeDirectory

    hint = ("kfcli keeps private files there (messages, media, locks, tokens): use a "
            "directory of your own, mode 0700, or remove this one so kfcli creates it")
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeDirectory(f"cannot use the directory {path} ({exc.strerror})",
                          hint=hint) from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeDirectory(f"{path} is a symlink, not a private directory", hint=hint)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory", hint=hint)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise UnsafeDirectory(f"the directory {path} belongs to another user (uid {st.st_uid})",
                          hint=hint)
    if st.st_mode & 0o022:
        raise UnsafeDirectory(f"the directory {path} is writable by group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o})", hint=hint)
    if st.st_mode & 0o055:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)


def check_output(path: Path, *, force: bool, option: str = "-O") -> bool:
    """Whether `path`, an output file named on the command line, exists (as a regular file,
    and --force was given); UsageError when it cannot be one: a directory, a missing
    directory, or, without --force, an existing file, FIFO or device. (A FIFO or device
    someone else made there would receive the data; `-O -` is the way to stdout.)"""
    from kfcli.core.errors import UsageError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"{option}: cannot write {path} ({exc.strerror})") from None
    if st is None:
        if not path.parent.is_dir():
            raise UsageError(f"{option}: directory {path.parent} does not exist")
        return False
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{option}: {path} is a directory")
    if stat.S_ISREG(st.st_mode):
        if not force:
            raise UsageError(f"{path} exists; pass --force to overwrite it")
        return True
    if not force:
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else \
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        raise UsageError(f"{option}: {path} is {kind}, not a file; pass --force to write "
                         "into it", hint=f"{option} - writes to stdout, wherever it goes")
    return True


def names_directory(target: str) -> bool:
    """Whether `-O target` names a directory to write into (`-O DIR`, `-O DIR/`), where the
    file keeps its original name (as curl -OJ and `aws s3 cp` do)."""
    return target not in ("", "-") and (target.endswith(("/", os.sep)) or
                                         os.path.isdir(target))


def check_directory(directory: str, *, option: str = "-O") -> None:
    """UsageError unless `directory` is an existing directory (checked before any request)."""
    from kfcli.core.errors import UsageError

    if not os.path.isdir(directory):
        raise UsageError(f"{option}: directory {directory} does not exist")


def in_directory(directory: str, name: str | None, fallback: str, *, force: bool,
                 option: str = "-O") -> Path:
    """The file `-O DIR` writes: DIR/`name` (the name WeCom gave the file), else
    DIR/`fallback`. A name that could land anywhere else or mislead is refused, never
    cleaned up into something else: `..`, a path separator, a leading dot (a hidden file),
    control or bidi characters, more than 255 bytes. The file itself goes through
    `check_output` (never replaced without --force)."""
    from kfcli.core.errors import UsageError

    check_directory(directory, option=option)
    chosen = name or fallback
    problem = unsafe_file_name(chosen)
    if problem:
        shown = repr(chosen) if len(chosen) <= 60 else repr(chosen[:60]) + "…"
        raise UsageError(f"{option} {directory}: the file's name {shown} {problem}; "
                         "nothing was written",
                         hint=f"name the file yourself: {option} {os.path.join(directory, 'FILE')}")
    path = Path(directory) / chosen
    check_output(path, force=force, option=option)
    return path


#: Characters that reorder how a name is shown (a "gpj.exe" that displays as "exe.jpg").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                  "\u2066\u2067\u2068\u2069")


def unsafe_file_name(name: str) -> str | None:
    """Why `name`, from a server, cannot be a file's name in a directory; None if it can."""
    import unicodedata

    if name in (".", ".."):
        return "is not a file's name"
    if any(sep in name for sep in ("/", "\\", os.sep)) or (os.altsep and os.altsep in name):
        return "holds a path separator"
    if name.startswith("."):
        return "starts with a dot (a hidden file)"
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI for c in name):
        return "holds control characters"
    if len(name.encode("utf-8")) > 255:
        return "is longer than 255 bytes"
    return None


def extension_for(content_type: str | None) -> str:
    """A file extension for a content type ('.png'), or '' when none is known."""
    if not content_type:
        return ""
    import mimetypes

    return mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""


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
    import tempfile  # here: a command that writes nothing never pays for it

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
