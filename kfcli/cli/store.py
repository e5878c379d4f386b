"""`kfcli store`: the message store that `msg sync` and the receiver fill (DESIGN.md §9):
what it holds per account, forgetting an account's cursor, and removing old messages
(`store prune`, DESIGN.md §10).

The store is whatever `KFCLI_STORE` or the profile setting `store` names (default: SQLite in
the user state directory); these commands never learn which engine is behind it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from kfcli.cli.context import YesOpt, confirm, new_app, state, with_output
from kfcli.cli.text import plural
from kfcli.core import limits
from kfcli.core.errors import NotInStore

if TYPE_CHECKING:
    from kfcli.core.store import PullStore, Store

app = new_app("Inspect the message store that `msg sync` and the receiver fill.")

COLUMNS = ["open_kfid", "messages", "oldest", "newest", "cursor", "last_pull",
           "last_callback", "pending_outbox"]
HEADERS = ["open_kfid", "messages", "oldest", "newest", "cursor age", "last pull",
           "last callback", "pending outbox"]

EXIT_CODES = """Exit status: 0 success; 2 invalid input (or reset-cursor/prune without --yes and
no terminal); 3 the store URL is invalid, the file is not a kfcli store, was written by a newer
kfcli, or cannot be written, or corp_id is not configured; 4 the store has no cursor for that
account (reset-cursor); 6 the PostgreSQL server cannot be reached."""

AFTER_RESET = ("the next pull starts from the earliest message WeCom still keeps (3 days); "
               "messages already in the store are not written out again")


@contextmanager
def _opened(*, create: bool = True) -> Iterator[tuple[Store, str, str, str]]:
    """(store, corp_id, the URL with its password masked, where the URL came from);
    `create=False` for what only reads: no store there is exit 3, and none is made."""
    from kfcli.core.store import display_url, open_store, parse, resolve_url

    settings = state().settings()
    url, source = resolve_url(settings)
    parse(url)  # a bad URL is reported before anything else (exit 3)
    settings.require("corp_id")
    with open_store(url, create=create, source=source) as store:
        yield store, settings.corp_id, display_url(url), source


OpenKfidArg = Annotated[str, typer.Argument(help="The account's open_kfid.", show_default=False)]


@app.command("status", epilog=f"""Examples:

  kfcli store status

  kfcli store status --account wkAbC123 -o json

  KFCLI_STORE=postgresql://kfcli@db.internal:5432/kfcli kfcli store status

One row per account of the configured corp: open_kfid, messages held, oldest and newest
message (local time), cursor age ("never pulled" when there is none), last pull, last
callback, pending outbox entries (pages committed but not yet written out by their puller).
The first line on stderr names the backend, the URL (password masked) and the schema version.
-o json: {{"backend", "url", "schema_version", "corp_id", "accounts": [{{"open_kfid",
"messages", "oldest", "newest", "has_cursor", "cursor_at", "last_pull_at",
"last_callback_at", "pending_outbox"}}], "consumers": [{{"name", "open_kfid", "position",
"behind", "updated_at"}}], "media": {{"archived", "pending", "failed", "bytes"}}}} with times
as unix seconds (null when never). Each `msg history
--consumer` position is also listed on stderr with how many messages it is behind.

