"""The library surface of `KfClient`: keyword ids, the context manager, `from_profile`, and
the promise that every exception a call raises is a `KfError` — against the sandbox over real
HTTP, and against servers that answer garbage, drop the connection mid-response or do not
speak HTTP at all."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from kfcli.core.client import KfClient, RetryPolicy, Timeout
from kfcli.core.errors import (
    ConfigError,
    KfError,
    NetworkError,
    ResponseError,
    UsageError,
    ValidationError,
)

FAST = RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.002)
SEND = "/cgi-bin/kf/send_msg"


def client_for(sandbox, **kwargs) -> KfClient:
    return KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                    base_url=sandbox.base_url, retry=FAST, **kwargs)


@pytest.fixture
def chat(sandbox, home):
    open_kfid = sandbox.account()
    return open_kfid, sandbox.say(open_kfid, "你好")


# ---------------------------------------------------------------------- keyword-only ids


def test_ids_are_keyword_only(sandbox, chat):
    open_kfid, customer = chat
    with client_for(sandbox) as client:
        # The old order (touser, open_kfid, ...) was the reverse of the CLI's: now a
        # positional call cannot even be made.
        with pytest.raises(TypeError):
            client.send_msg(customer, open_kfid, "text", {"content": "x"})  # type: ignore[misc]
        with pytest.raises(TypeError):
            client.service_state_get(open_kfid, customer)  # type: ignore[misc]
        with pytest.raises(TypeError):
            client.upgrade_service(open_kfid, customer, member_userid="u")  # type: ignore[misc]
        assert sandbox.sent(open_kfid) == []

        msgid = client.send_msg(open_kfid=open_kfid, external_userid=customer, msgtype="text",
                                content={"content": "hi"})
        result = client.send_message(open_kfid=open_kfid, touser=customer, msgtype="text",
                                     content={"content": "again"}, msgid="lib-1")
        state = client.service_state_get(open_kfid=open_kfid, external_userid=customer)
    sent = sandbox.sent(open_kfid)
    assert [m["msgid"] for m in sent] == [msgid, "lib-1"] and result.msgid == "lib-1"
    assert all(m["touser"] == customer for m in sent)
    assert state.service_state == 1  # answered by the API: the assistant has it


def test_customer_must_be_named_once(sandbox, chat):
    open_kfid, customer = chat
    with client_for(sandbox) as client:
        with pytest.raises(UsageError, match="external_userid="):
            client.send_msg(open_kfid=open_kfid, msgtype="text", content={"content": "x"})
        with pytest.raises(UsageError, match="not two different"):
            client.send_msg(open_kfid=open_kfid, external_userid=customer, touser="wmOther",
                            msgtype="text", content={"content": "x"})
    assert sandbox.sent(open_kfid) == []


def test_bad_input_is_a_validation_error_and_sends_nothing(sandbox, chat):
    open_kfid, customer = chat
    before = sandbox.stats()
    with client_for(sandbox) as client:
        cases: list[Callable[[], object]] = [
            lambda: client.send_msg(open_kfid=open_kfid, external_userid=customer,
                                    msgtype="text", content="str"),  # type: ignore[arg-type]
            lambda: client.send_msg(open_kfid=open_kfid, external_userid=customer,
                                    msgtype="msgmenu", content=[]),  # type: ignore[arg-type]
            lambda: client.send_msg(open_kfid=None, external_userid=customer,  # type: ignore
                                    msgtype="text", content={"content": "x"}),
            lambda: client.upgrade_service(open_kfid=open_kfid, external_userid=customer,
                                           member_userid=""),
            lambda: client.upgrade_service(open_kfid=open_kfid, external_userid=customer,
                                           chat_id="  "),
            lambda: client.servicer_add(open_kfid=open_kfid, userids="zhangsan"),
            lambda: client.customer_batchget("wmA"),
            lambda: client.account_add(" ", "media"),
            lambda: client.knowledge_intent_add("g", "q", "a"),  # type: ignore[arg-type]
            lambda: client.call("POST", "/cgi-bin/kf/account/list", {"x": {1, 2}}),
        ]
        for case in cases:
            with pytest.raises(ValidationError):
                case()
    assert sandbox.stats() == before


def test_menu_errors_carry_a_json_path(sandbox, chat):
    open_kfid, customer = chat
    with client_for(sandbox) as client, pytest.raises(ValidationError) as exc:
        client.send_msg(open_kfid=open_kfid, external_userid=customer, msgtype="msgmenu",
                        content={"list": [{"type": "click", "click": {"id": "1",
                                                                      "content": "a"}},
                                          {"type": "bogus"}]})
    assert str(exc.value) == ("msgmenu.list[1].type: 'bogus' is not one of click, view, "
                              "miniprogram, text")


# ---------------------------------------------------------------------- lifetime, profiles


def test_context_manager_closes_the_pool(sandbox, home):
    with client_for(sandbox) as client:
        assert list(client.iter_accounts()) == []
        conn = client.http._conn
        assert conn is not None and conn.sock is not None  # kept alive for the next call
    assert conn.sock is None
    client.close()  # idempotent
    assert list(client.iter_accounts()) == []  # a closed client opens a new connection
    client.close()


def test_from_profile_resolves_like_the_cli(sandbox, home, monkeypatch):
    from kfcli.core.config import ConfigFile

    cfg = ConfigFile.load()
    cfg.profiles["sb"] = {"corp_id": sandbox.creds["corp_id"],
                          "secret": sandbox.creds["secret"], "base_url": sandbox.base_url}
    cfg.save()
    # A named profile beats the credential variables (as `kfcli -p sb` does).
    monkeypatch.setenv("KFCLI_CORP_ID", "wwSomeoneElse")
    monkeypatch.setenv("KFCLI_SECRET", "not-the-secret")
    with KfClient.from_profile("sb", retry=FAST) as client:
        assert client.corp_id == sandbox.creds["corp_id"]
        assert client.base_url == sandbox.base_url
        assert list(client.iter_accounts()) == []
    # Without a name: KFCLI_PROFILE, then the environment, as the CLI resolves it.
    monkeypatch.setenv("KFCLI_PROFILE", "sb")
    monkeypatch.delenv("KFCLI_CORP_ID")
    monkeypatch.delenv("KFCLI_SECRET")
    with KfClient.from_profile(timeout=Timeout(connect=1, read=5)) as client:
        assert client.corp_id == sandbox.creds["corp_id"] and client.timeout.read == 5
    with pytest.raises(ConfigError):
        KfClient.from_profile("nosuchprofile")
    monkeypatch.delenv("KFCLI_PROFILE")
    with pytest.raises(ConfigError):  # nothing configured for the implicit default
        KfClient.from_profile()


def test_bad_base_url_and_credentials_fail_at_construction(home):
    for url in ("ftp://x", "http://", "http://host:99999", "not a url"):
        with pytest.raises(ConfigError):
            KfClient("ww1", "s", base_url=url)
    with pytest.raises(ConfigError):
        KfClient("", "s")


# ---------------------------------------------------------------------- only KfError escapes


class RawServer:
    """A TCP server on loopback that answers every connection with `reply(request)`: raw
    bytes written as they are (or None: close without a word)."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    request = _read_request(conn)
                    self.requests.append(request)
                    answer = self.reply(request)
                    if answer:
                        conn.sendall(answer)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def http(body: bytes, *, status: str = "200 OK", ctype: str = "application/json",
         headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{headers}\r\n").encode() + body


TOKEN = http(b'{"errcode": 0, "access_token": "tok-123", "expires_in": 7200}')


def after_token(answer: bytes | None) -> Callable[[bytes], bytes | None]:
    """A valid gettoken, then `answer` for every API call."""
    return lambda request: TOKEN if b"/cgi-bin/gettoken" in request else answer


#: name -> (how the server answers, the KfError subclass the client must raise)
MISBEHAVING: dict[str, tuple[Callable[[bytes], bytes | None], type[KfError]]] = {
    "closes without answering": (lambda r: None, NetworkError),
    "not HTTP (an SSH banner)": (lambda r: b"SSH-2.0-OpenSSH_9.6\r\n", NetworkError),
    "binary garbage": (lambda r: b"\x00\x01\x02\xff garbage\r\n\r\n", NetworkError),
    "closes mid-response": (
        lambda r: b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500\r\n\r\n{\"errcode\": 0, \"acc", NetworkError),
    # http.client takes EOF in the headers as their end (and an empty body): not JSON.
    "closes mid-headers": (lambda r: b"HTTP/1.1 200 OK\r\nContent-Ty", ResponseError),
    "a broken chunked body": (
        lambda r: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        NetworkError),
    "a header line of 100 kB": (
        lambda r: b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", NetworkError),
    "HTTP 502 from a proxy": (lambda r: http(b"<html>bad gateway</html>",
                                             status="502 Bad Gateway", ctype="text/html"),
                              NetworkError),
    "an HTML page": (lambda r: http(b"<html>login</html>", ctype="text/html"), ResponseError),
    "not UTF-8": (lambda r: http(b'{"errcode": 0, "x": "\xff\xfe"}'), ResponseError),
    "a JSON array": (lambda r: http(b"[1, 2, 3]"), ResponseError),
    "JSON nested too deeply": (lambda r: http(b"[" * 200_000), ResponseError),
    "a token without access_token": (lambda r: http(b'{"errcode": 0}'), ResponseError),
    "a string errcode": (lambda r: http(b'{"errcode": "0", "access_token": "t"}'),
                         ResponseError),
    "lists of the wrong shape": (
        after_token(http(b'{"errcode": 0, "account_list": "x", "servicer_list": [1],'
                         b' "statistic_list": {"a": 1}, "customer_list": 5,'
                         b' "msg_list": [[]], "group_list": "g", "service_state": "x"}')),
        ResponseError),
    "fields of the wrong type": (
        after_token(http(b'{"errcode": 0, "open_kfid": {"a": 1}, "url": [],'
                         b' "service_state": "busy", "result_list": [{"errcode": "x"}]}')),
        ResponseError),
}


def every_call(client: KfClient) -> list[tuple[str, Callable[[], object]]]:
    """One call of each kind: reads, writes, sends, uploads, downloads, pages."""
    return [
        ("access_token", lambda: client.access_token(refresh=True)),
        ("account_list", lambda: client.account_list()),
        ("account_add", lambda: client.account_add("Support", "media-1")),
        ("add_contact_way", lambda: client.add_contact_way("wk1")),
        ("servicer_list", lambda: client.servicer_list("wk1")),
        ("servicer_add", lambda: client.servicer_add(open_kfid="wk1", userids=["u1"])),
        ("service_state_get", lambda: client.service_state_get(open_kfid="wk1",
                                                               external_userid="wm1")),
        ("send_msg", lambda: client.send_msg(open_kfid="wk1", external_userid="wm1",
                                             msgtype="text", content={"content": "x"})),
        ("sync_msg", lambda: client.sync_msg("wk1")),
        ("sync_msg keep_text", lambda: client.sync_msg("wk1", keep_text=True)),
        ("customer_batchget", lambda: client.customer_batchget(["wm1"])),
        ("corp_statistic", lambda: client.corp_statistic("wk1", 0, 86400)),
        ("knowledge_groups", lambda: list(client.knowledge_groups())),
        ("media_get", lambda: client.media_get("m1")),
        ("call", lambda: client.call("GET", "/cgi-bin/kf/get_corp_qualification")),
    ]


@pytest.fixture(params=list(MISBEHAVING), ids=list(MISBEHAVING))
def misbehaving(request, home) -> Iterator[tuple[RawServer, type[KfError]]]:
    reply, expected = MISBEHAVING[request.param]
    server = RawServer(reply)
    try:
        yield server, expected
    finally:
        server.close()


def test_only_kferror_escapes_from_a_misbehaving_server(misbehaving):
    server, expected = misbehaving
    client = KfClient("ww1", "secret-1", base_url=server.url, retry=FAST,
                      timeout=Timeout(connect=2, read=2))
    # A wrongly shaped answer fails only the calls that read the wrong field; any other
    # misbehaviour fails every call.
    answers_tokens = server.reply(b"GET /cgi-bin/gettoken") is TOKEN
    every_one_fails = not (expected is ResponseError and answers_tokens)
    failures = []
    with client:
        for name, call in every_call(client):
            try:
                call()
            except KfError as exc:
                failures.append(exc)
                assert isinstance(exc, (expected, ResponseError)), (name, exc)
                assert exc.message and "secret-1" not in str(exc), (name, exc)
            except Exception as exc:  # noqa: BLE001 - exactly what must never happen
                pytest.fail(f"{name} raised {type(exc).__name__}: {exc}")
            else:
                assert not every_one_fails, f"{name} succeeded"
    assert failures and any(isinstance(exc, expected) for exc in failures)
    assert server.requests  # the failures came from the server, not from a local check


def test_non_http_answers_are_not_retried(home):
    server = RawServer(lambda r: b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        client = KfClient("ww1", "s", base_url=server.url,
                          retry=RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.002))
        with client, pytest.raises(NetworkError, match="not valid HTTP") as exc:
            client.account_list()
        assert exc.value.exit_code == 6 and "base_url" in exc.value.message
        assert len(server.requests) == 1  # the same port will not learn HTTP on a retry
    finally:
        server.close()


def test_a_dropped_connection_after_an_unsafe_write_says_so(sandbox, home):
    sandbox.fault(fault="disconnect", path="/cgi-bin/kf/account/add")
    media = sandbox.upload()
    with client_for(sandbox) as client, pytest.raises(NetworkError) as exc:
        client.account_add("Support", media)
    assert "may have reached WeCom" in (exc.value.hint or "")


def test_tls_to_a_plain_http_port_is_a_network_error(sandbox, home):
    url = sandbox.base_url.replace("http://", "https://")
    with KfClient("ww1", "s", base_url=url, retry=FAST) as client, \
            pytest.raises(NetworkError, match="TLS"):
        client.account_list()


def test_an_unusable_host_name_is_a_network_error(home):
    # A DNS label longer than 63 characters cannot even be encoded (UnicodeError in IDNA).
    client = KfClient("ww1", "s", base_url="http://" + "a" * 64 + ".example", retry=FAST)
    with client, pytest.raises(NetworkError, match="cannot connect"):
        client.account_list()


def test_a_refused_connection_is_a_network_error(home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with KfClient("ww1", "s", base_url=f"http://127.0.0.1:{port}", retry=FAST) as client, \
            pytest.raises(NetworkError, match="unreachable"):
        client.account_list()


def test_an_unusable_token_cache_never_escapes_as_oserror(sandbox, home, monkeypatch):
    blocker = home / "not-a-directory"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with client_for(sandbox) as client:  # the cache is skipped (with a warning): calls work
        assert client.account_list() == []

    class BrokenCache:  # a cache of the caller's own that fails with an OSError
        path = home / "tokens.json"

        def get(self, **kwargs):
            raise PermissionError(13, "Permission denied", str(self.path))

    client = client_for(sandbox, token_cache=BrokenCache())
    with client, pytest.raises(ConfigError, match="token cache") as exc:
        client.account_list()
    assert "Permission denied" in exc.value.message


def test_media_filename_in_chinese_comes_from_the_rfc_6266_form(sandbox) -> None:
    """WeCom (and the simulator) send `filename*=UTF-8''…` for names that are not ASCII."""
    import base64

    from kfcli.core import KfClient

    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/customer_message", {
        "open_kfid": open_kfid, "msgtype": "file", "filename": "报告 2026.txt",
        "media_base64": base64.b64encode("退款说明\n".encode()).decode()})
    assert doc["errcode"] == 0, doc
    with KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                  base_url=sandbox.base_url) as client:
        data, _, filename = client.media_get(doc["media_id"])
    assert (data.decode(), filename) == ("退款说明\n", "报告 2026.txt")


@pytest.mark.parametrize(("header", "name"), [
    ('attachment; filename="quote;v2 final.pdf"', "quote;v2 final.pdf"),
    ('attachment; filename="say \\"hi\\".txt"', 'say "hi".txt'),
    ("attachment; filename=plain.txt", "plain.txt"),
    ("attachment; filename=\"x.txt\"; filename*=UTF-8''%E6%8A%A5.txt", "报.txt"),
    ("attachment", ""),
])
def test_media_filenames_with_separators_in_quotes(header, name) -> None:
    from kfcli.core.client import _disposition_filename

    assert _disposition_filename(header) == name


def test_a_downloaded_file_name_with_a_semicolon_is_kept(sandbox, tmp_path) -> None:
    import base64

    from kfcli.core import KfClient

    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/customer_message", {
        "open_kfid": open_kfid, "msgtype": "file", "filename": "quote;v2 final.pdf",
        "media_base64": base64.b64encode(b"%PDF-1.4 tiny").decode()})
    assert doc["errcode"] == 0, doc
    with KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                  base_url=sandbox.base_url) as client, open(tmp_path / "f", "w+b") as sink:
        size, _, filename = client.media_download(doc["media_id"], sink)
        sink.seek(0)
        assert (sink.read(), size, filename) == (b"%PDF-1.4 tiny", 13, "quote;v2 final.pdf")


def test_result_types_are_dataclasses_python_code_can_convert():
    """The library's result types stay dataclasses: integrators `asdict()` and `replace()`
    them (a start-up shortcut that imitated dataclasses broke both)."""
    import dataclasses

    from kfcli.core import models
    from kfcli.core.client import RetryPolicy, Timeout

    for cls in (models.Account, models.SendResult, models.Servicer, models.SyncPage,
                RetryPolicy, Timeout):
        assert dataclasses.is_dataclass(cls), cls
    account = models.Account(open_kfid="wkA", name="Support", avatar="")
    assert dataclasses.asdict(account)["open_kfid"] == "wkA"
    assert dataclasses.replace(account, name="Sales").name == "Sales"
