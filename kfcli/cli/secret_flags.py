"""Deprecated flags that take a secret on the command line (`--token`, `--aes-key`).

A flag's value is visible to every user of the machine (`ps`, /proc/PID/cmdline) and stays
in shell history, which is why `kfcli config set` refuses secrets as arguments. The flags
below are kept so that existing scripts keep working, hidden from help, and warn on stderr.
Secrets come from the profile (`kfcli config set token`, prompted or on stdin), the
environment (KFCLI_TOKEN, KFCLI_AES_KEY) or, where a command says so, a prompt.
"""

from __future__ import annotations

from collections.abc import Mapping

from kfcli.cli.context import state


def warn_secret_flags(flags: Mapping[str, str | None], *, instead: str) -> None:
    """Warn once per command for each of `flags` (name -> value) that was given."""
    given = [name for name, value in flags.items() if value is not None]
    if not given:
        return
    names = " and ".join(given)
    state().out.warning(
        f"{names} {'is' if len(given) == 1 else 'are'} deprecated: a secret on the command "
        "line is visible to other users (ps) and kept in shell history; use " + instead)
