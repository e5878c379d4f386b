"""`kfcli media`: temporary media (valid 3 days) for avatars and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfcli.cli.context import state, with_output
from kfcli.core import limits
from kfcli.core.models import MediaUpload

app = typer.Typer(help="Upload temporary media.", no_args_is_help=True)


@app.command("upload", epilog="""Examples:

  kfcli media upload logo.png

  kfcli media upload manual.pdf --type file -o json

Prints the media_id (TSV). Limits: image 10 MB (JPG/PNG), voice 2 MB (AMR), video 10 MB (MP4),
file 20 MB; every file more than 5 bytes.""")
@with_output
def upload(
    file: Annotated[Path, typer.Argument(help="The file to upload.", dir_okay=False)],
    type_: Annotated[str | None, typer.Option(
        "--type", help="image, voice, video or file (default: from the file's content).",
        show_default=False)] = None,
) -> None:
    """Upload a file as temporary media and print its media_id."""
    state().out.obj(upload_file(file, type_).to_dict(), ["media_id"])


def upload_file(path: Path, media_type: str | None) -> MediaUpload:
    """Check a file against WeCom's limits (warning on large images), then upload it."""
    media_type, size = limits.check_media_file(path, media_type)
    if media_type == "image" and size > limits.IMAGE_WARN_BYTES:
        state().out.warning(f"{path}: {size} bytes; older WeCom pages limit images to 2 MB")
    return state().client().media_upload(path, media_type)
