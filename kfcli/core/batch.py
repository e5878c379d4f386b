"""Sending many messages from a stream of JSON lines (`kfcli msg send --batch`), each exactly
once however often the batch is run again.

Each input line is one JSON object:

    {"open_kfid": "wk…", "external_userid": "wm…" (or "touser"),
     "msgtype": "text", "text": {"content": "…"},
     "msgid": "…"?, "reply_to": "<inbound msgid>" or ["<msgid>", …]?, "no_reply": true?}

`reply_to` as a list answers (or, with no_reply, acknowledges) several messages of the
customer with one send: a backlog answered within WeCom's 5 sends per customer message.

A line without `msgid` gets one derived from what it is (`derive_msgid`): from `reply_to` and
the reply's position among this batch's replies to that message (reply #1 to message X always
has the same msgid, whatever its text: a bot that words its answer differently when run again
still cannot answer twice), otherwise from the line's number and content and the conversation
turn it is sent in: the latest message the customer sent (origin 3) in the store when the
line is sent. The same file run again in the same turn is never delivered twice; run after
the customer wrote again, it is a new send. WeCom refuses a msgid it has seen, so a line
sent before is reported `already_sent` (saying which earlier send it matches).

Lines are sent as they are read (a pipe that stays open works), by `parallel` workers; the
lines of one customer always go through the same worker, in input order. A rate limit (45009)
met by one worker holds back them all (the client's shared back-off). One result per line:

    {"line": N, "msgid", "status": "sent"|"already_sent"|"failed"|"skipped",
     "errcode": int|null, "message": str|null}

"failed" with errcode null and `invalid: true` is an input line that could not be read, or
one refused before any request: a `reply_to` that the store knows as another account's or
another customer's message (`Ledger.foreign_reply`; nothing is sent or recorded).
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kfcli.core import limits, messages
from kfcli.core.errors import ApiError, KfError, UsageError
from kfcli.core.limits import Where
from kfcli.core.sends import record, send_record
from kfcli.core.store.base import StoreUnwritable

if TYPE_CHECKING:
    from kfcli.core.client import KfClient
    from kfcli.core.sends import SendJournal

T = TypeVar("T")

#: Default number of workers.
PARALLEL = 4
MAX_PARALLEL = 16
#: The longest input line read (a menu of 10 items is a few KB).
MAX_LINE = 64 * 1024
#: A batch archives its sends (each recorded at once, its message kept with it) every
#: ARCHIVE_EVERY sends, and when one has waited ARCHIVE_AFTER seconds (the input quiet):
#: a message's row, indexes and search entry are most of what recording costs on SQLite.
ARCHIVE_EVERY = 200
ARCHIVE_AFTER = 0.5
#: Seconds a ledger keeps an account's clock (`Store.clock`) before asking again.
CLOCK_TTL = 10.0
#: The most messages one line may answer (`reply_to` as a list).
MAX_REPLY_TO = 100
_KEYS = {"open_kfid", "external_userid", "touser", "msgtype", "msgid", "reply_to", "no_reply"}


def derive_msgid(open_kfid: str, customer: str, *, reply_to: str | None = None,
                 position: int = 1, line: int | None = None,
                 content: Any = None, turn: str = "") -> str:
    """A msgid (32 characters of [0-9a-f] after a prefix) that the same reply, or the same
    line, always gets: `kfr…` from the inbound msgid answered and the reply's position,
    `kfb…` from the line's number, its message and `turn` (the msgid of the customer's
    latest message when it is sent; "" when the store has none)."""
    if reply_to is not None:
        seed = ["reply", open_kfid, customer, reply_to, str(position)]
        prefix = "kfr"
    else:
        seed = ["line", open_kfid, customer, str(line),
                json.dumps(content, ensure_ascii=False, sort_keys=True)]
        if turn:
            seed.append(turn)
        prefix = "kfb"
    digest = hashlib.sha256("\0".join(seed).encode("utf-8")).hexdigest()
    return prefix + digest[:limits.MSGID_BYTES - len(prefix)]


@dataclass
class Line:
    """One input line, read and checked."""

    number: int
    open_kfid: str
    customer: str
    msgtype: str | None
    content: dict[str, Any] | None
    msgid: str
    reply_to: str | None  # the first message answered (of `answers`)
    no_reply: bool
    #: Every customer message the line answers (`reply_to`, or each of its list).
    answers: tuple[str, ...] = ()
    #: The msgid is derived from the conversation turn, decided when the line is sent.
    by_turn: bool = False


@dataclass
class Summary:
    sent: int = 0
    already_sent: int = 0
    failed: int = 0
    skipped: int = 0
    invalid: int = 0

    @property
    def exit_code(self) -> int:
        """2 when a line could not be read, 1 when a send failed, else 0."""
        return 2 if self.invalid else 1 if self.failed else 0


class Unreadable(str):
    """An input line that could not be decoded; its text says why (the reader's words)."""


def decoded(raw: Iterable[bytes]) -> Iterator[str]:
    """Lines of bytes as text, one at a time: a line that is not UTF-8 becomes `Unreadable`
    (the offending byte and a hint), so it is refused alone and the others are still sent. A
    UTF-8 byte order mark at the start is dropped."""
    for number, line in enumerate(raw, 1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Unreadable(f"not UTF-8 (byte 0x{line[exc.start]:02x} at column "
                             f"{exc.start + 1}); convert the input, e.g. iconv -f GBK -t UTF-8")


def parse(number: int, text: str, replies: dict[tuple[str, str], int]) -> Line:
    """Read and check one input line (UsageError naming the line and the field). `replies`
    counts this batch's replies per (open_kfid, inbound msgid): a reply's position."""
    where = Where(f"line {number}")
    if len(text) > MAX_LINE:
        raise where.error(f"longer than {MAX_LINE // 1024} KB")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise where.error(f"not JSON ({exc})") from None
    limits.expect_object(doc, where, 'an object like {"open_kfid": …, "external_userid": …, '
                         '"msgtype": "text", "text": {"content": …}}')
    msgtype = doc.get("msgtype")
    unknown = set(doc) - _KEYS - ({msgtype} if isinstance(msgtype, str) else set())
    if unknown:
        raise where.error(f"unexpected keys: {', '.join(sorted(unknown))}")
    for key in ("open_kfid", "external_userid", "touser", "msgid"):
        if key in doc and not isinstance(doc[key], str):
            raise where.key(key).error(f"expected a string, got {limits.kind_of(doc[key])}")
    open_kfid = doc.get("open_kfid")
    if open_kfid is None:
        raise where.error("open_kfid is missing")
    limits.check_open_kfid(open_kfid)
    customer, touser = doc.get("external_userid"), doc.get("touser")
    if customer is not None and touser is not None and customer != touser:
        raise where.error("external_userid and touser differ")
    customer = customer if customer is not None else touser
    if customer is None:
        raise where.error("external_userid (or touser) is missing")
    limits.check_external_userid(customer)
    answers = _reply_to(doc.get("reply_to"), where.key("reply_to"))
    reply_to = answers[0] if answers else None
    no_reply = doc.get("no_reply", False)
    if not isinstance(no_reply, bool):
        raise where.key("no_reply").error(f"expected true or false, got "
                                          f"{limits.kind_of(no_reply)}")
    if no_reply:
        if reply_to is None:
            raise where.error("no_reply needs reply_to (the message not answered)")
        if msgtype is not None:
            raise where.error("no_reply lines carry no message")
        return Line(number, open_kfid, customer, None, None, "", reply_to, True, answers)
    if not isinstance(msgtype, str) or msgtype not in messages.MSGTYPES:
        got = repr(msgtype) if isinstance(msgtype, str) else limits.kind_of(msgtype)
        raise where.key("msgtype").error(
            f"expected one of {', '.join(messages.MSGTYPES)}, got {got}")
    if msgtype not in doc:
        raise where.error(f"has msgtype {msgtype!r} but no {msgtype!r} object")
    content = doc[msgtype]
    messages.validate(msgtype, content, where=where.key(msgtype))
    msgid = doc.get("msgid")
    if msgid is not None:
        limits.check_msgid(msgid)
    elif reply_to is not None:
        # Several answered at once: derived from all of them (the same group answered again
        # is never delivered twice; a larger group after a restart is a new answer).
        key = reply_to if len(answers) == 1 else "\n".join(answers)
        pair = (open_kfid, key)
        replies[pair] = replies.get(pair, 0) + 1
        msgid = derive_msgid(open_kfid, customer, reply_to=key, position=replies[pair])
    else:  # the turn is known when the line is sent (`turn_msgid`)
        msgid = derive_msgid(open_kfid, customer, line=number, content=[msgtype, content])
        return Line(number, open_kfid, customer, msgtype, content, msgid, reply_to, False,
                    answers, by_turn=True)
    return Line(number, open_kfid, customer, msgtype, content, msgid, reply_to, False, answers)


def turn_msgid(line: Line, turn: str) -> str:
    """The msgid of a line without msgid and reply_to, sent in the turn `turn`."""
    return derive_msgid(line.open_kfid, line.customer, line=line.number,
                        content=[line.msgtype, line.content], turn=turn)


def _reply_to(value: Any, where: Where) -> tuple[str, ...]:
    """`reply_to`: one msgid, or a list of 1 to MAX_REPLY_TO distinct ones."""
    if value is None:
        return ()
    if isinstance(value, str):
        limits.check_msgid(value)
        return (value,)
    if not isinstance(value, list):
        raise where.error(f"expected a msgid or a list of msgids, got {limits.kind_of(value)}")
    if not 1 <= len(value) <= MAX_REPLY_TO:
        raise where.error(f"a list of 1 to {MAX_REPLY_TO} msgids, got {len(value)}")
    for item in value:
        if not isinstance(item, str):
            raise where.error(f"expected msgids (strings), got {limits.kind_of(item)}")
        limits.check_msgid(item)
    if len(set(value)) != len(value):
        raise where.error("a msgid is listed twice")
    return tuple(value)


class Ledger:
    """The batch's use of the message store (kfcli.core.store), so that a line is decided
    without a request where the store knows the answer:

    * `check`: a msgid this store recorded as sent is `already_sent`; a customer whose reply
      window the store knows to be closed (48 h after their last message: 95002) or used up
      (5 sends since it: 95001) is `skipped` with the errcode WeCom would answer. (The
      session state, 95018, is left to WeCom: the store cannot know it for sure.)
    * `sent`: record what was delivered (the window counts it).
    * `ack`: record each customer message answered or marked no_reply, for
      `msg history --consumer NAME --ack replies`.

    `open()` opens the store up front: a configuration error (a wrong URL, a refused password)
    is raised before anything is sent. After that the store may go away for a while (a
    PostgreSQL restart, a full disk): `outage` says so once, the batch goes on sending (WeCom
    decides each line, and a derived msgid is never delivered twice), what it records waits
    in memory, in order, and is written once the store works again (tried at the next line
    after a back-off, and by `finish()`, which waits for it). The outage's end is logged once.
    Thread-safe: the batch's workers share it.
    """

    def __init__(self, open_store: Callable[[], Any], corp_id: str,
                 warn: Callable[[str], None], *, now: Callable[[], float] | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None,
                 journal: SendJournal | None = None) -> None:
        from kfcli.core.outage import Outage

        self._open = open_store
        self.corp_id = corp_id
        self.warn = warn
        #: The store was found read-only: it is read, records are not written.
        self.unwritable = False
        self._clocks: dict[str, tuple[float, int]] = {}
        #: Record sends to be archived later, many at once (`archive_due`).
        self.archive_later = False
        self._unarchived = 0
        self._unarchived_since: float | None = None
        self.now = now or time.time
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        #: Where sends wait while the store is away (`kfcli.core.sends`): a kill loses none.
        self.journal = journal
        #: Sends kept in the journal by this ledger.
        self.kept = 0
        where = f" (kept in {journal.path} meanwhile)" if journal is not None else ""
        self.outage = Outage("the message store", warn, clock=self.clock,
                             then="sending goes on (WeCom decides each line) and what is sent "
                             f"is recorded once the store is back{where}; trying again")
        self.store: Any = None
        #: Records not yet written (the store is away), oldest first.
        self.backlog: list[Callable[[Any], Any]] = []
        self._retry_at: float | None = None
        self._lock = threading.RLock()

    def open(self) -> None:
        """Open the store now. A configuration error is raised; a store that cannot be
        reached is an outage like any other (the batch goes on)."""
        from kfcli.core.errors import ConfigError

        try:
            store = self._store()
            if self.journal is not None:
                self.journal.replay(store)
            store.archive_sends(self.corp_id)  # what a killed batch left to archive
        except StoreUnwritable as exc:  # a send is never held back for it: journaled
            with self._lock:
                if self.store is None:  # not even opened: away
                    self._failed(exc)
                else:
                    self._read_only(exc)
        except ConfigError:
            raise
        except KfError as exc:
            with self._lock:
                self._failed(exc)

    def _read_only(self, exc: KfError) -> None:
        if not self.unwritable:
            self.unwritable = True
            self.warn(f"{exc.message}: what is sent is kept (with the messages it answers) and "
                      "recorded on the next run; no_reply acknowledgements are not recorded")

    def _store(self) -> Any:
        with self._lock:
            if self.store is None:
                self.store = self._open()
            return self.store

    def _failed(self, exc: KfError) -> None:
        self._retry_at = self.clock() + self.outage.failed(exc)

    def _catch_up(self) -> bool:
        """(Holding the lock, during an outage) write the backlog if the store is back.
        Whether it is."""
        if self._retry_at is not None and self.clock() < self._retry_at:
            return False
        done = 0
        try:
            store = self._store()
            while self.backlog:
                self.backlog[0](store)
                self.backlog.pop(0)
                done += 1
            if self.journal is not None:
                done += self.journal.replay(store)
        except KfError as exc:
            self._failed(exc)
            return False
        self._retry_at = None
        self.outage.recovered(f"; recorded {done} result{'s' if done != 1 else ''} of the "
                              "lines sent meanwhile")
        return True

    def _guard(self, what: Callable[[Any], T], *, keep: bool = False) -> T | None:
        """`what(store)`; None while the store is away. `keep`: a record, written later
        when it cannot be now."""
        with self._lock:
            if self.outage.active and not self._catch_up():
                if keep:
                    self.backlog.append(what)
                return None
        try:
            return what(self._store())
        except StoreUnwritable as exc:
            # Read, not written (a read-only file or server): the store still decides lines;
            # sends go to the journal (`sent`, with the messages they answer); a no_reply
            # acknowledgement is left out (its message may come round again).
            with self._lock:
                self._read_only(exc)
            return None
        except KfError as exc:
            with self._lock:
                if keep:
                    self.backlog.append(what)
                if not self.outage.active:
                    self._failed(exc)
            return None

    def archive_due(self, *, now: bool = False) -> None:
        """Archive the sends recorded `later` (`Store.archive_sends`), when ARCHIVE_EVERY of
        them wait or the first has waited ARCHIVE_AFTER seconds (`now`: whatever waits)."""
        with self._lock:
            if not self._unarchived or not (
                    now or self._unarchived >= ARCHIVE_EVERY
                    or self.clock() - (self._unarchived_since or 0.0) >= ARCHIVE_AFTER):
                return
            self._unarchived, self._unarchived_since = 0, None
        self._guard(lambda store: store.archive_sends(self.corp_id))

    def finish(self) -> None:
        """Wait until every record is written (the store may still be away: back off until
        it is back; Ctrl-C stops)."""
        self.archive_due(now=True)
        while True:
            with self._lock:
                if not self.outage.active or self._catch_up() or not self.backlog:
                    return  # (sends kept in the journal are safe: a later run records them)
                wait = max(0.0, (self._retry_at or 0.0) - self.clock())
            self.sleep(wait)

    def check(self, line: Line) -> tuple[str, int | None, str | None] | None:
        """How the store decides `line` without a request (None: send it). A line whose
        msgid comes from the conversation turn gets it here; while the store is away such a
        line fails (which turn it answers cannot be told, and a guess could send twice)."""
        def decide(store: Any) -> tuple[str, int | None, str | None] | None:
            window = store.reply_window(self.corp_id, line.open_kfid, line.customer,
                                        clock=self._clock(store, line.open_kfid), state=False)
            if line.by_turn:
                line.msgid = turn_msgid(line, window.last_msgid if window is not None else "")
                line.by_turn = False
            if store.was_sent(self.corp_id, line.open_kfid, line.msgid):
                return "already_sent", None, self._earlier(store, line)
            refusal = window.refusal(self.now()) if window is not None else None
            if refusal is not None:
                errcode, reason = refusal
                return "skipped", errcode, f"not sent: {reason} ({errcode})"
            return None

        decided = self._guard(decide)
        if decided is None and line.by_turn:
            return "failed", None, ("not sent: the store is away, so which conversation turn "
                                    "this line answers is unknown; run it again once the "
                                    "store is back (or give the line a msgid or reply_to)")
        return decided

    def _clock(self, store: Any, open_kfid: str) -> int:
        """The account's `Store.clock` (WeCom's time as the store knows it), asked again
        after CLOCK_TTL seconds: not a query per line."""
        now = self.clock()
        known = self._clocks.get(open_kfid)
        if known is None or now - known[0] > CLOCK_TTL:
            known = self._clocks[open_kfid] = (now, store.clock(self.corp_id, open_kfid))
        return known[1]

    def _earlier(self, store: Any, line: Line) -> str:
        """Which earlier send `line` matches (its msgid is recorded as sent)."""
        found = store.message(self.corp_id, line.msgid)
        what = ""
        if found is not None:
            try:
                doc = json.loads(found[0].text)
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc["send_time"]))
                body = doc.get(doc.get("msgtype")) or {}
                text = body.get("content") if isinstance(body, dict) else None
                what = f" at {when}" + (f": {text[:60]!r}" if isinstance(text, str) else
                                        f" ({doc.get('msgtype')})")
            except (ValueError, KeyError, TypeError, AttributeError):
                what = ""
        rule = (f"the same reply to {line.reply_to}" if line.reply_to is not None else
                "the same line and text in this turn of the conversation")
        return f"already sent: matches the send of msgid {line.msgid}{what} ({rule})"

    def foreign_reply(self, line: Line) -> str | None:
        """Why `line.reply_to` is not the line's customer's message, per the store (None: it
        is, or the store does not have it). A reply sent to customer B but recorded as
        answering A's message would hand A's message to nobody again (`--ack replies`): a
        confused or prompt-injected bot could silence a customer."""
        reply_to = line.reply_to
        assert reply_to is not None

        def owner(store: Any) -> str | None:
            for msgid in line.answers or (reply_to,):
                problem = self._foreign(store, line, msgid)
                if problem is not None:
                    return problem
            return None

        return self._guard(owner)

    def _foreign(self, store: Any, line: Line, msgid: str) -> str | None:
        found = store.message(self.corp_id, msgid)
        if found is None:
            return None
        try:
            doc = json.loads(found[0].text)
        except ValueError:
            return None
        account, customer = doc.get("open_kfid"), doc.get("external_userid")
        if account != line.open_kfid:
            return (f"line {line.number}: reply_to {msgid} is a message of "
                    f"another account ({account}), not of {line.open_kfid}")
        if customer != line.customer:
            return (f"line {line.number}: reply_to {msgid} is a message of "
                    f"another customer ({customer}), not of {line.customer}")
        return None

    def sent(self, line: Line) -> None:
        """Record a delivered line with its conversation, and the messages it answers as
        replied; while the store is away, in the journal (synced now: a kill loses nothing),
        recorded when it is back."""
        rec = send_record(self.corp_id, line.open_kfid, line.customer, line.msgid,
                          line.msgtype or "", line.content,
                          answered=line.answers or ((line.reply_to,) if line.reply_to else ()))
        later = self.archive_later

        def write(store: Any) -> bool:
            record(store, rec, later=later)
            return True

        if self._guard(write):
            if later:
                with self._lock:
                    self._unarchived += 1
                    self._unarchived_since = self._unarchived_since or self.clock()
                self.archive_due()
            return
        if self.journal is not None:
            try:
                self.journal.keep(rec)
                self.kept += 1
                return
            except OSError:  # the journal's disk is full too: kept in memory, as acks
                pass
        with self._lock:
            self.backlog.append(lambda store: record(store, rec))

    def ack(self, line: Line, status: str) -> None:
        assert line.reply_to is not None
        answers = [a for a in line.answers or (line.reply_to,) if a is not None]
        self._guard(lambda store: store.ack_replies(self.corp_id, line.open_kfid, answers,
                                                     status=status), keep=True)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


