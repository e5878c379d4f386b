"""`kfcli msg search` on a large store against the same search on a small one.

    python bench/search.py [--runs 9] [--large 1000000] [--small 10000] [--quick]
    pg_virtualenv python bench/search.py --store postgresql://   # the same on PostgreSQL

Builds two SQLite stores directly with `kfcli.core.store.open_store(url).commit_page(...)`,
in pages of 5,000 messages made with `Incoming.from_api(doc)`, one account, 1,000 customers,
Chinese customer-service texts drawn from a fixed list of phrases. In both stores exactly
MATCHES messages contain the four-character term 申请退款 and MATCHES others the
two-character term 发票, spread from the first page to the last; the other texts contain
neither (they do contain 发, 票, 退 and 款 in other words: 发货, 车票, 退货, 付款).

Then times, alternating the two stores:

* in-process: `store.search(corp, TERM)` (median of --runs, after a warm-up), the index at
  work without process start-up;
* the installed entry point: `kfcli msg search TERM -o jsonl` in fresh processes, with
  KFCLI_STORE set to the store and dummy credentials (search reads only the store).

Target: large/small within 2x for both terms (indexed, not scanned). Also prints the size of
each store on disk (after the WAL is checkpointed) and that size per 1,000,000 messages.

With --store URL (a PostgreSQL server: the URL of any database on it; `postgresql://` alone
takes everything from the libpq environment, as `pg_virtualenv` sets it): two fresh databases
on that server instead, dropped afterwards. kfcli creates its schema in each; the same messages
are then copied in directly (COPY, the search indexes built after it: several times faster
than commit_page) and analyzed. The size on disk is that of the messages
table with its indexes (pg_total_relation_size), the two search indexes' shown apart.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kfcli.core.store import Incoming

CORP_ID = "wwbenchsearchcorp001"
OPEN_KFID = "wkBenchSearch0000000000000000001"
CUSTOMERS = 1000
MATCHES = 20
PAGE = 5000
T0 = 1_790_000_000
TERMS = {"4 chars": "申请退款", "2 chars": "发票"}
PHRASES = [
    "你好，请问在吗", "我的订单什么时候发货", "快递到哪里了", "可以便宜一点吗", "这个有现货吗",
    "我想退货", "质量有问题", "怎么联系售后", "已经付款了", "地址填错了，可以改吗",
    "好的，谢谢", "尺码偏大还是偏小", "什么时候到账", "能开电子车票吗", "会员积分怎么用",
    "优惠券用不了", "麻烦尽快处理", "客服在吗", "颜色和图片不一样", "包装破损了",
    "Thanks, order #{n} received", "发货太慢了", "能不能换一个颜色", "运费谁出",
]


def text(i: int, rng: random.Random, special: dict[int, str]) -> str:
    if i in special:
        return f"你好，{special[i]}，订单号 {i}"
    return rng.choice(PHRASES).replace("{n}", str(i)) + ("" if i % 3 else " " + rng.choice(
        PHRASES).replace("{n}", str(i)))


def pages(total: int) -> Iterator[list[Incoming]]:
    """The store's messages, in pages of PAGE (the same for SQLite and PostgreSQL)."""
    from kfcli.core.store import Incoming

    rng = random.Random(total)
    special: dict[int, str] = {}
    for k, term in enumerate(TERMS.values()):
        for j in range(MATCHES):  # spread over the whole store, first page to last
            special[(j * (total - 2)) // (MATCHES - 1) + k] = term
    for first in range(0, total, PAGE):
        yield [Incoming.from_api({
            "msgid": f"bench{i:027d}", "open_kfid": OPEN_KFID,
            "external_userid": f"wmBenchCustomer{i % CUSTOMERS:017d}",
            "send_time": T0 + i, "origin": 3, "msgtype": "text",
            "text": {"content": text(i, rng, special)}})
            for i in range(first, min(total, first + PAGE))]


def build(path: Path, total: int) -> float:
    from kfcli.core.store import open_store

    start = time.perf_counter()
    store = open_store("sqlite:///" + str(path).lstrip("/"))
    try:
        expected = None
        for first, items in enumerate(pages(total)):
            cursor = f"cursor{first * PAGE + len(items)}"
            store.commit_page(CORP_ID, OPEN_KFID, expected=expected, cursor=cursor,
                              messages=items, owner=None)
            expected = cursor
    finally:
        store.close()
    return time.perf_counter() - start


def pg_database(server: str, name: str) -> str:
    """The URL of database `name` on the server of URL `server`."""
    parts = urlsplit(server)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


def search_indexes() -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of each search index kfcli's PostgreSQL schema has."""
    from kfcli.core.store.postgres import MIGRATIONS

    found = []
    for statements in MIGRATIONS.values():
        for statement in statements:
            if not isinstance(statement, str):  # a backfill
                continue
            named = re.search(r"CREATE INDEX IF NOT EXISTS (messages_search\w*)", statement)
            if named:
                found.append((named[1], statement))
    return found


def build_pg(url: str, total: int) -> float:
    """kfcli's schema in the (empty) database at `url`, then the messages copied in."""
    import psycopg

    from kfcli.core.store import open_store

    start = time.perf_counter()
    store = open_store(url)  # the schema, as a first run of kfcli makes it
    store.set_cursor(CORP_ID, OPEN_KFID, f"cursor{total}")
    store.close()
    indexes = search_indexes()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("DROP INDEX " + ", ".join(name for name, _ in indexes))
        with conn.cursor().copy(
                "COPY messages (corp_id, open_kfid, msgid, external_userid, servicer_userid, "
                "origin, msgtype, send_time, stored_at, body, search_text) FROM STDIN") as copy:
            now = time.time()
            for items in pages(total):
                for m in items:
                    copy.write_row((CORP_ID, OPEN_KFID, m.msgid, m.external_userid,
                                    m.servicer_userid, m.origin, m.msgtype, m.send_time, now,
                                    m.text, m.searchable()))
        for _, statement in indexes:
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE messages")
    return time.perf_counter() - start


def pg_sizes(url: str) -> tuple[int, dict[str, int]]:
    """pg_total_relation_size of messages, and the size of each search index."""
    import psycopg

    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT pg_total_relation_size('messages')").fetchone()[0]
        return total, {name: conn.execute("SELECT pg_relation_size(%s::regclass)",
                                          (name,)).fetchone()[0]
                       for name, _ in search_indexes()}


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, proc.stdout


def measure(stores: dict[str, str], runs: int, kfcli: str, tmp: str) -> tuple[dict, dict, dict]:
    """(matches, in-process times, kfcli times), each by (term label, store name)."""
    from kfcli.core.store import open_store

    base_env = {**os.environ, "KFCLI_CORP_ID": CORP_ID, "KFCLI_SECRET": "dummy-secret",
                "KFCLI_BASE_URL": "http://127.0.0.1:9", "KFCLI_CONFIG_DIR": f"{tmp}/cfg",
                "XDG_CACHE_HOME": f"{tmp}/cache", "XDG_STATE_HOME": f"{tmp}/state"}
    inproc: dict[tuple[str, str], list[float]] = {}
    cli: dict[tuple[str, str], list[float]] = {}
    found: dict[tuple[str, str], int] = {}
    opened = {name: open_store(url) for name, url in stores.items()}
    try:
        for label, term in TERMS.items():
            for name, store in opened.items():  # warm-up, and the count to compare
                found[label, name] = len(list(store.search(CORP_ID, term)))
                inproc[label, name], cli[label, name] = [], []
            cmd = [kfcli, "msg", "search", term, "--all", "-o", "jsonl"]
            for _ in range(runs):
                for name, store in opened.items():
                    start = time.perf_counter()
                    list(store.search(CORP_ID, term))
                    inproc[label, name].append(time.perf_counter() - start)
                    t, out = timed(cmd, {**base_env, "KFCLI_STORE": stores[name]})
                    assert len(out.splitlines()) == MATCHES, (label, name)
                    cli[label, name].append(t)
    finally:
        for store in opened.values():
            store.close()
    return found, inproc, cli


def databases(server: str, *, create: bool) -> None:
    """Drop the bench's databases on the server (if any), then create them if `create`."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        for name in ("small", "large"):
            conn.execute(f"DROP DATABASE IF EXISTS kfcli_bench_search_{name} WITH (FORCE)")
            if create:
                conn.execute(f"CREATE DATABASE kfcli_bench_search_{name}")


def server_version(server: str) -> str:
    import psycopg

    with psycopg.connect(server) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="default 9 (--quick: 3)")
    parser.add_argument("--large", type=int, default=None,
                        help="default 1000000 (--quick: 50000)")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--store", metavar="URL",
                        help="a PostgreSQL server (postgresql://...) instead of SQLite files")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 9)
    large = args.large or (50_000 if args.quick else 1_000_000)
    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"small": args.small, "large": large}
        if args.store:
            stores = {name: pg_database(args.store, f"kfcli_bench_search_{name}")
                      for name in sizes}
            databases(args.store, create=True)
        else:
            stores = {name: "sqlite:///" + str(Path(tmp) / f"{name}.db").lstrip("/")
                      for name in sizes}
        try:
            built, disk, indexes = {}, {}, {}
            for name, url in stores.items():
                print(f"building the {name} store ({sizes[name]} messages) ...", flush=True)
                if args.store:
                    built[name] = build_pg(url, sizes[name])
                    disk[name], indexes[name] = pg_sizes(url)
                else:
                    built[name] = build(Path("/" + url[len("sqlite:///"):]), sizes[name])
                    disk[name] = Path("/" + url[len("sqlite:///"):]).stat().st_size
            found, inproc, cli = measure(stores, runs, kfcli, tmp)
        finally:
            if args.store:
                databases(args.store, create=False)
        engine = (f"PostgreSQL {server_version(args.store)}" if args.store else
                  f"SQLite {__import__('sqlite3').sqlite_version}")
    print()
    print(f"=== bench/search.py: msg search on a {large}-message store vs a {args.small}-"
          f"message one (medians of {runs} alternated runs; Python {sys.version.split()[0]}, "
          f"{engine}, {os.cpu_count()} CPUs) ===")
    for name in stores:
        print(f"{name}: {sizes[name]} messages, {disk[name] / 1e6:.1f} MB on disk "
              f"({disk[name] / sizes[name] * 1e6 / 1e9:.2f} GB per 1,000,000 messages), "
              f"built in {built[name]:.1f} s")
        for index, size in indexes.get(name, {}).items():
            print(f"    index {index}: {size / 1e6:.1f} MB "
                  f"({size / sizes[name] * 1e6 / 1e9:.2f} GB per 1,000,000 messages)")
    print(f"{'term':<18}{'matches':>8}{'store.search small/large ms':>30}{'ratio':>8}"
          f"{'kfcli small/large ms':>24}{'ratio':>8}")
    verdicts = []
    for label, term in TERMS.items():
        s_in, l_in = (statistics.median(inproc[label, n]) for n in stores)
        s_cli, l_cli = (statistics.median(cli[label, n]) for n in stores)
        counts = "/".join(str(found[label, n]) for n in stores)
        print(f"{label + ' ' + term:<18}{counts:>8}{s_in * 1000:>15.2f} /{l_in * 1000:>9.2f}"
              f"{l_in / s_in:>9.2f}x{s_cli * 1000:>12.1f} /{l_cli * 1000:>8.1f}"
              f"{l_cli / s_cli:>8.2f}x")
        verdicts.append(f"{label} {l_cli / s_cli:.2f}x "
                        f"{'met' if l_cli / s_cli <= 2 else 'MISSED'}")
    print("target kfcli large/small <= 2x: " + ", ".join(verdicts))


if __name__ == "__main__":
    main()
