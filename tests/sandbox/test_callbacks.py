"""Encrypted kf_msg_or_event callbacks from the simulator (kf-api.md §4.3-4.4, DESIGN.md §8).

A small HTTP receiver on loopback collects what the simulator POSTs; the callbacks are
opened with `kfcli.core.crypto`, a second implementation of the scheme (interop), and the
simulator's own `cipher` is checked against WeCom's published test vector.
"""

from __future__ import annotations

import base64
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kfcli.core.crypto import WeComCrypto, parse_xml
from kfcli.sandbox import SandboxServer, callbacks, cipher

from .conftest import Client

TOKEN = "QDG6eK"
# WeCom's sample key: its last character carries non-zero pad bits.
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@dataclass
class Captured:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A WeCom callback endpoint stand-in: records every POST, answers as told."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Captured] = queue.Queue()
        self.statuses: list[int] = []  # answers for the next requests, then 200
        self.delays: list[float] = []  # seconds to stall before answering, per request
        self.hold: threading.Event | None = None  # when set up, answers wait for it
        self.holding = 0  # requests waiting for `hold` now
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                split = urlsplit(self.path)
                hold = receiver.hold
                if hold is not None:
                    receiver.holding += 1
                receiver.requests.put(Captured(split.path, parse_qs(split.query),
                                               dict(self.headers), body))
                if hold is not None:
                    hold.wait(60)
                    receiver.holding -= 1
                if receiver.delays:
                    time.sleep(receiver.delays.pop(0))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = b"success" if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the simulator hanging up on a stalled answer is expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/kf/callback"

    def get(self, timeout: float = 5) -> Captured:
        return self.requests.get(timeout=timeout)

    def drain(self) -> list[Captured]:
        got = []
        while True:
            try:
                got.append(self.requests.get_nowait())
            except queue.Empty:
                return got

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callbacks, "RETRY_DELAYS", (0.05, 0.05))


def target(client: Client, url: str, token: str = TOKEN, aes_key: str = AES_KEY) -> None:
    client.ok("POST", "/sandbox/callback", {"url": url, "token": token, "aes_key": aes_key})


def open_callback(server: SandboxServer, got: Captured, token: str = TOKEN,
                  aes_key: str = AES_KEY) -> dict[str, Any]:
    """Verify and decrypt with kfcli.core.crypto; the inner XML's fields."""
    crypto = WeComCrypto(token, aes_key, server.credentials["corp_id"])
    q = {key: values[0] for key, values in got.query.items()}
    inner = crypto.decrypt_post(q["msg_signature"], q["timestamp"], q["nonce"], got.body)
    return parse_xml(inner)


def test_customer_message_fires_a_signed_encrypted_callback(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    target(client, receiver.url)
    answer = client.say(open_kfid, "hello")
    got = receiver.get()
    corp_id = sandbox.credentials["corp_id"]
    now = client.ok("GET", "/sandbox/clock")["now"]

    assert got.path == "/kf/callback"
    assert set(got.query) == {"msg_signature", "timestamp", "nonce"}
    assert all(len(values) == 1 for values in got.query.values())
    assert abs(int(got.query["timestamp"][0]) - now) <= 5
    assert got.query["nonce"][0].isdigit()
    assert got.headers["Content-Type"].startswith("text/xml")
    outer = parse_xml(got.body)
    assert outer["ToUserName"] == corp_id and outer["AgentID"] == ""
    assert set(outer) == {"ToUserName", "Encrypt", "AgentID"}
    assert got.body.startswith(f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>".encode())

    fields = open_callback(sandbox, got)
    assert set(fields) == {"ToUserName", "CreateTime", "MsgType", "Event", "Token", "OpenKfId"}
    assert fields["ToUserName"] == corp_id
    assert abs(int(fields["CreateTime"]) - now) <= 5
    assert fields["MsgType"] == "event"
    assert fields["Event"] == "kf_msg_or_event"
    assert fields["OpenKfId"] == open_kfid
    assert fields["Token"].startswith("ENC") and fields["Token"] != answer["token"]

    page = client.post("/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid,
                                                 "token": fields["Token"]})
    assert page["errcode"] == 0, page
    assert [m["text"]["content"] for m in page["msg_list"]] == ["hello"]
    # The Token expires after 10 minutes like WeCom's (sync_msg answers 95007).
    client.later(601)
    page = client.post("/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid,
                                                 "token": fields["Token"]})
    assert page["errcode"] == 95007
    assert callbacks.wait_delivered(sandbox, 5)
    assert receiver.drain() == []