@dataclass
class BatchSender:
    """Sends lines with `client`, calling `emit(result)` once per line (from worker threads,
    one at a time)."""

    client: KfClient
    emit: Callable[[dict[str, Any]], None]
    parallel: int = PARALLEL
    summary: Summary = field(default_factory=Summary)
    #: What the message store knows and keeps (`Ledger`): None to send blind.
    ledger: Ledger | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        #: What `emit` raised (stdout closed…): the batch stops, `run` raises it.
        self._failure: BaseException | None = None
        self._stopped = False

    def run(self, lines: Iterable[str]) -> Summary:
        """Send every line of `lines` (read as they come) and wait for the last result."""
        replies: dict[tuple[str, str], int] = {}
        workers: list[tuple[queue.Queue[Any], threading.Thread]] = []
        if self.ledger is not None and self.parallel > 1:
            # Workers archive what was sent together (and when the input is quiet).
            self.ledger.archive_later = True
        if self.parallel > 1:
            for _ in range(self.parallel):
                q: queue.Queue[Any] = queue.Queue(maxsize=64)
                t = threading.Thread(target=self._work, args=(q,), daemon=True)
                t.start()
                workers.append((q, t))
        try:
            for number, text in enumerate(lines, 1):
                if self._failure is not None:
                    break
                if isinstance(text, Unreadable):
                    self._result(number, "", "invalid", None, f"line {number}: {text}")
                    continue
                if not text.strip():
                    continue
                try:
                    line = parse(number, text, replies)
                except (UsageError, KfError) as exc:
                    label = f"line {number}"
                    text = exc.message if exc.message.startswith(label) else \
                        f"{label}: {exc.message}"
                    self._result(number, "", "invalid", None, text)
                    continue
                if not workers:
                    self._send(line)
                    continue
                # One customer's lines always go through the same worker: in order.
                index = zlib.crc32(f"{line.open_kfid}\0{line.customer}".encode()) % len(workers)
                workers[index][0].put(line)
        except BaseException:
            self._stopped = True  # Ctrl-C: the workers finish what they send, then drain
            raise
        finally:
            for q, _ in workers:
                q.put(None)
            for _, t in workers:
                t.join()
        if self._failure is not None:
            raise self._failure
        return self.summary

    def _work(self, q: queue.Queue[Any]) -> None:
        while True:
            try:
                line = q.get(timeout=ARCHIVE_AFTER if self.ledger is not None else None)
            except queue.Empty:  # the input is quiet: what was sent is archived
                assert self.ledger is not None
                self.ledger.archive_due()
                continue
            if line is None:
                return
            if self._failure is not None or self._stopped:
                continue  # after a failure or an interrupt, the rest is only drained
            try:
                self._send(line)
            except BaseException as exc:  # noqa: BLE001 - raised by run(), not lost here
                with self._lock:
                    self._failure = self._failure or exc

    def send(self, line: Line) -> None:
        """Send one line now, on this thread (its result is emitted before it returns)."""
        self._send(line)

    def _send(self, line: Line) -> None:
        if line.reply_to is not None and self.ledger is not None:
            problem = self.ledger.foreign_reply(line)
            if problem is not None:  # refused before any request; nothing recorded
                self._result(line.number, "", "invalid", None, problem)
                return
        if line.no_reply:
            self._ack(line, "no_reply")
            self._result(line.number, "", "skipped", None, "no_reply: nothing sent")
            return
        assert line.msgtype is not None and line.content is not None
        known = self.ledger.check(line) if self.ledger is not None else None
        if known is not None:  # decided from the store, without a request
            status, errcode, reason = known
            if status != "failed":
                self._ack(line, "replied" if status == "already_sent" else "skipped")
            self._result(line.number, "" if status == "failed" else line.msgid, status,
                         errcode, reason)
            return
        try:
            result = self.client.send_message(open_kfid=line.open_kfid,
                                              external_userid=line.customer,
                                              msgtype=line.msgtype, content=line.content,
                                              msgid=line.msgid, record=self.ledger is None)
        except ApiError as exc:
            self._result(line.number, line.msgid, "failed", exc.errcode, exc.message)
            return
        except KfError as exc:  # the network, a broken token cache…: the line may go again
            self._result(line.number, line.msgid, "failed", None, exc.message)
            return
        # Our own retry after a dropped connection can also meet the msgid: that one was
        # delivered by this very send.
        status = "already_sent" if result.already_delivered and not result.retried else "sent"
        if self.ledger is not None:
            self.ledger.sent(line)  # with the messages it answers, in one transaction
        self._result(line.number, result.msgid, status, None,
                     f"already sent: WeCom already has msgid {line.msgid} (an earlier send "
                     "of this line)" if status == "already_sent" else None)

    def _ack(self, line: Line, status: str) -> None:
        if line.reply_to is not None and self.ledger is not None:
            self.ledger.ack(line, status)

    def _result(self, number: int, msgid: str, status: str, errcode: int | None,
                message: str | None) -> None:
        doc: dict[str, Any] = {"line": number, "msgid": msgid or None,
                               "status": "failed" if status == "invalid" else status,
                               "errcode": errcode, "message": message}
        if status == "invalid":
            doc["invalid"] = True
        with self._lock:
            if self._failure is not None:
                return
            setattr(self.summary, status, getattr(self.summary, status) + 1)
            try:
                self.emit(doc)
            except BaseException as exc:  # noqa: BLE001 - handed to run(), raised there
                self._failure = exc


