"""`kfcli media`: temporary media (valid 3 days) for avatars and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core import limits
from kfcli.core.errors import UsageError
from kfcli.core.files import (
    check_directory,
    check_output,
    extension_for,
    in_directory,
    names_directory,
    write_atomic,
)
from kfcli.core.models import MediaUpload

app = new_app("Upload and download temporary media.")


@app.command("upload", epilog="""Examples:

  kfcli media upload logo.png

  kfcli media upload manual.pdf --type file -o json

Prints the media_id (TSV). Limits: image 10 MB (JPG/PNG), voice 2 MB (AMR), video 10 MB
(MP4), file 20 MB; every file more than 5 bytes.""")
@with_output
def upload(
    file: Annotated[Path, typer.Argument(help="The file to upload.", dir_okay=False)],
    type_: Annotated[str | None, typer.Option(
        "--type", help="image, voice, video or file (default: from the file's content).",
        show_default=False)] = None,
) -> None:
    """Upload a file as temporary media and print its media_id."""
    state().out.value(upload_file(file, type_).to_dict(), "media_id")


def upload_file(path: Path, media_type: str | None) -> MediaUpload:
    """Check a file against WeCom's limits (warning on large images), then upload it."""
    media_type, size = limits.check_media_file(path, media_type)
    if media_type == "image" and size > limits.IMAGE_WARN_BYTES:
        state().out.warning(f"{path}: {size} bytes; older WeCom pages limit images to 2 MB")
    out = state().out
    out.status(f"uploading {path.name} ({_size(size)}) as {media_type}…")
    try:
        return state().client().media_upload(path, media_type)
    finally:
        out.status(None)


def _size(size: int) -> str:
    return f"{size / 1048576:.1f} MB" if size >= 1048576 else f"{size / 1024:.0f} KB" \
        if size >= 1024 else f"{size} bytes"


@app.command("get", epilog="""Examples:

  kfcli media get MEDIA_ID -O photo.jpg

  kfcli media get MEDIA_ID > photo.jpg

  kfcli media get MEDIA_ID -O ~/Downloads/    # under its original name

  kfcli media get MEDIA_ID -O photo.jpg -o json

-O DIR writes the file under the name WeCom gives it (receipt.png, 合同.pdf), or the
media_id and an extension from its type when it has none; a name with "..", a path
separator, a leading dot or control characters is refused. Without -O (or with -O -) the
bytes go to stdout, which must not be a terminal. An existing file, FIFO or device is never
written without --force; the file is created readable by you only. With -O, -o json prints
what was written: {"media_id", "path", "bytes", "content_type", "filename"}.""")
@with_output
def get(
    media_id: Annotated[str, typer.Argument(help="The media_id (from an upload or a message).")],
    output_file: Annotated[str | None, typer.Option(
        "-O", "--output-file", metavar="FILE|DIR",
        help="Write to FILE, or into DIR under the file's own name ('-': stdout).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Download temporary media (valid 3 days after upload)."""
    limits.check_media_id(media_id)
    out = state().out
    if output_file == "":
        raise UsageError("-O: give a file or directory name, or - for stdout")
    if output_file == "-":  # as `api -O -` and curl: stdout
        output_file = None
    if output_file is None and out.stdout.isatty():
        raise UsageError("refusing to write binary data to a terminal: use -O FILE or a pipe")
    if output_file is None and state().output_format in ("json", "jsonl"):  # -o, not the env
        raise UsageError(f"-o {state().output_format} describes the file written with -O "
                         "FILE; without -O the media's bytes are the output")
    into = output_file is not None and names_directory(output_file)
    if into:
        check_directory(str(output_file))
    elif output_file is not None:
        check_output(Path(output_file), force=force)
    data, content_type, filename = state().client().media_get(media_id)
    if output_file is None:
        out.binary(data)
        return
    if into:  # the name is known now
        fallback = media_id + extension_for(content_type)
        output_file = str(in_directory(output_file, filename, fallback, force=force))
    try:
        write_atomic(Path(output_file), data, mode=0o600)
    except OSError as exc:
        raise UsageError(f"-O: cannot write {output_file} ({exc.strerror})") from None
    out.done({"media_id": media_id, "path": str(output_file), "bytes": len(data),
              "content_type": content_type, "filename": filename},
             f"wrote {len(data)} bytes ({content_type or 'unknown type'}"
             f"{', ' + filename if filename else ''}) to {output_file}")