{EXIT_CODES}""")
@with_output
def status(
    account: Annotated[str | None, typer.Option("--account", help="Only this account "
                                                "(open_kfid).", show_default=False)] = None,
) -> None:
    """Show per account the messages held, their time range, cursor and last pull."""
    from kfcli.core.store import AccountStatus

    if account is not None:
        limits.check_open_kfid(account)
    out = state().out
    with _opened(create=False) as (store, corp_id, url, source):
        version = store.schema_version()
        accounts = store.status(corp_id)
        consumers = store.consumers(corp_id)
        media = store.media_summary(corp_id, account)
        gaps = {p.open_kfid: p.gap() for p in store.pull_states(corp_id, account)}
        backend = store.backend
    if account is not None:
        accounts = [a for a in accounts if a.open_kfid == account] or [
            AccountStatus(account, 0, None, None, None, None, None, None, 0)]
        consumers = [c for c in consumers if c.open_kfid == account]
    if out.machine:
        out.obj({"backend": backend, "url": url, "schema_version": version, "corp_id": corp_id,
                 "accounts": [{**a.as_dict(), "gap": gaps.get(a.open_kfid)}
                              for a in accounts],
                 "consumers": [c.as_dict() for c in consumers], "media": media.as_dict()})
        return
    out.info(f"store: {backend} {url} ({source}), schema version {version}, corp {corp_id}")
    now = state().env.clock()
    # A table on a terminal of 120 columns (kubectl get's width), a block per account below
    # that: the last callback and an empty outbox give way first (never an outbox with
    # replies waiting in it).
    optional = ["last_callback"] + (["pending_outbox"] if not any(
        a.pending_outbox for a in accounts) else [])
    out.rows([_row(a, now) for a in accounts], COLUMNS, headers=HEADERS, optional=optional,
             empty=f"nothing stored for corp {corp_id} yet; `kfcli msg sync OPEN_KFID` fills "
             "the store")
    _status_notes(out, media, gaps, consumers, now)


def _status_notes(out, media, gaps, consumers, now: float) -> None:
    """`store status` on stderr below the table: the media archive, gaps, consumers."""
    if media.archived or media.pending or media.failed:
        out.info(f"media archive: {media.archived} archived ({_size(media.bytes)}), "
                 f"{media.pending} pending, {media.failed} failed (`kfcli store media`)")
    for open_kfid, gap in gaps.items():  # the receiver resumed it after WeCom's 3 days
        if gap is not None:
            out.warning(f"possible gap in {open_kfid}: not pulled from {_local(gap['since'])} "
                        f"to {_local(gap['until'])} ({gap['seconds'] / 86400:.1f} days; WeCom "
                        "keeps messages 3 days): messages sent in between may be lost")
    for c in consumers:  # msg history --consumer positions (stderr: not part of the table)
        if c.open_kfid == "*":  # the shared position of a consumer of every account
            out.info(f"consumer {c.name} of every account: last moved "
                     f"{_ago(c.updated_at, now)}")
            continue
        out.info(f"consumer {c.name} of {c.open_kfid}: {plural(c.behind, 'message')} behind, last "
                 f"moved {_ago(c.updated_at, now)}")


def _row(a, now: float) -> dict[str, object]:
    if a.cursor is not None:
        cursor = _ago(a.cursor_at, now) if a.cursor_at else "saved"
    else:  # forgotten by reset-cursor after a pull: say so rather than "never pulled"
        cursor = "reset" if a.last_pull_at else "never pulled"
    return {
        "open_kfid": a.open_kfid, "messages": a.messages,
        "oldest": _local(a.oldest), "newest": _local(a.newest), "cursor": cursor,
        "last_pull": _local(a.last_pull_at) or "never",
        "last_callback": _local(a.last_callback_at) or "never",
        "pending_outbox": a.pending_outbox,
    }


def _size(n: int) -> str:
    from kfcli.core.transcript import size_text

    return size_text(n)


@app.command("media", epilog=f"""Examples:

  kfcli store media

  kfcli store media --retry

  kfcli store media --account wkAbC123 -o json

The media archive: `msg sync` and the receiver fetch the image, voice, video and file of each
message they store (SQLite: files in media/ beside store.db; PostgreSQL: in the database, so
every host sees them). Shows how many are archived (and their size), pending (not fetched
yet, or failed for a passing reason: tried again later) and failed (WeCom no longer has them:
its copy expires 3 days after a message is sent). --retry fetches everything pending or
failed now, with progress on a terminal, and lists what still fails (exit 1 when any
does). bytes: the archived media's sizes, counted per message (equal contents are stored
once). -o json: {{"archived", "pending", "failed", "bytes", "retry": {{"archived", "failed",
"retrying", "bytes", "errors": [{{"msgid", "msgtype", "errcode", "reason", "retry"}}]}}}}
("retry" only with --retry).

