"""`kfcli msg media`: a message's media from the archive (`kfcli.core.archive`), also long
after WeCom's copy expired; and `archive_after_pull`, which `msg sync` runs after each pull.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import state, with_output
from kfcli.cli.msg._group import app, corp_of
from kfcli.cli.text import plural
from kfcli.core import limits
from kfcli.core.errors import (
    EnvironmentProblem,
    Interrupted,
    KfError,
    NotArchived,
    UnsafeDirectory,
    UsageError,
)
from kfcli.core.files import check_directory, extension_for, in_directory, names_directory


def archive_after_pull(out, loop, open_kfid: str) -> None:
    """The pull loop's archive step (`kfcli.core.pull.PullLoop.archive`), reported. Never
    fails the pull: what cannot be fetched now is reported on stderr and tried again later
    (or marked failed for good)."""
    from kfcli.core.transcript import size_text

    def progress(result, item) -> None:
        out.status(f"archiving media: {item.msgtype} of message {item.msgid} "
                   f"({result.tried + 1} so far)")

    try:
        result = loop.archive(open_kfid, progress=progress if out.shows_progress else None)
    except UnsafeDirectory:  # a planted or loosened media directory: exit 3, naming it
        raise
    except KfError as exc:  # the store went away: the entries stay due
        out.warning(f"media not archived now ({exc.message}); kfcli tries again on the next "
                    "pull")
        return
    finally:
        out.status(None)
    if result.archived and out.fmt in ("table", "tsv"):
        out.info(f"archived {plural(result.archived, 'media file')} "
                 f"({size_text(result.bytes)})")
    for line in result.errors[:5]:
        out.warning(f"media not archived: {line}")
    if len(result.errors) > 5:
        out.warning(f"… and {len(result.errors) - 5} more; `kfcli store media` counts them")
    if result.retrying:
        out.warning(f"{plural(result.retrying, 'media file')} will be tried again later "
                    "(`kfcli store media --retry` tries now)")


@app.command("media", epilog="""Examples:

  kfcli msg media 6F0Bc4Tr3aa8x -O photo.jpg

  kfcli msg media 6F0Bc4Tr3aa8x -O ~/Downloads/   # under its original name

  kfcli msg media 6F0Bc4Tr3aa8x -O - | display

  kfcli msg media 6F0Bc4Tr3aa8x -O photo.jpg -o json   # says what was written

Writes the image, voice, video or file of a stored message from the archive: kfcli fetches
each media message's bytes when `msg sync` or the receiver stores it, so they stay available
after WeCom's copy expires (3 days after the message was sent). A message whose media is not
archived yet is fetched now, while WeCom still has it. `msg history` shows which media are
archived; `kfcli store media` counts them. The file appears once complete, readable by you
only; an existing file is replaced only with --force. -O DIR writes the file into DIR under
the name the customer's file had (合同.pdf), or the msgid and an extension from its type; a
name with "..", a path separator, a leading dot or control characters is refused.

-o json: {"msgid", "msgtype", "path", "bytes", "content_type", "filename", "sha256"}.

Exit status: 0 written; 2 invalid input, an existing file without --force or an unwritable
path; 3 the store is misconfigured, or the output cannot be written (a full disk); 4 the
message is not in the store, has no media, or its media could not be archived (the reason is
given); fetching a media not archived yet can also fail for a passing reason, with that
error's own status (6 the network or an unreachable PostgreSQL store, 7 rate limited).""")
@with_output
def media(
    msgid: Annotated[str, typer.Argument(help="The message's msgid.")],
    output_file: Annotated[str | None, typer.Option(
        "-O", "--output-file", metavar="FILE|DIR",
        help="Write to FILE, or into DIR under the file's own name ('-': stdout).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing FILE.")] = False,
) -> None:
    """Write a stored message's archived image, voice, video or file."""
    from kfcli.cli.msg.export import _Target
    from kfcli.core.store import open_store

    st = state()
    out = st.out
    output_file, into = _check_media_target(st, msgid, output_file)
    settings = st.settings()
    corp_id = corp_of(settings)
    with open_store(settings=settings, create=False) as store:
        item, chunks = _content(st, store, corp_id, msgid)
        if into:  # under the file's own name, known now
            fallback = msgid + extension_for(item.content_type)
            path = in_directory(str(output_file), item.filename, fallback, force=force)
            output_file = str(path)
        target = _Target(output_file, force=force)
        written = _write_all(target, chunks)
    if target.path is None:
        return
    from kfcli.core.transcript import size_text

    out.done({"msgid": msgid, "msgtype": item.msgtype, "path": str(target.path),
              "bytes": written, "content_type": item.content_type, "filename": item.filename,
              "sha256": item.sha256},
             f"wrote the {item.msgtype} of message {msgid} ({size_text(written)}"
             f"{', ' + item.content_type if item.content_type else ''}"
             f"{', ' + item.filename if item.filename else ''}) to {target.path}")


