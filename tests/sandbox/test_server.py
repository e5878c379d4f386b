"""The framework: envelopes, routing, methods, JSON errors, files, persistence, logging."""

from __future__ import annotations

import re
import socket
import stat
from pathlib import Path

import requests

from kfcli.sandbox import SandboxServer, start

from .conftest import Client

ERRMSG_RE = re.compile(
    r"^(?P<text>.+), hint: \[\d+_\d+_[0-9a-f]+\], from ip: 127\.0\.0\.1, "
    r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=(?P<code>-?\d+)$"
)


def test_error_envelope_looks_like_wecom(client: Client) -> None:
    response = client.http.get(f"{client.base}/cgi-bin/kf/account/list")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["errcode"] == 41001
    match = ERRMSG_RE.match(answer["errmsg"])
    assert match, answer["errmsg"]
    assert match["code"] == "41001"
    assert set(answer) == {"errcode", "errmsg"}


def test_success_envelope(client: Client) -> None:
    answer = client.post("/cgi-bin/kf/account/list", {})
    assert answer == {"errcode": 0, "errmsg": "ok", "account_list": []}


def test_unknown_api_path_is_http_404_json(client: Client) -> None:
    response = client.http.post(f"{client.base}/cgi-bin/kf/nope", json={})
    assert response.status_code == 404
    answer = response.json()
    assert answer["errcode"] == 404
    assert answer["errmsg"].startswith("sandbox: no such API path /cgi-bin/kf/nope")
    assert client.http.get(f"{client.base}/elsewhere").status_code == 404


def test_wrong_method(client: Client) -> None:
    # GET on a POST-only endpoint: 43002 "require POST method"; the reverse: 43001.
    answer = client.get("/cgi-bin/kf/account/add")
    assert answer["errcode"] == 43002
    assert answer["errmsg"].startswith("require POST method")
    answer = client.http.post(
        f"{client.base}/cgi-bin/gettoken", params={"corpid": "x", "corpsecret": "y"}
    ).json()
    assert answer["errcode"] == 43001


