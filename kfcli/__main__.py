"""Entry point of the `kfcli` command and of `python -m kfcli`.

`kfcli --version` and TAB completion are answered here, before Typer is imported: start-up
time is paid on every TAB press and every script line, and neither needs Typer. Completion
requests (`_KFCLI_COMPLETE=bash|zsh|fish`, set by the scripts in completions/) are answered by
`kfcli._complete` from a command tree generated at build time.
"""

from __future__ import annotations

import errno
import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    shell = os.environ.get("_KFCLI_COMPLETE")
    if shell in ("bash", "zsh", "fish"):
        from kfcli._complete import answer

        sys.exit(answer(shell, args))
    if args in (["--version"], ["-V"]):
        from kfcli._about import version_line

        try:
            sys.stdout.write(version_line() + "\n")
            sys.stdout.flush()
        except OSError as exc:  # `| head -0` or `> /dev/full`: as the full CLI reports it
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            if exc.errno == errno.EPIPE:
                sys.exit(0)
            sys.stderr.write(f"error: cannot write the output: {exc.strerror}\n")
            sys.exit(3)
        sys.exit(0)
    import gc

    # Start-up creates tens of thousands of objects that live as long as the process does
    # (modules, classes, functions): no collection can free any of them, yet several run while
    # they are imported, and at exit the interpreter's last collections walk and free them all
    # (together about 25 ms of a 128 ms `kfcli account list` on the 2-core machine). So no
    # collection runs while the CLI is imported, what it imported is frozen (left out of
    # every later collection), and at exit, after a last collection of what the command left
    # behind (its garbage is finalized as before), so is the rest. Only the process's own
    # entry point does this: `run()` in a test's or a library caller's process leaves the
    # collector alone.
    gc.disable()
    try:
        from kfcli.cli.app import run
    except KeyboardInterrupt:  # Ctrl-C while starting: reported as everywhere else
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    finally:
        gc.freeze()
        gc.enable()
    import signal

    signal.signal(signal.SIGINT, interrupt)
    code = run(args).code
    gc.collect()
    gc.freeze()
    sys.exit(code)


def interrupt(signum: int, frame: object) -> None:
    """Ctrl-C (SIGINT): KeyboardInterrupt, as Python's own handler raises it. Python swallows
    an exception raised inside a finalizer ("Exception ignored in: ... __del__"), so a Ctrl-C
    landing while one runs (a released file lock being freed, many times a second in a
    follower) would be lost and `msg sync --follow` would run on: there it is sent again a
    moment later, to land outside."""
    current = frame
    while current is not None:
        if getattr(getattr(current, "f_code", None), "co_name", "") == "__del__":
            import os
            import threading

            timer = threading.Timer(0.02, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        current = getattr(current, "f_back", None)
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
