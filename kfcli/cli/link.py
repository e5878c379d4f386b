"""`kfcli link`: contact links (客服链接) that open a chat with an account."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core import limits

app = new_app("Create contact links for KF accounts.")


@app.command("create", epilog="""Examples:

  kfcli link create wkAbC123

  kfcli link create wkAbC123 --scene spring_sale --scene-param "order=42"

Prints the URL. WeCom returns --scene-param verbatim in the enter_session event.""")
@with_output
def create(
    open_kfid: Annotated[str, typer.Argument(help="The account's open_kfid.")],
    scene: Annotated[str | None, typer.Option(
        "--scene", help="Scene value: up to 32 bytes of [0-9a-zA-Z_-].", show_default=False)
    ] = None,
    scene_param: Annotated[str | None, typer.Option(
        "--scene-param", help="Extra value appended to the URL (up to 128 bytes before "
        "URL-encoding); needs --scene.", show_default=False)] = None,
) -> None:
    """Create a contact URL for an account (add_contact_way); embed it in a page or a QR code."""
    limits.check_open_kfid(open_kfid)
    if scene is not None:
        limits.check_scene(scene)
    if scene_param is not None:
        limits.check_scene_param(scene_param, scene)
    url = state().client().add_contact_way(open_kfid, scene or None)
    if scene_param is not None:
        # Appended by the client, per kf-api.md §2.2; the other URL parameters must stay as is.
        url += ("&" if "?" in url else "?") + "scene_param=" + quote(scene_param, safe="")
    doc = {"open_kfid": open_kfid, "scene": scene or "", "scene_param": scene_param or "",
           "url": url}
    state().out.value(doc, "url")