def test_invalid_json_is_47001(client: Client) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'):
        response = client.http.post(
            f"{client.base}/cgi-bin/kf/account/add",
            params={"access_token": client.token()},
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        answer = response.json()
        assert answer["errcode"] == 47001, raw
        assert "Warning: wrong json format." in answer["errmsg"]


def test_empty_post_body_means_empty_object(client: Client) -> None:
    response = client.http.post(
        f"{client.base}/cgi-bin/kf/account/list", params={"access_token": client.token()}
    )
    assert response.json()["errcode"] == 0


def test_wrong_field_types_are_40058(client: Client) -> None:
    answer = client.post("/cgi-bin/kf/account/list", {"limit": "10"})
    assert answer["errcode"] == 40058
    answer = client.post("/cgi-bin/kf/account/list", {"offset": True})
    assert answer["errcode"] == 40058
    answer = client.post("/cgi-bin/kf/account/add", {"name": 5, "media_id": client.image()})
    assert answer["errcode"] == 40058


def test_keep_alive_and_content_length(client: Client) -> None:
    host, port = client.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        stream = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(
                b"POST /cgi-bin/kf/account/list HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            )
            status = stream.readline()
            assert status.startswith(b"HTTP/1.1 200")
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            assert b'"errcode":41001' in body
            assert headers.get("connection", "").lower() != "close"


def test_database_file_is_private(db_path: Path) -> None:
    server = start(db_path)
    server.stop()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_credentials_format(sandbox: SandboxServer) -> None:
    creds = sandbox.credentials
    assert set(creds) == {"corp_id", "secret", "token", "aes_key"}
    assert re.fullmatch(r"ww[0-9a-f]{16}", creds["corp_id"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", creds["secret"])
    assert 1 <= len(creds["token"]) <= 32
    assert re.fullmatch(r"[A-Za-z0-9]{43}", creds["aes_key"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.base_url)


def test_reopening_keeps_credentials_and_state(db_path: Path, tmp_path: Path) -> None:
    first = start(db_path)
    try:
        client = Client(first)
        open_kfid = client.add_account("持久")
        token = client.token()
        client.close()
        creds = first.credentials
    finally:
        first.stop()
    second = start(db_path)
    try:
        assert second.credentials == creds
        client = Client(second)
        client._token = token  # issued by the first server, still valid
        assert [a["open_kfid"] for a in client.accounts()] == [open_kfid]
        client.close()
    finally:
        second.stop()
    other = start(tmp_path / "other.db")
    try:
        assert other.credentials["corp_id"] != creds["corp_id"]
    finally:
        other.stop()


def test_silent_by_default_and_optional_log(db_path: Path, capfd) -> None:
    server = start(db_path)
    try:
        Client(server).accounts()
    finally:
        server.stop()
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""

    lines: list[str] = []
    server = start(db_path, log=lines.append)
    try:
        Client(server).accounts()
    finally:
        server.stop()
    assert any("/cgi-bin/kf/account/list" in line for line in lines)


def test_handler_crash_is_system_busy(client: Client, monkeypatch) -> None:
    from kfcli.sandbox.handlers import account

    def boom(*args: object) -> None:
        raise RuntimeError("simulated bug")

    logged: list[str] = []
    monkeypatch.setattr(account, "_list_accounts", boom)
    monkeypatch.setattr(client.server, "log", logged.append)
    answer = client.post("/cgi-bin/kf/account/list", {})
    assert answer["errcode"] == -1
    assert any("simulated bug" in line for line in logged)


def test_stop_is_idempotent_and_closes_port(db_path: Path) -> None:
    server = start(db_path)
    url = server.base_url
    session = requests.Session()
    assert session.get(f"{url}/sandbox/clock").status_code == 200  # keep-alive connection
    server.stop()
    server.stop()
    try:
        requests.get(f"{url}/sandbox/clock", timeout=2)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("server still answering after stop()")
    session.close()


def test_foreground_server(db_path: Path) -> None:
    import threading

    server = SandboxServer(db_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert requests.get(f"{server.base_url}/sandbox/clock", timeout=5).status_code == 200
    finally:
        server.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_chunked_request_body(client: Client) -> None:
    response = client.http.post(
        f"{client.base}/cgi-bin/kf/account/list",
        params={"access_token": client.token()},
        data=iter([b'{"offset"', b": 0}"]),  # a generator makes requests send chunks
    )
    assert response.json()["errcode"] == 0


def test_oversized_body_is_refused_without_reading_it(client: Client) -> None:
    host, port = client.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /cgi-bin/media/upload?type=file HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 999999999\r\n\r\n"
        )
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in answer


def test_schema_1_database_is_migrated(db_path: Path) -> None:
    import sqlite3

    # Make a database as the first release left it: schema 1, without the session columns
    # and knowledge tables that arrived later, holding a session that is still open.
    server = start(db_path)
    client = Client(server)
    open_kfid = client.add_account()
    user = client.customer(open_kfid)
    server.stop()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.executescript(
        """
        ALTER TABLE sessions DROP COLUMN enter_channels;
        ALTER TABLE sessions DROP COLUMN active_at;
        DROP TABLE knowledge_intents;
        DROP TABLE knowledge_groups;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
        """
    )
    conn.close()

    server = start(db_path)
    try:
        client = Client(server)
        assert client.state(open_kfid, user)["service_state"] == 0  # active_at from the window
        entered = client.ok(
            "POST",
            "/sandbox/enter_session",
            {"open_kfid": open_kfid, "wechat_channels": {"nickname": "n", "scene": 1}},
        )
        assert entered["errcode"] == 0
        groups = client.post("/cgi-bin/kf/knowledge/list_group", {})["group_list"]
        assert [g["name"] for g in groups] == ["默认分组"]
    finally:
        server.stop()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    conn.close()