def test_target_query_is_kept_and_other_credentials_work(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    creds = sandbox.credentials
    target(client, receiver.url + "?app=kf", creds["token"], creds["aes_key"])
    client.ok("POST", "/sandbox/enter_session", {"open_kfid": open_kfid})
    got = receiver.get()
    assert got.query["app"] == ["kf"]
    fields = open_callback(sandbox, got, creds["token"], creds["aes_key"])
    assert fields["OpenKfId"] == open_kfid
    # The wrong Token fails verification: the signature really covers it.
    with pytest.raises(Exception, match="invalid_signature"):
        open_callback(sandbox, got, "other", creds["aes_key"])


def test_servicer_message_fires_a_callback(client: Client, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    external_userid = client.customer(open_kfid)
    userid = client.ok("GET", "/sandbox/directory")["userids"][0]
    client.add_servicers(open_kfid, [userid])
    target(client, receiver.url)
    client.ok("POST", "/sandbox/servicer_message", {
        "open_kfid": open_kfid, "external_userid": external_userid, "userid": userid,
        "text": "on my way"})
    assert receiver.get().path == "/kf/callback"


def test_a_target_without_a_pair_is_signed_with_the_simulators_own(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    client.ok("POST", "/sandbox/callback", {"url": receiver.url})
    client.say(open_kfid)
    own = sandbox.credentials
    fields = open_callback(sandbox, receiver.get(), own["token"], own["aes_key"])
    assert fields["OpenKfId"] == open_kfid


def test_no_target_no_callback_and_off_stops_them(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    client.say(open_kfid)
    assert callbacks.wait_delivered(sandbox, 5)
    target(client, receiver.url)
    client.say(open_kfid)
    receiver.get()
    client.ok("POST", "/sandbox/callback", {"url": ""})
    client.say(open_kfid)
    assert callbacks.wait_delivered(sandbox, 5)
    time.sleep(0.1)
    assert receiver.drain() == []


def test_receiver_down_does_not_hurt_and_later_messages_deliver(
        client: Client, sandbox: SandboxServer, receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    open_kfid = client.add_account()
    target(client, dead)
    client.say(open_kfid, "nobody hears this")
    assert callbacks.wait_delivered(sandbox, 10)
    assert "failed after 3 attempts" in caplog.text
    assert dead in caplog.text and "msg_signature" not in caplog.text

    target(client, receiver.url)
    client.say(open_kfid, "now someone does")
    fields = open_callback(sandbox, receiver.get())
    page = client.post("/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid,
                                                 "token": fields["Token"]})
    assert [m["text"]["content"] for m in page["msg_list"]] == [
        "nobody hears this", "now someone does"]


def test_retried_after_a_500_with_the_same_callback(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    target(client, receiver.url)
    receiver.statuses = [500]
    client.say(open_kfid)
    first, second = receiver.get(), receiver.get()
    assert (first.query, first.body) == (second.query, second.body)
    assert open_callback(sandbox, second)["OpenKfId"] == open_kfid
    assert callbacks.wait_delivered(sandbox, 5)
    assert receiver.drain() == []


def test_three_attempts_in_all(client: Client, sandbox: SandboxServer, receiver: Receiver,
                               caplog: pytest.LogCaptureFixture) -> None:
    open_kfid = client.add_account()
    target(client, receiver.url)
    receiver.statuses = [500, 503, 502, 500]
    client.say(open_kfid)
    assert callbacks.wait_delivered(sandbox, 10)
    assert len(receiver.drain()) == 3
    assert "HTTP 502" in caplog.text
    client.say(open_kfid)  # the next message gets its own callback (answered 500 once more)
    assert callbacks.wait_delivered(sandbox, 10)
    assert len(receiver.drain()) == 2


def test_a_stalled_receiver_times_out_and_is_retried(
        client: Client, sandbox: SandboxServer, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callbacks, "TIMEOUT", 0.3)
    open_kfid = client.add_account()
    target(client, receiver.url)
    receiver.delays = [1.0]
    client.say(open_kfid)
    assert callbacks.wait_delivered(sandbox, 10)
    assert len(receiver.drain()) == 2


def test_delivery_never_blocks_and_bursts_coalesce(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    target(client, receiver.url)
    receiver.hold = threading.Event()
    for n in range(20):
        client.say(open_kfid, f"burst {n}")
    # The receiver holds the first callback, and still does: the requests did not wait for
    # it (had they, they would have returned only once the hold timed out).
    receiver.get()
    assert receiver.holding == 1
    receiver.hold.set()
    assert callbacks.wait_delivered(sandbox, 10)
    # The 19 messages that came while the first callback was held share one more.
    assert len(receiver.drain()) <= 2


def test_seeding_5000_messages_fires_a_handful(
        client: Client, sandbox: SandboxServer, receiver: Receiver) -> None:
    open_kfid = client.add_account()
    other = client.add_account("其他")
    target(client, receiver.url)
    client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 5000})
    client.say(other)
    assert callbacks.wait_delivered(sandbox, 10)
    got = [receiver.get()] + receiver.drain()
    assert 2 <= len(got) <= 4
    by_account = {open_callback(sandbox, g)["OpenKfId"] for g in got}
    assert by_account == {open_kfid, other}  # each account hears about its own news


def test_a_bad_stored_target_is_logged_not_fatal(
        client: Client, sandbox: SandboxServer, receiver: Receiver, db,
        caplog: pytest.LogCaptureFixture) -> None:
    open_kfid = client.add_account()
    target(client, receiver.url)
    db.execute("UPDATE meta SET value = 'not-a-key' WHERE key = 'callback_aes_key'")
    client.say(open_kfid)
    assert callbacks.wait_delivered(sandbox, 5)
    assert "not sent" in caplog.text and receiver.drain() == []
    target(client, receiver.url)
    client.say(open_kfid)
    assert open_callback(sandbox, receiver.get())["OpenKfId"] == open_kfid


# --- the simulator's own cipher against WeCom's published vector (kf-api.md §4.4) ---------

VECTOR = {
    "token": "QDG6eK",
    "aes_key": AES_KEY,
    "receive_id": "wx5823bf96d3bd56c7",
    "timestamp": "1409659813",
    "nonce": "1372623149",
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "encrypt": (
        "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qc"
        "zcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs"
        "8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4"
        "zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMN"
        "S0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDA"
        "Ve0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
    ),
}


def test_cipher_signature_matches_the_vector() -> None:
    v = VECTOR
    assert cipher.sign(v["token"], v["timestamp"], v["nonce"], v["encrypt"]) == \
        v["msg_signature"]


def test_cipher_reproduces_the_vector_byte_for_byte() -> None:
    from Crypto.Cipher import AES

    v = VECTOR
    key = cipher.aes_key(v["aes_key"])
    assert len(key) == 32
    plain = AES.new(key, AES.MODE_CBC, iv=key[:16]).decrypt(base64.b64decode(v["encrypt"]))
    length = int.from_bytes(plain[16:20], "big")
    message = plain[20:20 + length]
    assert b"<Content><![CDATA[hello]]></Content>" in message
    again = cipher.encrypt(v["aes_key"], message, v["receive_id"], random_prefix=plain[:16])
    assert again == v["encrypt"]


def test_cipher_pads_to_32_bytes_and_interoperates() -> None:
    corp_id = "ww0123456789abcdef"
    crypto = WeComCrypto(TOKEN, AES_KEY, corp_id)
    for size in (0, 1, 31, 32 - 20 - len(corp_id) + 32, 100, 4096):
        message = bytes(range(256))[:size] if size <= 256 else b"x" * size
        encrypted = cipher.encrypt(AES_KEY, message, corp_id)
        raw = base64.b64decode(encrypted)
        assert len(raw) % 32 == 0
        assert crypto.decrypt(encrypted) == message
    # A plaintext that is already a multiple of 32 bytes gets a whole block of padding.
    message = b"m" * (64 - 20 - len(corp_id))
    assert len(base64.b64decode(cipher.encrypt(AES_KEY, message, corp_id))) == 96
    for bad in ("short", "+" * 43, "é" * 43):
        with pytest.raises(ValueError):
            cipher.aes_key(bad)