{EXIT_CODES} With --retry, 1 when a media could not be fetched.""")
@with_output
def media(
    account: Annotated[str | None, typer.Option("--account", help="Only this account "
                                                "(open_kfid).", show_default=False)] = None,
    retry: Annotated[bool, typer.Option(
        "--retry", help="Fetch every pending or failed media now.")] = False,
) -> None:
    """Count the archived media, and fetch what is missing with --retry."""
    if account is not None:
        limits.check_open_kfid(account)
    st = state()
    out = st.out
    done = None
    with _opened() as (store, corp_id, _url, _source):
        if retry:
            done = _fetch_media(st, store, corp_id, account)
        summary = store.media_summary(corp_id, account)
    doc: dict[str, object] = dict(summary.as_dict())
    if done is not None:
        doc["retry"] = done.as_dict()
    if out.machine:
        out.obj(doc)
    else:
        if done is not None:
            out.info(f"fetched {plural(done.archived, 'media file')} ({_size(done.bytes)}); "
                     f"{done.failed} failed for good, {done.retrying} to try again later")
            for line in done.errors:
                out.info(f"  {line}")
        _media_table(out, summary)
    if done is not None and (done.failed or done.retrying):
        from kfcli.core.errors import PartialError

        raise PartialError(f"{plural(done.failed + done.retrying, 'media file')} could not be "
                           "fetched (" + ("see retry.errors)" if out.machine else
                                          "listed above)"))


def _fetch_media(st, store, corp_id: str, account: str | None):
    """`store media --retry`: every pending or failed media fetched now, with progress."""
    from kfcli.core.archive import Archiver

    out = st.out

    def progress(result, item) -> None:
        out.status(f"fetching media {result.tried + 1}: {item.msgtype} of message "
                   f"{item.msgid}")

    try:
        return Archiver(st.client(), store, corp_id, progress=progress).run(
            open_kfid=account, force=True)
    except KeyboardInterrupt:
        from kfcli.core.errors import Interrupted

        raise Interrupted("interrupted; what was fetched is kept") from None
    finally:
        out.status(None)


def _media_table(out, summary) -> None:
    out.rows([{"state": "archived", "count": summary.archived, "size": _size(summary.bytes)},
              {"state": "pending", "count": summary.pending, "size": ""},
              {"state": "failed", "count": summary.failed, "size": ""}],
             ["state", "count", "size"])


def _local(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _ago(t: float, now: float) -> str:
    seconds = int(max(0.0, now - t))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h ago"


@app.command("reset-cursor", epilog=f"""Examples:

  kfcli store reset-cursor wkAbC123

  kfcli store reset-cursor wkAbC123 --yes

After the reset {AFTER_RESET}. Use it when a cursor went bad (WeCom refuses it) or to fetch
what WeCom still keeps again. Asks for confirmation on a terminal; scripts pass --yes. While
another process is pulling the account (a msg sync or a receiver), waits for that pull to end.

{EXIT_CODES}""")
@with_output
def reset_cursor(open_kfid: OpenKfidArg, yes: YesOpt = False) -> None:
    """Forget an account's cursor: its next pull starts from the oldest message kept."""
    limits.check_open_kfid(open_kfid)
    out = state().out
    with _opened() as (store, corp_id, url, _source):
        if store.cursor(corp_id, open_kfid) is None:
            raise NotInStore(f"the store {url} has no cursor for {open_kfid} (corp {corp_id}): "
                             "it was never pulled, or its cursor was already reset",
                             hint="`kfcli store status` lists the accounts the store knows")
        env = state().env
        if not yes and env.stdin_isatty and env.stderr_isatty:
            out.info(f"After the reset {AFTER_RESET}.")
        confirm(f"Forget the saved cursor of {open_kfid}?", yes=yes)
        _forget_cursor(store, corp_id, open_kfid, out)
    out.done({"open_kfid": open_kfid, "corp_id": corp_id, "cursor_reset": True},
             f"forgot the cursor of {open_kfid}: {AFTER_RESET}")


def _forget_cursor(store: PullStore, corp_id: str, open_kfid: str, out) -> None:
    """Under the account's pull lock, so that a pull running now (`msg sync`, a receiver)
    finishes first rather than failing on a cursor moved under it; waits as `msg sync`
    does (Ctrl-C interrupts)."""
    from kfcli.core.pull import lock_name

    name = lock_name(corp_id, open_kfid)
    lock = store.lock(name, wait=0.0)
    if lock is None:
        out.info(f"waiting: another process is pulling {open_kfid} (a msg sync or a "
                 "receiver); resetting once it is done")
        while lock is None:
            lock = store.lock(name, wait=1.0)
    with lock:
        store.set_cursor(corp_id, open_kfid, None)