@dataclass(frozen=True)
class Outcome:
    """What became of one reply (`Replier`): `status` is "sent", "already_sent" (an
    earlier send of this very reply was delivered: nothing went out now), "skipped" (not
    sent: the store knows WeCom would refuse it, `errcode` says why; or an
    acknowledgement) or "failed" (`errcode` and `message` from WeCom, or the network)."""

    status: str
    msgid: str | None
    errcode: int | None = None
    message: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status in ("sent", "already_sent")


class Replier:
    """Answers stored customer messages from Python, each at most once (DESIGN.md §11, §13).

    `reply(message, msgtype, content)` sends with a msgid derived from the message answered
    and the reply's position among this object's replies to it, so the same reply sent again
    — by a bot restarted after kill -9, or a retry after a lost answer — is `already_sent`,
    never delivered twice. `acknowledge(message)` records a message deliberately left
    unanswered. Both are recorded in the store, so a `Consumer` with `ack=True` never hands
    them out again, and sends count in the store's reply window (5 per customer message,
    48 h). `message` is a `kfcli.core.Message` (from `Consumer.messages()`).

    Thread-safe: any number of threads may share one; from asyncio use `areply`/
    `aacknowledge` (a worker thread each, so the event loop never blocks).
    """

    def __init__(self, client: KfClient, store: Any, corp_id: str | None = None, *,
                 warn: Callable[[str], None] | None = None) -> None:
        from kfcli.core.sends import SendJournal

        self.ledger = Ledger(lambda: store, corp_id or str(client.corp_id),
                             warn or (lambda _text: None),
                             journal=SendJournal(str(store.display_url)))
        self._sender = BatchSender(client, self._keep, parallel=1, ledger=self.ledger)
        self._replies: dict[tuple[str, str], int] = {}
        self._numbers = 0
        self._lock = threading.Lock()
        self._result = threading.local()

    def reply(self, message: Any, msgtype: str, content: dict[str, Any]) -> Outcome:
        """Send `content` (the object of `msgtype`, as WeCom's send_msg takes it) to the
        customer who wrote `message`, as an answer to it. Invalid content raises
        ValidationError before anything is sent."""
        return self._run({"open_kfid": message.open_kfid,
                          "external_userid": message.external_userid,
                          "msgtype": msgtype, msgtype: content, "reply_to": message.msgid})

    def acknowledge(self, message: Any) -> Outcome:
        """Record that `message` is deliberately left unanswered (nothing is sent)."""
        return self._run({"open_kfid": message.open_kfid,
                          "external_userid": message.external_userid,
                          "reply_to": message.msgid, "no_reply": True})

    async def areply(self, message: Any, msgtype: str, content: dict[str, Any]) -> Outcome:
        import asyncio

        return await asyncio.to_thread(self.reply, message, msgtype, content)

    async def aacknowledge(self, message: Any) -> Outcome:
        import asyncio

        return await asyncio.to_thread(self.acknowledge, message)

    def flush(self) -> None:
        """Wait until every record is in the store (it may have been away for a while)."""
        self.ledger.finish()

    def _run(self, doc: dict[str, Any]) -> Outcome:
        with self._lock:
            self._numbers += 1
            line = parse(self._numbers, json.dumps(doc, ensure_ascii=False), self._replies)
        self._result.doc = None
        self._sender.send(line)
        found: dict[str, Any] = self._result.doc
        if found.get("invalid"):
            raise UsageError(str(found.get("message")))
        return Outcome(found["status"], found.get("msgid"), found.get("errcode"),
                       found.get("message"))

    def _keep(self, doc: dict[str, Any]) -> None:
        self._result.doc = doc  # the sender emits on the thread that sends
