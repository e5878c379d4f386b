"""The writer process of `msg sync` and `msg history --consumer`: owns stdout and a journal.

Why a separate process: exactly-once output needs "these lines reached stdout" and "the store
knows they did" to happen together, and no process can promise that about itself under
`kill -9`. Worse, writing to an empty pipe wakes its reader, which the scheduler often runs at
once, so a reader that reacts to output by killing kfcli lands precisely between the two
writes. Here the main process (network, store, formatting) hands framed commands to this small
writer over a pipe. If the main process is killed, the writer still finishes every command it
was handed (a command cut short by the kill is dropped whole, before anything of it is
written), appends its record to the journal, and exits at end of input. The journal (a file
the main process opened, locked, and passed down, so the lock lives as long as either
process) tells the next run what was written; the next run marks that in the store.

Commands, each `kind (1 byte) | length (4 bytes, big-endian) | payload`:

* `D`: `len(data) (4 bytes) | data | record`: write `data` to stdout (waiting with poll() for
  room, so a full pipe never leaves half a chunk), then append `record` to the journal;
* `F`: fence: answer one byte on the acknowledgement pipe once everything before it is written
  and journaled;
* `T`: empty the journal (the main process has recorded its contents in the store).

Run as `python -S -m kfcli.core.syncwriter JOURNAL_FD ACK_FD` with commands on stdin.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import IO, TextIO

HEADER = 5
#: Output handed over per command by the main process.
COMMAND_BYTES = 256 * 1024


def _read_exact(fd: int, size: int) -> bytes:
    parts, need = [], size
    while need:
        chunk = os.read(fd, need)
        if not chunk:
            break
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


def frame(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def data_command(data: bytes, record: bytes) -> bytes:
    return frame(b"D", len(data).to_bytes(4, "big") + data + record)


def main(argv: list[str]) -> int:
    journal, ack = int(argv[0]), int(argv[1])
    # Ctrl-C reaches the whole process group: the main process decides when to stop, and
    # this process drains what it was given first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.fileno()
    poll = select.poll()
    poll.register(out, select.POLLOUT)
    while True:
        header = _read_exact(0, HEADER)
        if len(header) < HEADER:
            return 0  # end of input: finished, or the main process is gone
        kind, size = header[:1], int.from_bytes(header[1:], "big")
        payload = _read_exact(0, size)
        if len(payload) < size:
            return 0  # cut short by a kill: nothing of it was written, so nothing is recorded
        if kind == b"D":
            length = int.from_bytes(payload[:4], "big")
            data, record = payload[4:4 + length], payload[4 + length:]
            view = memoryview(data)
            try:
                while view:
                    poll.poll()
                    view = view[os.write(out, view):]
            except BrokenPipeError:
                return 1  # the reader went away; what it did not get is not recorded
            except OSError as exc:  # `> /dev/full`, EIO…: the main process reports it
                with contextlib.suppress(OSError):
                    os.write(ack, b"E" + str(exc.errno or 0).encode())
                return 3
            if record:
                os.write(journal, record)
        elif kind == b"F":
            with contextlib.suppress(BrokenPipeError):
                os.write(ack, b"F")
        elif kind == b"T":
            os.ftruncate(journal, 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def _copy(source: IO[bytes], target: TextIO) -> None:
    """What the writer writes, into a stream in memory."""
    buffer = target.buffer
    for chunk in iter(lambda: source.read(65536), b""):
        buffer.write(chunk)
    buffer.flush()
    source.close()


class WriterProcess:
    """The main process's end: starts the writer and sends it commands.

    `journal_fd` is an open, locked journal file (O_APPEND); the writer inherits it. The
    writer writes to `stdout` (default: this process's): its file descriptor, or — a stream
    without one, in memory — a pipe that a thread here copies into it.
    """

    def __init__(self, journal_fd: int, stdout: TextIO | None = None) -> None:
        import subprocess

        import kfcli

        stdout = sys.stdout if stdout is None else stdout
        stdout.flush()
        try:
            target: int | None = stdout.fileno()
        except (AttributeError, OSError, ValueError):
            target = None
        # -S: no site-packages scan (this process needs only the standard library and this
        # package), which roughly halves its start-up; the package's own directory goes first.
        home = str(Path(kfcli.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (home, os.environ.get("PYTHONPATH", "")) if p)}
        ack_read, ack_write = os.pipe()
        self.ack = ack_read
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "kfcli.core.syncwriter", str(journal_fd),
                 str(ack_write)],
                stdin=subprocess.PIPE, bufsize=0, env=env, pass_fds=(journal_fd, ack_write),
                stdout=subprocess.PIPE if target is None else target,
            )
        finally:
            os.close(ack_write)
        self._copier: threading.Thread | None = None
        if target is None:
            self._copier = threading.Thread(target=_copy, args=(self.proc.stdout, stdout),
                                            name="kfcli-syncwriter-out", daemon=True)
            self._copier.start()
        assert self.proc.stdin is not None
        self.fd = self.proc.stdin.fileno()
        try:  # a larger pipe lets the main process run ahead while the writer starts (Linux)
            import fcntl

            fcntl.fcntl(self.fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1024 * 1024)
        except OSError:
            pass

    def _send(self, command: bytes) -> None:
        view = memoryview(command)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        """The writer has stopped: stdout's reader went away (BrokenPipeError), or stdout
        could not be written (EnvironmentProblem, exit 3)."""
        if self.proc.wait() == 3 and os.read(self.ack, 1) == b"E":
            self._failed()
        raise BrokenPipeError("stdout was closed")

    def write(self, data: bytes, record: bytes) -> None:
        self._send(data_command(data, record))

    def fence(self) -> None:
        """Wait until everything sent so far is written and journaled. BrokenPipeError when
        the writer stopped (stdout's reader went away)."""
        self._send(frame(b"F", b""))
        answer = os.read(self.ack, 1)
        if answer == b"E":
            self._failed()
        if answer != b"F":
            raise BrokenPipeError("stdout was closed")

    def _failed(self) -> None:
        """The writer could not write stdout (not a closed pipe): a clear error (exit 3)."""
        from kfcli.core.errors import EnvironmentProblem

        self.proc.wait()
        code = int(os.read(self.ack, 16) or b"0")
        reason = os.strerror(code) if code else "write failed"
        raise EnvironmentProblem(f"cannot write the output: {reason}",
                                 hint="check the file or device stdout is redirected to; "
                                 "what was not written stays to be written by the next run")

    def truncate(self) -> None:
        self._send(frame(b"T", b""))

    def close(self) -> None:
        """Let the writer finish everything sent; BrokenPipeError if stdout's reader left."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        code = self.proc.wait()
        if self._copier is not None:
            self._copier.join()
        try:
            if code != 0:
                self._gone()
        finally:
            os.close(self.ack)
