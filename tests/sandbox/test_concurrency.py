"""Several servers (threads and processes) sharing one database file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kfcli.sandbox import SandboxServer, start

from .conftest import Client

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair(db_path: Path) -> Iterator[tuple[SandboxServer, SandboxServer]]:
    first = start(db_path)
    second = start(db_path)
    yield first, second
    first.stop()
    second.stop()


def test_token_from_one_server_works_on_the_other(pair) -> None:
    first, second = pair
    a, b = Client(first), Client(second)
    assert first.credentials == second.credentials
    b._token = a.token()
    assert b.accounts() == []
    assert b.gettoken()["access_token"] == a.token()


def test_concurrent_gettoken_yields_one_token(pair) -> None:
    clients = [Client(server) for server in pair for _ in range(4)]
    tokens: list[str] = []
    lock = threading.Lock()

    def fetch(client: Client) -> None:
        token = client.gettoken()["access_token"]
        with lock:
            tokens.append(token)

    threads = [threading.Thread(target=fetch, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 8 and len(set(tokens)) == 1


def test_concurrent_adds_from_both_servers_all_land(pair) -> None:
    first, second = pair
    media_id = Client(first).image()
    errors: list[object] = []

    def add_many(server: SandboxServer, worker: int) -> None:
        client = Client(server)
        for n in range(10):
            answer = client.post(
                "/cgi-bin/kf/account/add", {"name": f"w{worker}-{n}", "media_id": media_id}
            )
            if answer["errcode"] != 0:
                errors.append(answer)
        client.close()

    threads = [threading.Thread(target=add_many, args=(pair[i % 2], i)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = [a["name"] for a in Client(second).accounts()]
    assert sorted(names) == sorted(f"w{w}-{n}" for w in range(6) for n in range(10))


_CHILD = """
import json, sys
from kfcli.sandbox import SandboxServer
srv = SandboxServer(sys.argv[1])
print(json.dumps({"base_url": srv.base_url}), flush=True)
try:
    srv.serve_forever()
finally:
    srv.stop()
"""


@pytest.mark.process
def test_another_process_on_the_same_file(db_path: Path, sandbox: SandboxServer) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        base_url = json.loads(child.stdout.readline())["base_url"]
        here = Client(sandbox)
        token = here.token()
        there = requests.Session()
        # The other process accepts our token and sees our accounts ...
        open_kfid = here.add_account("shared")
        answer = there.post(
            f"{base_url}/cgi-bin/kf/account/list", params={"access_token": token}, json={}
        ).json()
        assert [a["open_kfid"] for a in answer["account_list"]] == [open_kfid]
        # ... and its clock moves are ours: our token expires.
        there.post(f"{base_url}/sandbox/clock", json={"advance": 7200})
        assert here.post("/cgi-bin/kf/account/list", {})["errcode"] == 42001
        there.close()
    finally:
        child.terminate()
        child.wait(timeout=10)


_OPENER = """
import json, sys
from kfcli.sandbox import SandboxServer
print("ready", flush=True)
sys.stdin.readline()
srv = SandboxServer(sys.argv[1])
print(json.dumps(srv.credentials), flush=True)
srv.stop()
"""


@pytest.mark.process
def test_processes_creating_one_database_at_once(tmp_path: Path) -> None:
    db_path = tmp_path / "fresh" / "s.db"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(db_path)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    # Start them together (imports done) so that they race to create the file.
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    results = [child.communicate("go\n", timeout=60) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in results]
    credentials = {out for out, _ in results}
    assert len(credentials) == 1  # one corp, created once


def test_opening_while_another_process_writes(db_path: Path, sandbox: SandboxServer) -> None:
    # Another kfcli process in the middle of a write transaction must make a newcomer wait,
    # not fail with "database is locked".
    blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, blocker.execute, ("COMMIT",))
    release.start()
    try:
        second = start(db_path)
    finally:
        release.join()
        blocker.close()
    try:
        assert second.credentials == sandbox.credentials
        assert Client(second).accounts() == []
    finally:
        second.stop()
