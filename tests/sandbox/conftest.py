"""Fixtures for the simulator's tests: a server on a fresh database and an HTTP client.

Everything goes over real HTTP on loopback with `requests`, as kfcli itself talks to the
simulator. Some tests also open the SQLite file directly to see what a request stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kfcli.sandbox import SandboxServer, start

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
AMR = b"#!AMR\n" + bytes(range(256)) * 4
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 4


class Client:
    """A small WeCom-style client for the tests (deliberately not kfcli.core)."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.base = server.base_url
        self.http = requests.Session()
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    # --- WeCom API ----------------------------------------------------------------------

    def gettoken(self, **params: str) -> dict[str, Any]:
        creds = self.server.credentials
        query = {"corpid": creds["corp_id"], "corpsecret": creds["secret"], **params}
        return self.http.get(f"{self.base}/cgi-bin/gettoken", params=query).json()

    def token(self, refresh: bool = False) -> str:
        if self._token is None or refresh:
            answer = self.gettoken()
            assert answer["errcode"] == 0, answer
            self._token = answer["access_token"]
        return self._token

    def post(self, path: str, body: Any = None, **query: Any) -> dict[str, Any]:
        query.setdefault("access_token", self.token())
        response = self.http.post(f"{self.base}{path}", params=query, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        query.setdefault("access_token", self.token())
        response = self.http.get(f"{self.base}{path}", params=query)
        assert response.status_code == 200, response.text
        return response.json()

    def upload(
        self,
        data: bytes,
        media_type: str = "image",
        filename: str = "a.png",
        field: str = "media",
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        response = self.http.post(
            f"{self.base}/cgi-bin/media/upload",
            params={"access_token": self.token(), "type": media_type},
            files={field: (filename, data, content_type)},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def image(self) -> str:
        answer = self.upload(PNG)
        assert answer["errcode"] == 0, answer
        return answer["media_id"]

    def add_account(self, name: str = "客服", media_id: str | None = None) -> str:
        answer = self.post(
            "/cgi-bin/kf/account/add", {"name": name, "media_id": media_id or self.image()}
        )
        assert answer["errcode"] == 0, answer
        return answer["open_kfid"]

    def accounts(self) -> list[dict[str, Any]]:
        answer = self.post("/cgi-bin/kf/account/list", {})
        assert answer["errcode"] == 0, answer
        return answer["account_list"]

    # --- control ------------------------------------------------------------------------

    def control(self, method: str, path: str, body: Any = None, **query: Any) -> requests.Response:
        return self.http.request(method, f"{self.base}{path}", json=body, params=query)

    def ok(self, method: str, path: str, body: Any = None, **query: Any) -> dict[str, Any]:
        response = self.control(method, path, body, **query)
        assert response.status_code == 200, response.text
        return response.json()

    def advance(self, seconds: float) -> None:
        self.ok("POST", "/sandbox/clock", {"advance": seconds})

    def later(self, seconds: float) -> None:
        """Move the simulator clock and fetch a fresh access token (the old one may expire)."""
        self.advance(seconds)
        self._token = None

    def say(self, open_kfid: str, text: str = "hi", external_userid: str | None = None) -> dict:
        """A customer message (POST /sandbox/customer_message); returns the control answer."""
        body = {"open_kfid": open_kfid, "text": text}
        if external_userid is not None:
            body["external_userid"] = external_userid
        return self.ok("POST", "/sandbox/customer_message", body)

    def customer(self, open_kfid: str, external_userid: str | None = None) -> str:
        """A customer who has just written to ``open_kfid`` (session in state 0)."""
        return self.say(open_kfid, "hi", external_userid)["external_userid"]

    def add_servicers(
        self, open_kfid: str, userids: list[str] = (), departments: list[int] = ()
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"open_kfid": open_kfid}
        if userids:
            body["userid_list"] = list(userids)
        if departments:
            body["department_id_list"] = list(departments)
        answer = self.post("/cgi-bin/kf/servicer/add", body)
        assert answer["errcode"] == 0, answer
        return answer["result_list"]

    def state(self, open_kfid: str, external_userid: str) -> dict[str, Any]:
        body = {"open_kfid": open_kfid, "external_userid": external_userid}
        return self.post("/cgi-bin/kf/service_state/get", body)

    def trans(
        self, open_kfid: str, external_userid: str, state: int, servicer: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": state,
        }
        if servicer is not None:
            body["servicer_userid"] = servicer
        return self.post("/cgi-bin/kf/service_state/trans", body)

    def send_text(
        self, open_kfid: str, touser: str, content: str = "hello", **extra: Any
    ) -> dict[str, Any]:
        body = {
            "touser": touser,
            "open_kfid": open_kfid,
            "msgtype": "text",
            "text": {"content": content},
            **extra,
        }
        return self.post("/cgi-bin/kf/send_msg", body)

    def sent(self, open_kfid: str) -> list[dict[str, Any]]:
        return self.ok("GET", "/sandbox/sent_messages", open_kfid=open_kfid)["messages"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sandbox" / "s.db"


@pytest.fixture
def sandbox(db_path: Path) -> Iterator[SandboxServer]:
    server = start(db_path)
    yield server
    server.stop()


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[Client]:
    c = Client(sandbox)
    yield c
    c.close()


@pytest.fixture
def db(db_path: Path, sandbox: SandboxServer) -> Iterator[sqlite3.Connection]:
    """A direct read connection to the server's database file."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()
