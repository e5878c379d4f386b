"""kfcli from Python (DESIGN §13): a bot on `kfcli.core` alone — Consumer, Replier, PullLoop —
on SQLite and PostgreSQL, from threads and asyncio, exactly once when a bot dies mid-reply
and when examples/library_bot.py is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kfcli.core import Consumer, ConsumerRunning, KfClient, PullLoop, Replier, open_store
from kfcli.core.batch import Ledger
from kfcli.core.pull import Puller

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "examples" / "library_bot.py"


@pytest.fixture
def lib(sandbox, store_env, tmp_path):
    """(client, store URL, environment) for the library and for kfcli commands alike."""
    url = store_env.get("KFCLI_STORE") or str(tmp_path / "store.db")
    client = KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                      base_url=sandbox.base_url)
    yield client, url, {"KFCLI_STORE": url}
    client.close()


class _Sink:
    """A PullLoop sink that keeps nothing: consumers read the store."""

    def write(self, rows, outbox_id):
        pass

    def settle(self):
        pass


def _ingest(client, url: str, open_kfid: str) -> int:
    """Pull the account into the store with the library's pull loop."""
    store = open_store(url)
    try:
        puller = Puller(client, store, client.corp_id, owner=None, owner_prefix="test:",
                        sink=_Sink(), claim=lambda entry: False)
        done = PullLoop(puller).cycle(open_kfid, wait=True)
        assert done is not None
        return done.rows
    finally:
        store.close()


def _answer_all(client, url: str, open_kfid: str, name: str = "bot") -> list[str]:
    """A 10-line bot: answer every customer text, acknowledge the rest; what it answered."""
    store = open_store(url)
    answered = []
    try:
        replier = Replier(client, store)
        with Consumer(store, client.corp_id, name, open_kfid, ack=True) as consumer:
            for message in consumer.messages():
                if message.origin != 3:
                    continue
                if message.msgtype == "text":
                    outcome = replier.reply(message, "text",
                                            {"content": "收到：" + message.body["content"]})
                    assert outcome.delivered, outcome
                    answered.append(message.body["content"])
                else:
                    replier.acknowledge(message)
    finally:
        store.close()
    return answered


def _replies(sandbox, open_kfid: str) -> list[tuple[str, str]]:
    return sorted((m["touser"], m["text"]["content"]) for m in sandbox.sent(open_kfid))


def test_a_library_bot_answers_each_message_once(sandbox, lib):
    client, url, _ = lib
    open_kfid = sandbox.account()
    _answer_all(client, url, open_kfid)  # the consumer starts at the newest message
    sandbox.say(open_kfid, "你好", external_userid="wmA")
    sandbox.say(open_kfid, "退款", external_userid="wmB")
    assert _ingest(client, url, open_kfid) == 2
    assert sorted(_answer_all(client, url, open_kfid)) == ["你好", "退款"]
    assert _replies(sandbox, open_kfid) == [("wmA", "收到：你好"), ("wmB", "收到：退款")]
    # Run again: nothing is handed out, nothing sent.
    assert _answer_all(client, url, open_kfid) == []
    assert len(sandbox.sent(open_kfid)) == 2


def test_a_bot_that_dies_between_sending_and_recording_is_not_answered_twice(
        sandbox, lib, monkeypatch):
    """The bot's thread dies right after WeCom accepted its reply, before the store recorded
    it: the message comes round again, and the same derived msgid is refused by WeCom."""
    client, url, _ = lib
    open_kfid = sandbox.account()
    _answer_all(client, url, open_kfid)
    sandbox.say(open_kfid, "只回一次", external_userid="wmOnce")
    _ingest(client, url, open_kfid)

    class Died(BaseException):
        pass

    def dies(self, line):
        raise Died

    with monkeypatch.context() as m:
        m.setattr(Ledger, "sent", dies)  # records the send and the answered message
        failure: list[BaseException] = []
        thread = threading.Thread(target=lambda: _catch(failure, _answer_all, client, url,
                                                        open_kfid))
        thread.start()
        thread.join()
        assert failure and isinstance(failure[0], Died)
    assert _replies(sandbox, open_kfid) == [("wmOnce", "收到：只回一次")]

    store = open_store(url)
    try:
        replier = Replier(client, store)
        with Consumer(store, client.corp_id, "bot", open_kfid, ack=True) as consumer:
            # (kfcli's own send, recorded with the conversation, comes round too: origin 100)
            (again,) = [m for m in consumer.messages() if m.origin == 3]
            assert again.body["content"] == "只回一次"
            outcome = replier.reply(again, "text", {"content": "second wording"})
            assert outcome.status == "already_sent"
    finally:
        store.close()
    assert _replies(sandbox, open_kfid) == [("wmOnce", "收到：只回一次")]
    assert _answer_all(client, url, open_kfid) == []


def _catch(into: list, fn, *args):
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        into.append(exc)


