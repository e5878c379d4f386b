"""What kfcli sends, in the store: whole conversations (DESIGN.md §9, §11).

WeCom's `sync_msg` never returns the messages sent through `send_msg`, so kfcli records each
one it delivers (`msg send`, `--batch`, `send-on-event`, `msg reply`, the library's sends)
with its conversation: the object as sent, under origin 100 (`kfcli.core.origins.KFCLI`),
with its msgid, account, customer and time (`Store.record_sent`). It counts in the reply
window and shows in every view of the archive.

A send WeCom accepted is never missing from the store: when the store cannot be written at
that moment (read-only, a full disk, PostgreSQL away), the record is appended to a journal
under the state dir (`SendJournal`, one file per store, written and synced before the
command ends) and written to the store by the next kfcli that sends, or by
`SendJournal.replay` (each record at most once: recording a msgid again changes nothing).

    recorder = SendRecorder(store, corp_id)        # or a function that opens the store
    client = KfClient(corp_id, secret, recorder=recorder)
    client.send_message(...)                       # delivered, then recorded
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kfcli.core.errors import ConfigError, KfError
from kfcli.core.store.base import StoreUnwritable


def send_record(corp_id: str, open_kfid: str, customer: str, msgid: str, msgtype: str,
                content: Any, sent_at: float | None = None,
                answered: Sequence[str] = ()) -> dict[str, Any]:
    """One send as the journal keeps it (and `record` writes it); `answered`: the customer
    messages it answers (acknowledged with it)."""
    rec = {"corp_id": corp_id, "open_kfid": open_kfid, "external_userid": customer,
           "msgid": msgid, "message": {"msgtype": msgtype, msgtype: content},
           "sent_at": time.time() if sent_at is None else sent_at}
    if answered:
        rec["answered"] = list(answered)
    return rec


def record(store: Any, rec: dict[str, Any], *, later: bool = False) -> None:
    """Write one send record into the store (KfError when it cannot); `later`: archived
    with others by `Store.archive_sends`."""
    store.record_sent(rec["corp_id"], rec["open_kfid"], rec["external_userid"], rec["msgid"],
                      rec["message"], sent_at=rec["sent_at"], answered=rec.get("answered", ()),
                      later=later)


class SendJournal:
    """Sends not yet in the store: `<state dir>/sends/<store key>.jsonl`, 0600, one JSON
    record a line, appended and synced under an exclusive lock (flock), so processes that
    send at once never mix their lines. `replay(store)` writes them to the store and empties
    the file."""

    def __init__(self, store_url: str, directory: Path | None = None) -> None:
        import hashlib

        from kfcli.core import paths

        key = hashlib.sha256(store_url.encode("utf-8")).hexdigest()[:24]
        self.dir = directory or paths.state_dir() / "sends"
        self.path = self.dir / f"{key}.jsonl"
        self._lock = threading.Lock()

    def _open(self, flags: int) -> int:
        from kfcli.core.files import ensure_private_dir

        ensure_private_dir(self.dir)
        return os.open(self.path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)

    def keep(self, rec: dict[str, Any]) -> None:
        """Append `rec`, synced before this returns."""
        import fcntl

        line = (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = self._open(os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending(self) -> int:
        """How many sends wait (0 without a journal)."""
        try:
            with open(self.path, "rb") as file:
                return sum(1 for line in file if line.strip())
        except OSError:
            return 0

    def replay(self, store: Any) -> int:
        """Write every kept send to `store`, then empty the journal: how many. A record the
        store refuses (KfError) stops the replay; what is left stays for the next time."""
        import fcntl

        try:
            if not self.path.stat().st_size:
                return 0
        except OSError:
            return 0
        with self._lock:
            try:
                fd = self._open(os.O_RDWR)
            except FileNotFoundError:
                return 0
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                with os.fdopen(os.dup(fd), "rb") as file:
                    lines = [line for line in file.read().splitlines() if line.strip()]
                done = 0
                try:
                    for line in lines:
                        try:
                            rec = json.loads(line)
                        except ValueError:  # a line cut by a crash mid-write: never sent whole
                            done += 1
                            continue
                        record(store, rec)
                        done += 1
                finally:
                    rest = b"".join(line + b"\n" for line in lines[done:])
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.ftruncate(fd, 0)
                    if rest:
                        os.write(fd, rest)
                    os.fsync(fd)
            finally:
                os.close(fd)
            return done  # the empty file stays: another process may append to it now


#: How long a msg_code from service_state/trans is remembered (its longest life: 48 h).
CODE_LIFE = 48 * 3600


def remember_code(code: str, open_kfid: str, customer: str, *,
                  directory: Path | None = None) -> None:
    """Note which conversation a msg_code of `service_state/trans` belongs to (WeCom says
    nothing of it when the code is used), so that a send on it is recorded with that
    conversation: `<state dir>/sends/codes.json`, codes older than 48 h dropped. Best effort:
    a file that cannot be written leaves the code unknown (its send is then not recorded,
    and says so)."""
    import fcntl

    from kfcli.core import paths
    from kfcli.core.files import ensure_private_dir

    if not code:
        return
    path = (directory or paths.state_dir() / "sends") / "codes.json"
    now = time.time()
    try:
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as file:
                try:
                    codes = json.loads(file.read() or b"{}")
                except ValueError:
                    codes = {}
            codes = {k: v for k, v in codes.items()
                     if isinstance(v, list) and len(v) == 3 and now - v[2] < CODE_LIFE}
            codes[code] = [open_kfid, customer, now]
            data = json.dumps(codes, ensure_ascii=False).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


def code_customer(code: str, *, directory: Path | None = None) -> tuple[str, str] | None:
    """(open_kfid, external_userid) of a msg_code `remember_code` noted, if still alive."""
    from kfcli.core import paths

    path = (directory or paths.state_dir() / "sends") / "codes.json"
    try:
        found = json.loads(path.read_bytes() or b"{}").get(code)
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(found, list) and len(found) == 3 and time.time() - found[2] < CODE_LIFE:
        return str(found[0]), str(found[1])
    return None


class SendRecorder:
    """Records what a client sends in a store (`KfClient(recorder=…)`), and in the journal
    when the store cannot be written then; `warn` says so (once per outage, with the
    journal's path). `store` is a store or a function that opens one (on first use). Thread-
    safe. `replay()` writes the journal's sends first; `send_message` calls `sent()`."""

    def __init__(self, store: Any, corp_id: str, *, journal: SendJournal | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self._opener: Callable[[], Any] | None = store if callable(store) else None
        self._store: Any = None if callable(store) else store
        self.corp_id = corp_id
        self._journal = journal
        self.warn = warn or (lambda _text: None)
        self.kept = 0  # sends journaled by this recorder
        self._lock = threading.Lock()
        self._replayed = False
        self._warned = False

    @property
    def journal(self) -> SendJournal:
        if self._journal is None:
            self._journal = SendJournal(self._store_url())
        return self._journal

    def _store_url(self) -> str:
        if self._store is not None:
            return str(self._store.display_url)
        from kfcli.core.store import display_url, resolve_url

        return display_url(resolve_url()[0])

    def store(self) -> Any:
        """The store (opened now if need be); KfError when it cannot be opened."""
        with self._lock:
            if self._store is None:
                assert self._opener is not None
                self._store = self._opener()
            return self._store

    def open(self) -> Any | None:
        """Open the store and write the journal's sends to it: the store, or None when it
        cannot be written now (then sends are journaled). A store that is misconfigured
        (a wrong URL, a refused password) raises ConfigError."""
        try:
            store = self.store()
            self.replay(store)
            return store
        except StoreUnwritable as exc:
            self._away(exc)
        except ConfigError:
            raise
        except KfError as exc:
            self._away(exc)
        return None

    def replay(self, store: Any) -> int:
        """Write the journal's sends to `store` (once per recorder); how many."""
        if self._replayed:
            return 0
        store.archive_sends(self.corp_id)  # what a batch killed mid-way left to archive
        done = self.journal.replay(store)
        self._replayed = True
        if done:
            self.warn(f"recorded {done} earlier send{'s' if done != 1 else ''} that the store "
                      f"could not take then (kept in {self.journal.path})")
        return done

    def sent(self, open_kfid: str, customer: str, msgid: str, msgtype: str, content: Any,
             ) -> bool:
        """Record one delivered send: True when it is in the store, False when it was kept
        in the journal (the store could not be written)."""
        rec = send_record(self.corp_id, open_kfid, customer, msgid, msgtype, content)
        return self.keep(rec)

    def keep(self, rec: dict[str, Any]) -> bool:
        try:
            store = self.store()
            if not self._replayed:
                self.replay(store)
            record(store, rec)
            return True
        except KfError as exc:
            try:
                self.journal.keep(rec)
            except OSError as error:  # its disk is full too: the send stays delivered
                self.warn(f"msgid {rec['msgid']} was sent but cannot be recorded: the store "
                          f"cannot be written ({exc.message}) nor the journal "
                          f"{self.journal.path} ({error.strerror})")
                return False
            self.kept += 1
            self._away(exc)
            return False

    def sent_on_event(self, code: str, msgid: str, msgtype: str, content: Any) -> bool:
        """Record a send that answered an event code: its conversation is the stored event
        that gave out the code, or of the `service_state/trans` that did (`remember_code`).
        False when it could not be recorded (said on `warn`)."""
        found = code_customer(code, directory=self.journal.dir)
        if found is None:
            try:
                found = self.store().event_customer(self.corp_id, code)
            except KfError as exc:
                self._away(exc)
                return False
        if found is None:
            self.warn(f"msgid {msgid} is not in the store: neither a stored event nor "
                      f"`kfcli state trans` on this host gave out code {code} (run `kfcli "
                      "msg sync` before sending on an event's code)")
            return False
        return self.sent(found[0], found[1], msgid, msgtype, content)

    def _away(self, exc: KfError) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
            self.warn(f"the store cannot be written ({exc.message}): sends are kept in "
                      f"{self.journal.path} and recorded in the store on the next run")