def _check_media_target(st, msgid: str, output_file):
    """`msg media`'s MSGID and -O checked: (the target, whether it names a directory)."""
    limits.check_msgid(msgid)
    if output_file == "":
        raise UsageError("-O: give a file or directory name, or - for stdout")
    into = names_directory(output_file) if output_file else False
    if into:
        check_directory(str(output_file))
    if output_file is None or output_file == "-":
        if st.out.stdout.isatty():
            raise UsageError("refusing to write binary data to a terminal: use -O FILE or a "
                             "pipe")
        if st.output_format in ("json", "jsonl"):
            raise UsageError(f"-o {st.output_format} describes the file written with -O "
                             "FILE; without -O the media's bytes are the output")
        output_file = "-"
    return output_file, into


def _write_all(target, chunks) -> int:
    """The media's bytes into `target`, whole or not at all; the number written."""
    written = 0
    try:
        for chunk in chunks:
            target.raw.write(chunk)
            written += len(chunk)
        target.finish()
    except KeyboardInterrupt:
        target.abort()
        raise Interrupted("interrupted: nothing was written") from None
    except BrokenPipeError:
        target.abort()
        raise
    except OSError as exc:  # a full disk, /dev/full: the environment, not the input
        target.abort()
        raise EnvironmentProblem(f"cannot write {target.shown} ({exc.strerror})") from None
    except BaseException:
        target.abort()
        raise
    return written


def _content(st, store, corp_id: str, msgid: str):
    """(the archive entry, an iterator over its bytes, already opened): a copy found missing
    is fetched again, while WeCom still has it."""
    import itertools

    from kfcli.core.store.base import MediaMissing

    item = _archived(st, store, corp_id, msgid)
    chunks = store.media_content(item)
    try:
        first = next(chunks, b"")
    except MediaMissing as exc:
        store.media_reset(corp_id, [item.seq], lost=exc.message)
        item = _archived(st, store, corp_id, msgid)
        chunks = store.media_content(item)
        first = next(chunks, b"")
    return item, itertools.chain([first], chunks)


def _archived(st, store, corp_id: str, msgid: str):
    """The message's archive entry, archived (fetched now when it is still pending);
    NotArchived (exit 4) with the reason otherwise."""
    import json

    found = store.message(corp_id, msgid)
    if found is None:
        raise NotArchived(f"message {msgid} is not in the store (corp {corp_id})",
                          hint="`kfcli msg search` and `kfcli msg history` find stored "
                          "messages; `kfcli msg sync` stores new ones")
    row, item = found
    if item is None:
        try:
            msgtype = json.loads(row.text).get("msgtype") or "?"
        except (ValueError, AttributeError):
            msgtype = "?"
        raise NotArchived(f"message {msgid} is a {msgtype} message: it has no media "
                          "(only image, voice, video and file messages do)")
    if item.state == "pending":
        from kfcli.core.archive import Archiver

        archiver = Archiver(st.client(), store, corp_id)
        fetched = archiver.fetch(item)
        if fetched is not None:
            return fetched
        item = store.media_items(corp_id, [item.seq]).get(item.seq, item)
        if item.state == "pending" and isinstance(archiver.error, KfError):
            # A passing failure (the network, a rate limit, the media directory): reported
            # with its own exit code, so that a script can tell it from "gone for good".
            error = archiver.error
            error.message = (f"the {item.msgtype} of message {msgid} is not archived yet and "
                             f"could not be fetched now: {error.message}")
            raise error
        if item.state == "pending":
            raise NotArchived(f"the {item.msgtype} of message {msgid} is not archived yet: "
                              f"{item.error or 'unknown reason'} (kfcli tries again later)")
    if item.state == "failed":
        raise NotArchived(f"the {item.msgtype} of message {msgid} could not be archived: "
                          f"{item.error or 'unknown reason'} "
                          f"({plural(item.attempts, 'attempt')})")
    return item