def test_one_replier_shared_by_threads(sandbox, lib):
    client, url, _ = lib
    open_kfid = sandbox.account()
    _answer_all(client, url, open_kfid)
    for n in range(12):
        sandbox.say(open_kfid, f"q{n}", external_userid=f"wmT{n}")
    _ingest(client, url, open_kfid)
    store = open_store(url)
    try:
        replier = Replier(client, store)
        with Consumer(store, client.corp_id, "bot", open_kfid, ack=True) as consumer:
            messages = list(consumer.messages())
        threads = [threading.Thread(target=replier.reply,
                                    args=(m, "text", {"content": "ok " + m.body["content"]}))
                   for m in messages for _ in range(2)]  # each message answered twice at once
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        store.close()
    sent = _replies(sandbox, open_kfid)
    # Two replies to the same message are reply #1 and #2: both go out, once each.
    assert len(sent) == 24 and len({m["msgid"] for m in sandbox.sent(open_kfid)}) == 24


def test_a_second_consumer_of_the_same_name_is_refused(sandbox, lib):
    client, url, _ = lib
    open_kfid = sandbox.account()
    store = open_store(url)
    try:
        with Consumer(store, client.corp_id, "bot", open_kfid):
            other = Consumer(store, client.corp_id, "bot", open_kfid)
            with pytest.raises(ConsumerRunning, match="already running"):
                other.start()
    finally:
        store.close()


def test_an_asyncio_bot_does_not_block_its_loop(sandbox, lib):
    """`amessages()` follows the store in a worker thread: while it waits, the event loop
    runs another task, which brings in the message the bot then answers."""
    client, url, _ = lib
    open_kfid = sandbox.account()
    _answer_all(client, url, open_kfid)

    async def main() -> list[str]:
        store = open_store(url)
        replier = Replier(client, store)
        got: list[str] = []

        async def customer() -> None:
            await asyncio.to_thread(sandbox.say, open_kfid, "async 你好", "wmAsync")
            await asyncio.to_thread(_ingest, client, url, open_kfid)

        try:
            with Consumer(store, client.corp_id, "abot", open_kfid, ack=True) as consumer:
                writer = asyncio.create_task(customer())
                async for message in consumer.amessages(follow=True, interval=0.05):
                    if message.origin == 3:
                        outcome = await replier.areply(message, "text", {"content": "ok"})
                        assert outcome.status == "sent"
                        got.append(message.body["content"])
                        break
                await writer
        finally:
            store.close()
        return got

    assert asyncio.run(asyncio.wait_for(main(), timeout=120)) == ["async 你好"]
    assert _replies(sandbox, open_kfid) == [("wmAsync", "ok")]


def _wait(check, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.process
def test_the_example_bot_killed_mid_reply_answers_each_message_once(kf, sandbox, lib):
    """examples/library_bot.py, SIGKILLed while WeCom holds its second reply (a sandbox
    delay on send_msg), restarted: every customer gets exactly one answer."""
    client, url, store_env = lib
    open_kfid = sandbox.account()
    env = {**os.environ, **sandbox.env, **store_env}
    customers = [f"wmK{n}" for n in range(3)]

    first = subprocess.Popen([sys.executable, str(BOT), open_kfid], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The consumer exists (it starts at the newest message) before the customers write.
        # (store status exits 3 until the bot's consumer has made the store: reads never do)
        _wait(lambda: (lambda r: r.code == 0 and r.json()["consumers"])(
            kf("store", "status", "-o", "json", env=store_env)), "the bot's consumer")
        for n, who in enumerate(customers):
            sandbox.say(open_kfid, f"问题 {n}", external_userid=who)
        sandbox.fault(fault="delay", path="/cgi-bin/kf/send_msg", seconds=3, after=1)
        before = sandbox.stats().get("/cgi-bin/kf/send_msg", 0)
        assert kf("msg", "sync", open_kfid, env=store_env).code == 0
        # The second reply is in WeCom's hands (held before it takes effect): kill.
        _wait(lambda: sandbox.stats().get("/cgi-bin/kf/send_msg", 0) >= before + 2,
              "the second reply")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    second = subprocess.Popen([sys.executable, str(BOT), open_kfid], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: {to for to, _ in _replies(sandbox, open_kfid)} == set(customers),
              "an answer to every customer")
        sandbox.idle()  # the held reply has taken effect (or was refused)
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(timeout=60)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    assert second.returncode == 0, second.stderr.read().decode()
    assert _replies(sandbox, open_kfid) == [(who, f"收到：问题 {n}")
                                            for n, who in enumerate(customers)]
    # Every message acknowledged: the same consumer started again hands nothing out.
    assert _answer_all(client, url, open_kfid, name="library-bot") == []
    assert len(sandbox.sent(open_kfid)) == 3


def test_a_following_consumer_wakes_at_a_commit_by_another_process(sandbox, lib):
    """Only the store's watch can wake a consumer that looks again every 600 s: SQLite's
    change counter on one host, PostgreSQL's LISTEN/NOTIFY. The test fails (times out)
    without it."""
    client, url, _ = lib
    open_kfid = sandbox.account()
    store = open_store(url)
    got: list = []
    consumer = Consumer(store, client.corp_id, "watcher", open_kfid)
    consumer.start()

    def read() -> None:
        for message in consumer.messages(follow=True, interval=600):
            got.append(message.body["content"])
            return

    reader = threading.Thread(target=read, daemon=True)
    try:
        reader.start()
        sandbox.say(open_kfid, "叫醒", external_userid="wmWake")
        _ingest(client, url, open_kfid)  # another store object: other connections
        reader.join(timeout=120)
        assert got == ["叫醒"]
    finally:
        consumer.close()
        store.close()
