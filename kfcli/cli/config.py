"""`kfcli config`: profiles of credentials in the user config directory."""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import YesOpt, confirm, new_app, read_secret, state, with_output
from kfcli.core.config import (
    DEFAULT_PROFILE,
    FIELDS,
    SECRET_FIELDS,
    ConfigFile,
    check_field,
    check_profile_name,
    shown,
)
from kfcli.core.errors import ConfigError, UsageError

app = new_app("Manage profiles: corp id, secret, callback token and key, base URL, message "
              "store.")

KeyArg = Annotated[str, typer.Argument(help=f"One of: {', '.join(FIELDS)}.", show_default=False)]


def _target_profile(cfg: ConfigFile) -> str:
    return state().profile or state().env.environ.get("KFCLI_PROFILE") or cfg.current


def _shown(key: str, value: str | None) -> str:
    return shown(key, value)


def _has_password(url: str) -> bool:
    from kfcli.core.store import display_url

    return display_url(url) != url


@app.command("set", epilog="""Examples:

  kfcli config set corp_id ww0123456789abcdef

  kfcli config set secret                 # prompted, input hidden

  printf '%s' "$KF_SECRET" | kfcli -p prod config set secret

  kfcli config set base_url http://127.0.0.1:8765

  kfcli config set store postgresql://kfcli@db.internal:5432/kfcli

  kfcli config set store                  # a URL with a password: prompted
""")
@with_output
def set_(
    key: KeyArg,
    value: Annotated[
        str | None,
        typer.Argument(help="The value (not for secret, token, aes_key, nor a store URL with a "
                       "password: those are prompted or read from stdin).", show_default=False),
    ] = None,
) -> None:
    """Set a value in the current profile (created if missing)."""
    if key not in FIELDS:
        raise UsageError(f"unknown setting {key!r}; settings are: {', '.join(FIELDS)}")
    cfg = ConfigFile.load()
    name = check_profile_name(_target_profile(cfg))
    if key in SECRET_FIELDS:
        if value is not None:
            raise UsageError(
                f"{key} is never taken as an argument (it would stay in shell history and "
                f"process lists); run `kfcli config set {key}` and type it, or pipe it on stdin",
            )
        value = read_secret(key)
    elif key == "store" and value is None:
        value = read_secret(key)  # it may carry a password: read like a secret
    elif key == "store" and _has_password(value):
        from kfcli.core.store import display_url

        raise UsageError(
            f"a store URL with a password ({display_url(value)}) is never taken as an argument "
            "(it would stay in shell history and process lists)",
            hint="run `kfcli config set store` and type the URL, or pipe it on stdin; or leave "
            "the password out and use PGPASSWORD or ~/.pgpass",
        )
    elif value is None:
        raise UsageError(f"config set {key}: missing VALUE")
    value = check_field(key, value)
    first = not cfg.exists
    cfg.profiles.setdefault(name, {})[key] = value
    if first:
        cfg.current = name
    cfg.save()
    state().out.done({"profile": name, "key": key, "value": _shown(key, value)},
                     f"set {key} = {_shown(key, value)} in profile {name!r} ({cfg.path})")


@app.command("get", epilog="Example:\n\n  kfcli config get corp_id")
@with_output
def get(key: KeyArg) -> None:
    """Print one value of the current profile (secrets masked)."""
    if key not in FIELDS:
        raise UsageError(f"unknown setting {key!r}; settings are: {', '.join(FIELDS)}")
    cfg = ConfigFile.load()
    name = _target_profile(cfg)
    prof = cfg.profile(name) if (cfg.profiles or name != DEFAULT_PROFILE) else {}
    if key not in prof:
        raise ConfigError(f"{key} is not set in profile {name!r}",
                          hint=f"kfcli config set {key}")
    state().out.value({key: _shown(key, prof[key])}, key)


