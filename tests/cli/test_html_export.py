"""`msg export --format html` is complete (issue 21): archived images inline, archived voice,
video and files downloadable from the page (`--media-dir DIR` beside it, linked relatively).
The page is rendered by headless Chromium, as a person's browser would show it.

Chromium is Debian's package `chromium` (.ci/run installs it); without it the rendering test
is skipped on a developer's machine and fails under KFCLI_REQUIRE_CHROMIUM=1 (CI).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from tests.conftest import PNG

ALICE = "wmHtmlAlice000000000000000000001"
CONTRACT = b"%PDF-1.4 contract of sale\n" * 200
VOICE = b"#!AMR\n" + bytes(range(256)) * 4


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            self.links.append(dict(attrs))
        elif tag == "img":
            self.images.append(dict(attrs))


@pytest.fixture
def archived(kf, sandbox, store_env, monkeypatch):
    """Alice sends a photo, a contract (a file) and a voice note; a servicer answers;
    synced, so their media are archived (in a SQLite or a PostgreSQL store)."""
    for name, value in store_env.items():  # every command of the test uses that store
        monkeypatch.setenv(name, value)
    open_kfid = sandbox.account()
    ok = lambda doc: doc["errcode"] == 0 or pytest.fail(str(doc))  # noqa: E731
    ok(sandbox.api("POST", "/cgi-bin/kf/servicer/add",
                   {"open_kfid": open_kfid, "userid_list": ["user001"]}))
    sandbox.say(open_kfid, "合同在这里", external_userid=ALICE)
    for msgtype, data, name in (("image", PNG, None), ("file", CONTRACT, "合同 v2.pdf"),
                                ("voice", VOICE, None)):
        body = {"open_kfid": open_kfid, "external_userid": ALICE, "msgtype": msgtype,
                "media_base64": base64.b64encode(data).decode()}
        ok(sandbox.post("/sandbox/customer_message",
                        {**body, "filename": name} if name else body))
    ok(sandbox.post("/sandbox/servicer_message", {"open_kfid": open_kfid,
                                                  "external_userid": ALICE,
                                                  "userid": "user001", "text": "收到"}))
    r = kf("msg", "sync", open_kfid)
    assert r.code == 0, r.err
    return open_kfid


def export(kf, tmp_path: Path, *extra: str) -> tuple[Path, Links]:
    page = tmp_path / "chats.html"
    r = kf("msg", "export", "--format", "html", "-O", str(page), "--force", *extra)
    assert r.code == 0, r.err
    parsed = Links()
    parsed.feed(page.read_text(encoding="utf-8"))
    return page, parsed


def test_media_dir_holds_the_files_the_page_links_to(kf, archived, tmp_path) -> None:
    page, parsed = export(kf, tmp_path, "--media-dir", str(tmp_path / "chats-media"))
    assert [i["src"][:22] for i in parsed.images] == ["data:image/png;base64,"]
    media = {a["download"]: a["href"] for a in parsed.links if a.get("class") == "media"}
    assert len(media) == 2
    (contract,) = [n for n in media if n.endswith("-合同 v2.pdf")]
    (voice,) = [n for n in media if n != contract]
    for name, data in ((contract, CONTRACT), (voice, VOICE)):
        assert media[name].startswith("chats-media/")  # relative: the page and DIR move together
        target = page.parent / unquote(media[name])
        assert target.read_bytes() == data
        assert target.stat().st_mode & 0o077 == 0  # customers' files: yours only
    assert (tmp_path / "chats-media").stat().st_mode & 0o077 == 0
    # From another directory, the links still lead from the page to DIR.
    sub = tmp_path / "out"
    sub.mkdir()
    r = kf("msg", "export", "--format", "html", "-O", str(sub / "p.html"),
           "--media-dir", str(tmp_path / "chats-media"))
    assert r.code == 0 and "copied 2 media files" in r.err, r.err
    again = Links()
    again.feed((sub / "p.html").read_text(encoding="utf-8"))
    hrefs = [a["href"] for a in again.links if a.get("class") == "media"]
    assert hrefs and all((sub / unquote(h)).is_file() for h in hrefs)
    assert all(h.startswith("../chats-media/") for h in hrefs)


def test_the_page_names_the_customer(kf, archived, tmp_path) -> None:
    from tests.cli.test_export import nickname

    page, _ = export(kf, tmp_path)
    text = page.read_text(encoding="utf-8")
    name = nickname(kf, ALICE)
    assert f'<span class="nickname">{name}</span> · customer <code>{ALICE}</code>' in text
    assert text.count(f'<span class="who">{name}</span>') == 4  # her four bubbles


def test_without_media_dir_the_page_names_them_and_says_how(kf, archived, tmp_path) -> None:
    page = tmp_path / "plain.html"
    r = kf("msg", "export", "--format", "html", "-O", str(page))
    assert r.code == 0, r.err
    assert "2 archived voice, video or file messages are named but not linked" in r.err
    text = page.read_text(encoding="utf-8")
    assert "合同 v2.pdf" in text and 'class="media"' not in text
    r = kf("msg", "export", "--format", "csv", "-O", "-", "--media-dir", str(tmp_path / "m"))
    assert r.code == 2 and "--format html" in r.err and not (tmp_path / "m").exists()


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("KFCLI_REQUIRE_CHROMIUM") == "1":
        pytest.fail("headless Chromium is required (KFCLI_REQUIRE_CHROMIUM=1): "
                    "apt-get install chromium")
    return found


@pytest.mark.process
def test_headless_chromium_shows_the_bubbles_and_the_download_link(kf, archived,
                                                                   tmp_path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    page, _ = export(kf, tmp_path, "--media-dir", str(tmp_path / "chats-media"))
    profile = tmp_path / "chromium-profile"
    # The flags the machine's notes give for a closed network: no background connections.
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]
    url = page.as_uri()
    dom = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True,
                         timeout=300)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = Links()
    rendered.feed(dom.stdout)
    # The DOM Chromium built: the customer's and the company's bubbles, the inline photo,
    # and a download link that resolves, from the page's URL, to the archived contract.
    assert 'class="msg customer customer"' in dom.stdout
    assert 'class="msg company servicer"' in dom.stdout and "收到" in dom.stdout
    assert any((i.get("src") or "").startswith("data:image/png;base64,")
               for i in rendered.images)
    hrefs = [a["href"] for a in rendered.links if a.get("class") == "media"]
    files = [Path(unquote(urlparse(urljoin(url, h)).path)) for h in hrefs]
    assert len(files) == 2 and all(f.is_file() for f in files)
    assert CONTRACT in [f.read_bytes() for f in files]
    shot = tmp_path / "page.png"
    r = subprocess.run([*args, "--window-size=900,1400", f"--screenshot={shot}", url],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr[-2000:]
