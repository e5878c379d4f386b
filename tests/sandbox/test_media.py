"""Temporary media upload (kf-api.md §2.12)."""

from __future__ import annotations

import os
import re
import sqlite3

import pytest
import requests

from .conftest import AMR, JPG, MP4, PNG, Client

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("media_type", "data", "filename"),
    [
        ("image", PNG, "a.png"),
        ("image", JPG, "a.jpg"),
        ("voice", AMR, "a.amr"),
        ("video", MP4, "a.mp4"),
        ("file", b"any bytes at all", "notes.txt"),
    ],
)
def test_upload_each_type(client: Client, media_type: str, data: bytes, filename: str) -> None:
    answer = client.upload(data, media_type, filename)
    assert answer["errcode"] == 0, answer
    assert answer["type"] == media_type
    assert re.fullmatch(r"[0-9][A-Za-z0-9_-]{20,127}", answer["media_id"])
    assert isinstance(answer["created_at"], str) and answer["created_at"].isdigit()
    now = client.ok("GET", "/sandbox/clock")["now"]
    assert abs(int(answer["created_at"]) - now) <= 2


def test_bytes_and_filename_are_stored(client: Client, db: sqlite3.Connection) -> None:
    data = b"\r\n--boundary\r\n" + os.urandom(4096) + b"\r\n\r\n\n\r"
    answer = client.upload(data, "file", "报告 2024.bin", content_type="application/x-thing")
    row = db.execute(
        "SELECT type, filename, content_type, size, data FROM media WHERE media_id = ?",
        (answer["media_id"],),
    ).fetchone()
    assert row["type"] == "file"
    assert row["filename"] == "报告 2024.bin"
    assert row["content_type"] == "application/x-thing"
    assert row["size"] == len(data) and row["data"] == data


def test_type_parameter(client: Client) -> None:
    assert client.upload(PNG, "picture")["errcode"] == 40004
    assert client.upload(PNG, "")["errcode"] == 40004
    response = client.http.post(
        f"{client.base}/cgi-bin/media/upload",
        params={"access_token": client.token()},
        files={"media": ("a.png", PNG)},
    )
    assert response.json()["errcode"] == 40004


def test_missing_media_part(client: Client) -> None:
    assert client.upload(PNG, field="file")["errcode"] == 41005
    response = client.http.post(
        f"{client.base}/cgi-bin/media/upload",
        params={"access_token": client.token(), "type": "image"},
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert response.json()["errcode"] == 41005


def test_small_files(client: Client) -> None:
    assert client.upload(b"", "file")["errcode"] == 44001
    assert client.upload(b"12345", "file")["errcode"] == 40006
    assert client.upload(b"123456", "file")["errcode"] == 0


def test_formats_by_magic_bytes(client: Client) -> None:
    assert client.upload(b"GIF89a" + b"0" * 100, "image", "a.gif")["errcode"] == 40005
    assert client.upload(PNG, "voice", "a.amr")["errcode"] == 40005
    assert client.upload(AMR, "video", "a.mp4")["errcode"] == 40005
    assert client.upload(MP4, "image", "a.png")["errcode"] == 40005
    # The filename and declared content type do not matter, the bytes do.
    assert client.upload(PNG, "image", "photo.dat", content_type="text/plain")["errcode"] == 0


def test_size_limits(client: Client) -> None:
    def padded(head: bytes, size: int) -> bytes:
        return head + b"\0" * (size - len(head))

    assert client.upload(padded(PNG, 10 * MB + 1), "image")["errcode"] == 40009
    assert client.upload(padded(AMR, 2 * MB), "voice", "a.amr")["errcode"] == 0
    assert client.upload(padded(AMR, 2 * MB + 1), "voice", "a.amr")["errcode"] == 40006
    assert client.upload(padded(MP4, 10 * MB + 1), "video", "a.mp4")["errcode"] == 40011
    assert client.upload(padded(b"f", 20 * MB + 1), "file", "big")["errcode"] == 40006


# --- media/get ------------------------------------------------------------------------------


def download(client: Client, media_id: str | None, **headers: str) -> requests.Response:
    params = {"access_token": client.token()}
    if media_id is not None:
        params["media_id"] = media_id
    return client.http.get(f"{client.base}/cgi-bin/media/get", params=params, headers=headers)


def test_get_returns_the_bytes(client: Client) -> None:
    data = os.urandom(5000)
    media_id = client.upload(data, "file", "report.bin", content_type="application/x-thing")[
        "media_id"
    ]
    response = download(client, media_id)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] == "application/x-thing"
    assert response.headers["Content-Disposition"] == 'attachment; filename="report.bin"'
    assert response.headers["Content-Length"] == "5000"
    image = download(client, client.upload(PNG, "image", "a.png")["media_id"])
    assert image.content == PNG


def test_get_non_ascii_filename(client: Client) -> None:
    media_id = client.upload(b"contents", "file", "报告 2024.txt")["media_id"]
    disposition = download(client, media_id).headers["Content-Disposition"]
    # Raw UTF-8 in filename= (as WeCom sends it) plus the RFC 6266 form.
    raw = disposition.encode("latin-1").decode("utf-8")
    assert raw.startswith('attachment; filename="报告 2024.txt"')
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A%202024.txt" in raw


def test_get_errors_are_json(client: Client, db: sqlite3.Connection) -> None:
    for media_id, errcode in (("3unknown", 40007), ("", 41006), (None, 41006)):
        response = download(client, media_id)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["errcode"] == errcode, media_id
    media_id = client.upload(PNG, "image", "a.png")["media_id"]
    db.execute("UPDATE media SET created_at = created_at - 3 * 86400")  # 3 days old
    response = download(client, media_id)
    assert response.json()["errcode"] == 40007
    assert response.json()["errmsg"].startswith("invalid media_id")


@pytest.mark.parametrize(
    ("header", "status", "part", "content_range"),
    [
        ("bytes=0-99", 206, slice(0, 100), "bytes 0-99/1000"),
        ("bytes=900-", 206, slice(900, 1000), "bytes 900-999/1000"),
        ("bytes=-10", 206, slice(990, 1000), "bytes 990-999/1000"),
        ("bytes=990-5000", 206, slice(990, 1000), "bytes 990-999/1000"),
        ("bytes=1000-", 416, slice(0, 0), "bytes */1000"),
        ("bytes=0-1,5-6", 200, slice(0, 1000), None),  # several ranges: whole file
        ("bytes=5-2", 200, slice(0, 1000), None),  # invalid: ignored
        ("pages=1-2", 200, slice(0, 1000), None),
    ],
)
def test_get_range(
    client: Client, header: str, status: int, part: slice, content_range: str | None
) -> None:
    data = bytes(range(250)) * 4
    media_id = client.upload(data, "file", "r.bin")["media_id"]
    response = download(client, media_id, Range=header)
    assert response.status_code == status
    assert response.content == data[part]
    assert response.headers.get("Content-Range") == content_range
    assert response.headers["Accept-Ranges"] == "bytes"