@app.command("prune", epilog=f"""Examples:

  kfcli store prune --before 2026-06-01

  kfcli store prune --before 180d --yes

  kfcli config set retention_days 365

  kfcli store prune --yes          # keeps retention_days (e.g. from cron)

Removes from the store the messages of the configured corp sent before DATE, and the
callbacks received before it. DATE is a date (2026-06-01), a local time, a duration ago
(180d, 26w) or unix seconds. Without --before, the profile setting retention_days (or
KFCLI_RETENTION_DAYS) says how many days to keep. Never removed: messages a `msg sync` or
receiver still has to write out (a pending outbox entry), and the callbacks of an account
never pulled; consumer positions (`msg history --consumer`) stay where they are. Reports the
messages removed per account, and the archived media files (or PostgreSQL blobs) that no
remaining message refers to (-o json: {{"before", "messages", "accounts": {{OPEN_KFID: N}},
"callbacks", "kept_pending", "media", "media_bytes", "dry_run"}}). Asks for confirmation on
a terminal; scripts pass --yes. --dry-run counts without removing.

{EXIT_CODES}""")
@with_output
def prune(
    before: Annotated[str | None, typer.Option(
        "--before", metavar="DATE", help="Remove messages sent before DATE (default: "
        "retention_days ago). [env: KFCLI_RETENTION_DAYS for the default]",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be removed; remove nothing.")] = False,
    yes: YesOpt = False,
) -> None:
    """Remove messages older than a date (or than retention_days) from the store."""
    out = state().out
    cutoff, why = _cutoff(before, state().settings(), state().env.clock())
    with _opened() as (store, corp_id, _url, _source):
        preview = store.prune(corp_id, cutoff, dry_run=True)
        if not dry_run:
            # Always asked (scripts always pass --yes), whether or not anything is old enough
            # today: a cron line without --yes fails the first day, not months later.
            confirm(f"Remove {plural(preview.total, 'message')} {why} (corp {corp_id}) "
                    "from the store?", yes=yes)
        # Run also when no message is old enough: unused media (from killed downloads, or an
        # earlier prune interrupted) go all the same.
        result = preview if dry_run else store.prune(corp_id, cutoff)
    out.done({**result.as_dict(), "dry_run": dry_run}, _pruned(result, why, dry_run))


def _cutoff(before: str | None, settings, now: float) -> tuple[int, str]:
    """`store prune`'s cutoff (unix seconds) and how to say it, from --before or the
    retention_days setting."""
    from kfcli.core.errors import UsageError
    from kfcli.core.when import parse_when

    if before is not None:
        cutoff = parse_when(before, option="--before", now=now)
        why = f"sent before {_local(cutoff)}"
    else:
        days = settings.get("retention_days")
        if not days:
            raise UsageError("store prune needs --before DATE, or the retention_days setting",
                             hint="kfcli store prune --before 2026-06-01, or `kfcli config set "
                             "retention_days 180` (KFCLI_RETENTION_DAYS) and then kfcli store "
                             "prune")
        cutoff = int(now) - int(days) * 86400
        why = f"older than retention_days ({days} days: sent before {_local(cutoff)})"
    if cutoff > now:
        from kfcli.core.errors import ValidationError

        raise ValidationError("--before", f"{before!r} is in the future: that would remove "
                              "messages not sent yet")
    return cutoff, why


def _pruned(result, why: str, dry_run: bool) -> str:
    """What `store prune` removed (or would), in words."""
    verb = "would remove" if dry_run else "removed"
    per_account = "".join(f"\n  {kfid}: {plural(n, 'message')}"
                          for kfid, n in result.messages.items())
    message = (f"{verb} {plural(result.total, 'message')} {why}{per_account}"
               f"\n{verb} {plural(result.callbacks, 'callback')}"
               f"\n{verb} {plural(result.media, 'archived media file')} no message refers "
               f"to any more ({_size(result.media_bytes)})")
    if result.kept_pending:
        message += (f"\nkept {plural(result.kept_pending, 'older message')} still to be "
                    "written out by a msg sync or receiver (pending outbox)")
    return message


def _configured() -> tuple[str, str, str]:
    """(url, backend, the URL with its password masked) of the configured store."""
    from kfcli.core.store import display_url, parse, resolve_url

    url, _source = resolve_url(state().settings())
    backend, _location = parse(url)
    return url, backend, display_url(url)


DestArg = Annotated[str, typer.Argument(
    metavar="DEST", help="The new store file to write (an absolute path or sqlite:///PATH).",
    show_default=False)]


@app.command("backup", epilog=f"""Examples:

  kfcli store backup /backup/kfcli-$(date +%F).db

  KFCLI_STORE=/backup/kfcli-2026-12-07.db kfcli msg history wkAbC123 --limit 5

Copies the configured SQLite store while receivers, msg sync and consumers keep writing: one
consistent snapshot (SQLite's online backup API) of the messages, cursors, consumer
positions, replies and sends, and the archived media files it names, copied beside DEST
(DEST.media/, or media/ when DEST is named store.db) as for any store. DEST is a store: point
KFCLI_STORE at it to read it, or `kfcli store restore DEST` to bring it back. DEST and its
media directory must not exist (a backup never overwrites); DEST appears only once complete.
Copying store.db of a running store is not a backup: the latest messages are in its
write-ahead log (store.db-wal) until the next checkpoint.
A PostgreSQL store is backed up with pg_dump (exit 3 says how). -o json: {{"path",
"schema_version", "messages", "media_files", "media_bytes", "missing_media"}}.

{EXIT_CODES} 2 when DEST exists.""")
@with_output
def backup(dest: DestArg) -> None:
    """Copy the store (and its media) to a new store file, while it is in use."""
    from kfcli.core.store import open_store, parse

    target = _sqlite_path(dest, "DEST")
    url, _backend, _shown = _configured()
    parse(url)
    with open_store(url) as store:
        result = store.backup(target)
    message = (f"backed up {plural(result.messages, 'message')} and "
               f"{plural(result.media_files, 'media file')} ({_size(result.media_bytes)}) to "
               f"{result.path} (schema {result.schema_version})")
    if result.missing_media:
        message += (f"\n{plural(result.missing_media, 'archived media file')} had been removed "
                    "from the store meanwhile (store prune); the backup fetches them again if "
                    "WeCom still has them")
    state().out.done(result.as_dict(), message)


def _sqlite_path(value: str, what: str):
    from pathlib import Path

    from kfcli.core.errors import ConfigError, ValidationError
    from kfcli.core.store import parse

    try:
        backend, location = parse(value)
    except ConfigError as exc:
        raise ValidationError(what, exc.message) from None
    if backend != "sqlite":
        raise ValidationError(what, "a backup is an SQLite store file: an absolute path or "
                              "sqlite:///PATH")
    return Path(location)


@app.command("restore", epilog=f"""Examples:

  kfcli store restore /backup/kfcli-2026-12-07.db

  KFCLI_STORE=/srv/kf/store.db kfcli store restore /backup/kf-1207.db --yes

Replaces everything in the configured SQLite store with the backup SRC (a file `kfcli store
backup` wrote, or any kfcli store file), and adds SRC's archived media to the store's.
Stop every receiver, msg sync, follower and consumer using the store first: restore refuses
(exit 3) while any process has it open. Asks for confirmation on a terminal when the store
exists; scripts pass --yes. Consumers resume from the positions in the backup: messages
stored after the backup was taken are pulled again by the next msg sync or receiver as long
as WeCom still keeps them (3 days). A PostgreSQL store is restored with pg_restore. -o json:
{{"path", "schema_version", "messages", "media_files", "media_bytes", "missing_media"}}.

{EXIT_CODES}""")
@with_output
def restore(
    src: Annotated[str, typer.Argument(metavar="SRC", help="The backup (a store file).",
                                       show_default=False)],
    yes: YesOpt = False,
) -> None:
    """Replace the store's contents with a backup."""
    from kfcli.core.errors import ConfigError
    from kfcli.core.store import parse
    from kfcli.core.store.base import PG_BACKUP_HINT
    from kfcli.core.store.sqlite import SqliteStore

    source = _sqlite_path(src, "SRC")
    if not source.is_file():
        raise ConfigError(f"no backup at {source}", hint="`kfcli store backup DEST` writes one")
    url, backend, shown = _configured()
    if backend != "sqlite":
        raise ConfigError(f"kfcli store restore restores an SQLite store; {shown} is a "
                          "PostgreSQL store: restore it with pg_restore", hint=PG_BACKUP_HINT)
    _backend, location = parse(url)
    from pathlib import Path

    if Path(location).exists():
        confirm(f"Replace everything in the store {shown} with the backup {source}?", yes=yes)
    from kfcli.core.store import wal_mb

    store = SqliteStore(Path(location), wal_mb=wal_mb())
    try:
        result = store.restore(source)
    finally:
        store.close()
    state().out.done(result.as_dict(),
                     f"restored {plural(result.messages, 'message')} and added "
                     f"{plural(result.media_files, 'media file')} ({_size(result.media_bytes)}) "
                     f"from {source} into {shown} (schema {result.schema_version})")


@app.command("migrate", epilog=f"""Examples:

  kfcli store migrate --dry-run

  kfcli store migrate

Upgrades the configured store to the schema this kfcli writes (`kfcli --version` names it).
Every kfcli upgrades a store by itself when it first opens it; this command is for
operators who upgrade deliberately, and --dry-run says what would change and whether hosts
still running the previous build keep working on the migrated store.
Upgrading hosts one by one (a store shared over PostgreSQL): install the new build on one
host, run `kfcli store migrate --dry-run` there, then `kfcli store migrate`, then replace the
other hosts one at a time. When --dry-run says older builds cannot use the migrated store,
stop the hosts on older builds before migrating: they refuse the store (exit 3, at start or at
their next write) until they run the new build.
-o json: {{"url", "schema_version", "target", "steps": [{{"version", "adds"}}],
"compatible_from", "older_builds_keep_working", "dry_run", "migrated"}}.

{EXIT_CODES}""")
@with_output
def migrate(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would change; change nothing.")] = False,
) -> None:
    """Upgrade the store's schema to this kfcli's (automatic otherwise)."""
    from pathlib import Path

    from kfcli.core.errors import ConfigError
    from kfcli.core.store import SCHEMA_VERSION, open_store, parse
    from kfcli.core.store.base import SCHEMA_STEPS, compatible_from
    from kfcli.core.store.migrations import pending

    url, backend, shown = _configured()
    if dry_run and backend == "sqlite" and not Path(parse(url)[1]).exists():
        raise ConfigError(f"no store at {parse(url)[1]}: nothing to migrate (a new store is "
                          "created at the current schema)")
    with open_store(url, migrate=False) as store:
        version = store.schema_version()
        migrated = False
        if not dry_run and version < SCHEMA_VERSION:
            version, _after = store.migrate()
            migrated = True
    # The steps the runner applies (each dialect has one per version, each described).
    steps = [{"version": v, "adds": SCHEMA_STEPS[v][0]} for v in pending(version)]
    floor = compatible_from(SCHEMA_VERSION)
    keep = bool(version) and floor <= version
    doc = {"url": shown, "schema_version": SCHEMA_VERSION if migrated else version,
           "target": SCHEMA_VERSION, "steps": steps, "compatible_from": floor,
           "older_builds_keep_working": keep or not steps, "dry_run": dry_run,
           "migrated": migrated}
    state().out.done(doc, _migration(shown, version, steps, keep=keep, dry_run=dry_run))


def _migration(shown: str, version: int, steps: list[dict], *, keep: bool,
               dry_run: bool) -> str:
    """What `store migrate` did (or would), in words."""
    from kfcli.core.store import SCHEMA_VERSION

    if version >= SCHEMA_VERSION:
        return (f"the store {shown} is at schema {version}: nothing to migrate "
                f"(this kfcli writes {SCHEMA_VERSION})")
    verb = "would migrate" if dry_run else "migrated"
    lines = [f"{verb} the store {shown} from schema {version} to {SCHEMA_VERSION}:"]
    lines += [f"  {s['version']}: {s['adds']}" for s in steps]
    if not version:
        lines.append("a new store: no build has used it yet")
    elif keep:
        lines.append(f"hosts still running a build of schema {version} keep working on it "
                     "until they are replaced")
    else:
        lines.append(f"hosts running a build of schema {version} cannot use it afterwards: "
                     "stop them before migrating, and start them with this build")
    return "\n".join(lines)
