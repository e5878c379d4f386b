"""One `KfClient` shared by many threads, against the sandbox over real HTTP.

Every thread checks its own answers (so a response handed to the wrong thread fails the test),
and the sandbox's request counts show how often the token was fetched. Threads start together
at a barrier; nothing here depends on timing.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from kfcli.core import KfClient, RetryPolicy, SendResult
from kfcli.core.tokens import TokenCache

GETTOKEN = "/cgi-bin/gettoken"
SEND = "/cgi-bin/kf/send_msg"
FAST_RETRY = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
# WeCom (and the sandbox) allow 5 replies per customer message: each thread has a customer.


def make_client(sandbox) -> KfClient:
    return KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                    base_url=sandbox.base_url, retry=FAST_RETRY)


def count(sandbox, path: str) -> int:
    return sandbox.stats().get(path, 0)


def in_threads(n: int, work: Callable[[int], object],
               action: Callable[[], None] | None = None) -> list:
    """Run work(i) on n threads started together; their results; re-raise the first failure.

    Given an `action`, it is work(i, middle): a barrier every thread waits on once mid-run,
    and `action` runs when they have all arrived, before any goes on.
    """
    start = threading.Barrier(n)
    middle = threading.Barrier(n, action=action)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i, middle) if action else work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)
            middle.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def test_sixteen_threads_share_one_client_without_mixing_answers(sandbox, home):
    accounts = [sandbox.account(f"Team {n}") for n in range(4)]
    account_of = [accounts[i % len(accounts)] for i in range(16)]
    customer_of = [sandbox.say(account_of[i], f"from thread {i}") for i in range(16)]
    expected_texts = {a: {f"from thread {i}" for i in range(16) if account_of[i] == a}
                      for a in accounts}
    before = count(sandbox, GETTOKEN)
    client = make_client(sandbox)

    def work(i: int) -> list[str]:
        open_kfid, customer = account_of[i], customer_of[i]
        sent = []
        for call in range(13):  # 16 x 13 = 208 calls
            if call % 3 == 0:
                listed = {a.open_kfid for a in client.account_list()}
                assert listed == set(accounts)
            elif call % 3 == 1:
                page = client.sync_msg(open_kfid)
                assert {m["open_kfid"] for m in page.msg_list} == {open_kfid}
                assert {m["text"]["content"] for m in page.msg_list} == \
                    expected_texts[open_kfid]
            else:  # four sends a thread, both kinds of method
                msgid = f"thread-{i}-call-{call}"
                if call % 2:
                    assert client.send_msg(open_kfid=open_kfid, external_userid=customer,
                                           msgtype="text", content={"content": msgid},
                                           msgid=msgid) == msgid
                else:
                    result = client.send_message(open_kfid=open_kfid, external_userid=customer,
                                                 msgtype="text", content={"content": msgid},
                                                 msgid=msgid)
                    assert result == SendResult(msgid, already_delivered=False, retried=False)
                sent.append(msgid)
        return sent

    sent = in_threads(16, work)
    assert count(sandbox, GETTOKEN) - before == 1  # one token for all sixteen threads
    for open_kfid in accounts:
        delivered = [(m["touser"], m["msgid"], m["text"]["content"])
                     for m in sandbox.sent(open_kfid)]
        expected = [(customer_of[i], msgid, msgid) for i in range(16)
                    if account_of[i] == open_kfid for msgid in sent[i]]
        assert sorted(delivered) == sorted(expected) and len(expected) == 16
    # Connections were reused, never more than the calls in flight at once; close() closes
    # them all.
    pool = list(client.http._idle)
    assert 1 <= len(pool) <= 16
    client.close()
    assert all(conn.sock is None for conn in pool) and not client.http._idle


@pytest.mark.filterwarnings("ignore:KfClient.*deprecated:DeprecationWarning")
def test_a_dropped_send_is_reported_to_its_own_thread_only(sandbox, home):
    open_kfid = sandbox.account()
    customers = [sandbox.say(open_kfid, "hello") for _ in range(8)]
    client = make_client(sandbox)
    client.account_list()  # the token, fetched before the race
    sends_before = count(sandbox, SEND)
    # The server delivers the first send that arrives, then drops the connection unanswered.
    sandbox.fault(fault="disconnect", path=SEND)

    def work(i: int) -> list[tuple[SendResult, bool, bool]]:
        outcomes = []
        for n in range(5):
            msgid = f"t{i}-n{n}"
            result = client.send_message(open_kfid=open_kfid, external_userid=customers[i],
                                         msgtype="text", content={"content": msgid},
                                         msgid=msgid)
            assert result.msgid == msgid
            # The deprecated flags are per thread: they describe this thread's send.
            outcomes.append((result, client.already_delivered,
                             client.retried_after_ambiguous))
        return outcomes

    outcomes = [o for per_thread in in_threads(8, work) for o in per_thread]
    flagged = [result for result, _, _ in outcomes if result.retried or
               result.already_delivered]
    # Exactly one send met the fault: retried with the same msgid, found delivered.
    assert len(flagged) == 1
    assert flagged[0].retried and flagged[0].already_delivered
    for result, delivered, retried in outcomes:
        assert (delivered, retried) == (result.already_delivered, result.retried)
    msgids = Counter(m["msgid"] for m in sandbox.sent(open_kfid))
    assert msgids == Counter(f"t{i}-n{n}" for i in range(8) for n in range(5))
    assert count(sandbox, SEND) - sends_before == 40 + 1  # the dropped attempt's retry
    client.close()


def test_expired_token_mid_run_is_fetched_once_for_all_threads(sandbox, home):
    open_kfid = sandbox.account()
    customers = [sandbox.say(open_kfid, "hello") for _ in range(8)]
    client = make_client(sandbox)
    before = count(sandbox, GETTOKEN)

    def work(i: int, middle: threading.Barrier) -> None:
        for _ in range(3):
            client.sync_msg(open_kfid)
        # Every thread has used the token; now WeCom drops it (barrier action), and every
        # thread's next call is rejected with the token all of them hold.
        middle.wait()
        for n in range(3):
            page = client.sync_msg(open_kfid)
            assert sorted(m["external_userid"] for m in page.msg_list) == sorted(customers)
            msgid = f"after-{i}-{n}"
            assert client.send_message(open_kfid=open_kfid, external_userid=customers[i],
                                       msgtype="text", content={"content": "x"},
                                       msgid=msgid).msgid == msgid

    in_threads(8, work, action=lambda: sandbox.fault(fault="expire_tokens"))
    # Exactly: one gettoken before (empty cache) and one after the expiry, not one per thread.
    # This is deterministic: whichever thread sees the rejection first fetches under the
    # token cache's lock; every other thread either waits there and then finds the new token
    # in memory, or already holds it.
    assert count(sandbox, GETTOKEN) - before == 2
    assert len(sandbox.sent(open_kfid)) == 24
    client.close()


def test_token_cache_fetches_once_for_many_threads(tmp_path, monkeypatch):
    """The same guarantee at the token cache itself, with a gettoken that counts calls.

    Threads queue on the in-process lock, so only the one that fetches takes the file lock
    (the others find its token in memory): the file lock is taken once per refresh, not once
    per thread, and nobody polls it.
    """
    import filelock

    calls: list[str] = []
    file_locks: list[str] = []
    lock = threading.Lock()

    def fetch() -> tuple[str, int]:
        with lock:
            calls.append("x")
            return f"token-{len(calls)}", 7200

    class CountingFileLock(filelock.FileLock):
        def __enter__(self):
            file_locks.append(self.lock_file)
            return super().__enter__()

    monkeypatch.setattr(filelock, "FileLock", CountingFileLock)
    cache = TokenCache("ww1", "secret", fetch, directory=tmp_path)
    first = in_threads(16, lambda i: cache.get())
    assert set(first) == {"token-1"} and len(calls) == 1 and len(file_locks) == 1
    # All sixteen see their token rejected at once: one new token between them.
    second = in_threads(16, lambda i: cache.get(rejected="token-1"))
    assert set(second) == {"token-2"} and len(calls) == 2 and len(file_locks) == 2
    # A second cache object of the same app in the same process shares the lock and the file.
    other = TokenCache("ww1", "secret", fetch, directory=tmp_path)
    assert in_threads(4, lambda i: other.get()) == ["token-2"] * 4 and len(calls) == 2

    # Where a thread's token came from is that thread's own: thread 0 fetches, then thread 1
    # takes the token from memory and must not see thread 0's "gettoken".
    def source(i: int, middle: threading.Barrier) -> str:
        if i == 0:
            cache.get(force=True)
        middle.wait()
        if i == 1:
            cache.get()
        return cache.last_source

    assert in_threads(2, source, action=lambda: None) == ["gettoken", "cache"]
    assert len(calls) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection(sandbox, home):
    client = make_client(sandbox)
    client.account_list()
    parent_conn = client.http._conn
    assert parent_conn is not None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        status = 1
        try:
            client.account_list()
            ok = client.http._conn is not None and client.http._conn is not parent_conn
            os.write(write_end, b"ok" if ok else b"reused the parent's connection")
            status = 0
        except BaseException as exc:  # noqa: BLE001
            os.write(write_end, repr(exc).encode()[:500])
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert report == "ok" and os.waitstatus_to_exitcode(status) == 0
    # The parent's keep-alive connection was left alone and is still the one in use.
    client.account_list()
    assert client.http._conn is parent_conn
    client.close()


def test_deprecated_flags_warn_and_client_is_a_context_manager(sandbox, home):
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid, "hello")
    with make_client(sandbox) as client:
        client.send_msg(open_kfid=open_kfid, touser=customer, msgtype="text",
                        content={"content": "a"}, msgid="dup-1")
        assert client.send_message(open_kfid=open_kfid, external_userid=customer,
                                   msgtype="text", content={"content": "a"},
                                   msgid="dup-1") == SendResult("dup-1", True, False)
        with pytest.deprecated_call():
            assert client.already_delivered is True
        with pytest.deprecated_call():
            assert client.retried_after_ambiguous is False
        conn = client.http._conn
    assert conn is not None and conn.sock is None  # closed on leaving the block