@app.command("unset", epilog="""Examples:

  kfcli config unset base_url

  kfcli -p prod config unset store

Unsetting a value that is not set does nothing and succeeds (it says so on stderr); a profile
named with -p or KFCLI_PROFILE must exist.""")
@with_output
def unset(key: KeyArg) -> None:
    """Remove one value from the current profile."""
    if key not in FIELDS:
        raise UsageError(f"unknown setting {key!r}; settings are: {', '.join(FIELDS)}")
    cfg = ConfigFile.load()
    name = _target_profile(cfg)
    named = state().profile is not None or bool(state().env.environ.get("KFCLI_PROFILE"))
    prof = cfg.profile(name) if named or name in cfg.profiles else {}
    out = state().out
    if key not in prof:
        out.done({"profile": name, "key": key, "was_set": False},
                 f"{key} was not set in profile {name!r}; nothing to do")
        return
    del prof[key]
    cfg.save()
    out.done({"profile": name, "key": key, "was_set": True},
             f"unset {key} in profile {name!r}")


@app.command("list", epilog=f"""Examples:

  kfcli config list

  kfcli config list -o json

One row per profile: whether it is the one in effect, then each setting ({', '.join(FIELDS)}),
secrets masked (****, plus the last 4 characters of a long one) and empty when not set (the
default applies). -o json: a list of objects with those keys, null when not set.""")
@with_output
def list_() -> None:
    """List profiles and which settings each one has; the one in effect is marked."""
    cfg = ConfigFile.load()
    current = _target_profile(cfg)
    rows = [
        {"profile": name, "current": name == current,
         **{key: _shown(key, prof[key]) if prof.get(key) else None for key in FIELDS}}
        for name, prof in sorted(cfg.profiles.items())
    ]
    state().out.rows(rows, ["profile", "current", *FIELDS],
                     empty=f"no profiles yet ({cfg.path}); start with `kfcli config set corp_id`")


@app.command("show", epilog="Examples:\n\n  kfcli config show\n\n  kfcli config show prod -o json")
@with_output
def show(
    name: Annotated[str | None, typer.Argument(help="Profile (default: the current one).",
                                               show_default=False)] = None,
) -> None:
    """Show every value of a profile (secrets masked)."""
    cfg = ConfigFile.load()
    name = name or _target_profile(cfg)
    prof = cfg.profile(name)
    doc = {"profile": name, "current": name == cfg.current, "path": str(cfg.path)}
    doc.update({k: _shown(k, prof.get(k)) for k in FIELDS})
    state().out.obj(doc)


@app.command("use", epilog="Example:\n\n  kfcli config use prod")
@with_output
def use(name: Annotated[str, typer.Argument(help="Profile to make current.")]) -> None:
    """Make a profile the current one."""
    cfg = ConfigFile.load()
    cfg.profile(name)  # must exist
    cfg.current = name
    cfg.save()
    state().out.info(f"current profile is now {name!r}")


@app.command("remove", epilog="""Example:

  kfcli config remove staging --yes

Removing the current profile makes the profile named default current, whether or not it
exists (when it does not, commands find nothing configured until `kfcli config use NAME`, and
the next `config set` creates it). Either way it says so.""")
@with_output
def remove(name: Annotated[str, typer.Argument(help="Profile to delete.")], yes: YesOpt = False
           ) -> None:
    """Delete a profile and everything stored in it."""
    cfg = ConfigFile.load()
    cfg.profile(name)
    confirm(f"Delete profile {name!r} (its secret cannot be recovered)?", yes=yes)
    del cfg.profiles[name]
    was_current = cfg.current == name
    if was_current:
        # Never switch to an arbitrary profile (the next command could act on production):
        # only to `default`, the profile kfcli uses when none is chosen.
        cfg.current = DEFAULT_PROFILE
    cfg.save()
    now = cfg.current if cfg.current in cfg.profiles else None
    message = f"removed profile {name!r}"
    if was_current and now:
        message += f"; the current profile is now {now!r}"
    elif was_current:
        others = ", ".join(sorted(cfg.profiles))
        message += ("; no profile is current now" +
                    (f": pick one of {others} with `kfcli config use NAME`" if others else ""))
    state().out.done({"removed": name, "current": now}, message)

