"""`kfcli auth`: where the credentials come from, and the cached access token."""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.cli.text import plural
from kfcli.core.config import FIELDS, shown
from kfcli.core.redact import mask

app = new_app("Inspect credentials and the access-token cache.")


@app.command(
    "status", epilog="Examples:\n\n  kfcli auth status\n\n  kfcli -p prod auth status -o json"
)
@with_output
def status() -> None:
    """Show each setting, where it comes from (flag, env, profile, default), and the token cache.

    A profile named with -p wins over KFCLI_* variables; those it overrides are listed as
    ignored. Makes no network request. Secrets are masked, and so is the password of a store URL.
    """
    from kfcli.core.tokens import TokenCache

    st = state()
    settings = st.settings()
    rows = []
    for key in FIELDS:
        setting = settings.values[key]
        value = shown(key, setting.value)
        rows.append({"setting": key, "value": value, "source": setting.source})
    token = {"cached": False, "expires_in": None}
    if settings.corp_id and settings.secret:
        cached = TokenCache(settings.corp_id, settings.secret, _no_fetch).read()
        if cached is not None:
            token = {"cached": cached.remaining > 0, "expires_in": cached.remaining}
    out = st.out
    if out.machine:
        out.obj({
            "profile": settings.profile,
            "profile_source": settings.profile_source,
            "config_file": str(settings.config_path),
            "settings": {r["setting"]: {"value": r["value"], "source": r["source"]}
                         for r in rows},
            "token": token,
            "ignored_env": settings.ignored_env,
        })
        return
    rows.insert(0, {"setting": "profile", "value": settings.profile,
                    "source": settings.profile_source})
    left = token["expires_in"]
    rows.append({"setting": "access_token",
                 "value": f"cached, expires in {left} s" if token["cached"] else "not cached",
                 "source": "cache"})
    out.rows(rows, ["setting", "value", "source"])
    if settings.ignored_env:
        why = "--sandbox" if st.sandbox else f"-p {settings.profile}"
        out.info(f"ignored: {', '.join(settings.ignored_env)} ({why} on the command line wins "
                 "over the environment)")


def _no_fetch() -> tuple[str, int]:  # pragma: no cover - status never fetches
    raise AssertionError("auth status must not fetch a token")


@app.command("token", epilog="""Examples:

  kfcli auth token

  kfcli auth token --refresh

  TOKEN=$(kfcli auth token --raw)

--raw prints the bare token, and only it, for another program (as `gh auth token` does).
Anyone who sees it can act as your app until it expires (2 hours): keep it out of logs, shell
history and shared terminals. Prefer `kfcli api`, which never shows it.""")
@with_output
def token(
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch a new token even if the "
                                          "cached one is still valid.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Print the bare access token (unmasked: "
                                      "see the warning below).")] = False,
) -> None:
    """Get an access token (from the cache, or gettoken) and show it masked with its expiry."""
    client = state().client()
    value = client.access_token(refresh=refresh)
    cached = client.tokens.read()
    out = state().out
    if raw and not out.machine:
        out.binary(f"{value}\n".encode())
        return
    out.obj({
        "access_token": value if raw else mask(value),
        "expires_in": cached.remaining if cached else None,
        "source": client.tokens.last_source,
    })


@app.command("logout", epilog="Examples:\n\n  kfcli auth logout\n\n  kfcli auth logout --all")
@with_output
def logout(
    all_: Annotated[bool, typer.Option("--all", help="Drop every cached token, of every "
                                       "profile.")] = False,
) -> None:
    """Drop the cached access token (the profile itself is kept)."""
    from kfcli.core.tokens import TokenCache, drop_all

    out = state().out
    if all_:
        count = drop_all()
        out.done({"dropped": count}, f"dropped {plural(count, 'cached token')}")
        return
    settings = state().settings()
    settings.require("corp_id", "secret")
    dropped = TokenCache(settings.corp_id, settings.secret, _no_fetch).drop()
    out.done({"dropped": int(dropped)},
             "dropped the cached token" if dropped else "no cached token to drop")
