"""Throughput and peak memory of `kfcli msg sync` into the message store, against a minimal
`requests` loop.

    python bench/sync.py [--counts 5000 50000] [--runs 3] [--quick]
    pg_virtualenv python bench/sync.py       # also into PostgreSQL (when PGHOST is set)
    pg_virtualenv -t python bench/sync.py    # the same, beside another pg_virtualenv cluster

For each message count, seeds a fresh sandbox (one account) and, in one run with the commands
alternated, times:

* `kfcli msg sync OPEN_KFID -o jsonl > /dev/null` into a FRESH SQLite store (a new
  `KFCLI_STORE=sqlite:///…` file per run): every page and its cursor committed, each new
  message written once through kfcli's writer process;
* the same into a fresh PostgreSQL database per run (`KFCLI_STORE=postgresql://…`), when
  `PGHOST` is set (e.g. under `pg_virtualenv`, which sets PGHOST/PGPORT/PGUSER/PGPASSWORD);
* a plain script paging through sync_msg with `requests` and printing each message as a JSON
  line (no store: the floor);
* `kfcli msg sync OPEN_KFID --no-save -o jsonl > /dev/null`: the same pull with no store;
* a hand-written "durable" loop: the plain script, plus each page stored into a fresh SQLite
  file in one transaction before its lines are printed, with the same durable work kfcli's
  store does: the same `messages` table and indexes, the same trigram FTS index filled per
  page, the media rows of media messages, the account's cursor, WAL with synchronous=NORMAL
  (the DDL is read from a store kfcli created, so it stays the same as kfcli's).

Prints messages/s of each and the peak RSS of each command *including its child processes*
(kfcli starts a small writer process): the process tree is sampled every 10 ms and the peaks
(VmHWM) of all its processes are added up. Target: kfcli's does not grow with the message
count. Medians over --runs runs; RSS is the largest over the runs. Then the budgets (issue 20),
as ratios of times measured in this one run, each the median of the per-run ratios (the
commands alternate, so each pair ran under the same load) with their range:

* `msg sync --no-save` / the plain loop: target <= 1.05x;
* `msg sync` into a fresh SQLite store / the hand-written durable loop: target <= 1.15x;
  each also as the ratio of CPU time (user + system, children included), which another job's
  load disturbs far less than wall time;
* and, as before, kfcli's throughput into SQLite / the plain loop's: target >= 0.8.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

PLAIN = """
import json, sys, requests
base, token, open_kfid = sys.argv[1:4]
session = requests.Session()
cursor, out = "", sys.stdout
while True:
    body = {"open_kfid": open_kfid, "limit": 1000}
    if cursor:
        body["cursor"] = cursor
    doc = session.post(base + "/cgi-bin/kf/sync_msg", params={"access_token": token},
                       json=body).json()
    for msg in doc["msg_list"]:
        out.write(json.dumps(msg, ensure_ascii=False) + "\\n")
    cursor = doc.get("next_cursor") or cursor
    if not doc.get("has_more"):
        break
"""

# The plain loop, storing each page durably as kfcli's SQLite store does (argv: base URL,
# token, open_kfid, store file, DDL file). Per page, one transaction: the messages (INSERT OR
# IGNORE on the unique msgid index), the page's FTS entries in one statement, the media rows,
# the cursor; then the page's JSON lines.
DURABLE = """
import json, sqlite3, sys, time, requests
base, token, open_kfid, path, ddl = sys.argv[1:6]
conn = sqlite3.connect(path, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("PRAGMA wal_autocheckpoint=16384")
conn.executescript(open(ddl).read())
conn.execute("INSERT INTO accounts (corp_id, open_kfid) VALUES ('bench', ?)", (open_kfid,))
MEDIA = ("image", "voice", "video", "file")
session = requests.Session()
cursor, out = "", sys.stdout
while True:
    body = {"open_kfid": open_kfid, "limit": 1000}
    if cursor:
        body["cursor"] = cursor
    doc = session.post(base + "/cgi-bin/kf/sync_msg", params={"access_token": token},
                       json=body).json()
    now, rows, lines = time.time(), [], []
    for m in doc["msg_list"]:
        kind = m.get("msgtype", "")
        search = m["text"].get("content", "").lower() + "\\n\\n" if kind == "text" else ""
        line = json.dumps(m, ensure_ascii=False)
        lines.append(line)
        rows.append((1, 1, now, m["msgid"], m.get("external_userid", ""),
                     m.get("servicer_userid", ""), m.get("origin", 0), kind,
                     m.get("send_time", 0), line, search))
    cursor = doc.get("next_cursor") or cursor
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    before = row[0] if row else 0
    conn.executemany("INSERT OR IGNORE INTO messages (corp, account, stored_at, msgid, "
                     "external_userid, servicer_userid, origin, msgtype, send_time, body, "
                     "search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO messages_fts (rowid, search) SELECT seq, search FROM messages "
                 "WHERE seq > ? AND search <> ''", (before,))
    conn.executemany("INSERT OR IGNORE INTO media (seq, corp, media_id) VALUES (?, 1, ?)",
                     [(before + i + 1, m[kind]["media_id"]) for i, m in
                      enumerate(doc["msg_list"]) if (kind := m.get("msgtype")) in MEDIA])
    conn.execute("UPDATE accounts SET cursor = ?, cursor_at = ?, last_pull_at = ? "
                 "WHERE id = 1", (cursor, now, now))
    conn.execute("COMMIT")
    out.write("".join(line + "\\n" for line in lines))
    if not doc.get("has_more"):
        break
"""


def store_ddl(path: Path) -> str:
    """The DDL of the messages, media and accounts tables of a store kfcli creates: the
    tables, their indexes and the FTS table (not FTS's own shadow tables)."""
    import sqlite3

    from kfcli.core.store.sqlite import SqliteStore

    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                            "AND tbl_name IN ('messages', 'media', 'accounts', 'messages_fts') "
                            "AND type IN ('table', 'index') ORDER BY rowid").fetchall()
    finally:
        conn.close()
    return "".join(f"{sql};\n" for kind, name, sql in rows)


# Runs a command with stdout to /dev/null; prints its wall time and the sum over the process
# tree (the command and all its descendants) of each process's peak RSS (VmHWM, KiB), sampled
# every 10 ms. VmHWM only grows, so the last sample of a process is its peak (to within the
# last 10 ms of its life).
MEASURE = """
import os, subprocess, sys, threading, time

def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out

def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None

peaks, done = {}, threading.Event()

def sample(root):
    while True:
        todo = [root]
        while todo:
            pid = todo.pop()
            value = hwm(pid)
            if value is not None:
                peaks[pid] = max(peaks.get(pid, 0), value)
            todo.extend(children(pid))
        if done.wait(0.01):
            return

start = time.perf_counter()
with open("/dev/null", "wb") as sink:
    proc = subprocess.Popen(sys.argv[1:], stdout=sink)
    sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
done.set()
sampler.join()
if status != 0:
    sys.exit(f"command failed ({status}): {sys.argv[1:]}")
# wait4's ru_maxrss is the largest peak among the root and its descendants: exact for the
# root when it is the largest (kfcli's writer process is much smaller than kfcli).
others = [v for pid, v in peaks.items() if pid != proc.pid]
if usage.ru_maxrss >= max(others, default=0):
    peaks[proc.pid] = max(peaks.get(proc.pid, 0), usage.ru_maxrss)
print(elapsed, sum(peaks.values()), len(peaks), usage.ru_utime + usage.ru_stime)
"""


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, float]:
    """(seconds, peak RSS of the process tree in KiB, processes seen, CPU seconds of the
    command and the children it waited for: kfcli's writer process included)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        sys.exit(f"measurement failed:\n{out.stderr}")
    t, rss, procs, cpu = out.stdout.split()
    return float(t), int(rss), int(procs), float(cpu)


def sqlite_url(path: str) -> str:
    """kfcli's form, sqlite:///ABSOLUTE/PATH (three slashes, as `kfcli store status` shows)."""
    return "sqlite:///" + str(path).lstrip("/")


# --------------------------------------------------------------------------- PostgreSQL

def pg_admin():
    import psycopg

    return psycopg.connect(dbname=os.environ.get("PGDATABASE") or "postgres", autocommit=True,
                           connect_timeout=10)


def pg_url(dbname: str) -> str:
    """A postgresql:// URL for `dbname` on the libpq environment's server (password, if any,
    left to PGPASSWORD)."""
    user = quote(os.environ.get("PGUSER") or "", safe="")
    host = os.environ.get("PGHOST") or "localhost"
    port = os.environ.get("PGPORT") or "5432"
    if host.startswith("/"):
        return f"postgresql://{user}@/{dbname}?host={quote(host, safe='')}&port={port}"
    if ":" in host:
        host = f"[{host}]"
    return f"postgresql://{user}@{host}:{port}/{dbname}"


def pg_available() -> str:
    """'' when PostgreSQL is usable, else why not."""
    if not os.environ.get("PGHOST"):
        return "PGHOST is not set (run under `pg_virtualenv python bench/sync.py`)"
    try:
        with pg_admin():
            pass
    except Exception as exc:  # psycopg missing or the server refused
        return f"{type(exc).__name__}: {exc}".strip()
    return ""


class PgDatabases:
    """Fresh databases on the libpq environment's server, or on `server` (the postgresql://
    URL of any database there), all dropped at the end."""

    def __init__(self, server: str | None = None) -> None:
        self.server = server
        self.names: list[str] = []

    def _admin(self):
        if not self.server:
            return pg_admin()
        import psycopg

        return psycopg.connect(self.server, autocommit=True, connect_timeout=10)

    def new(self) -> str:
        name = "kfcli_bench_" + secrets.token_hex(5)
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        if self.server:
            return urlunsplit(urlsplit(self.server)._replace(path="/" + name))
        return pg_url(name)

    def drop_all(self) -> None:
        with self._admin() as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names = []


# --------------------------------------------------------------------------- the run

def seed_sandbox(base: str, creds: dict[str, str], count: int) -> tuple[str, str]:
    """(access token, open_kfid of a new account holding `count` messages)."""
    import requests

    token = requests.get(base + "/cgi-bin/gettoken", params={
        "corpid": creds["corp_id"], "corpsecret": creds["secret"]}).json()["access_token"]
    png = Path(__file__).resolve().parents[1] / "examples" / "avatar.png"
    media = requests.post(base + "/cgi-bin/media/upload",
                          params={"access_token": token, "type": "image"},
                          files={"media": ("a.png", png.read_bytes())}).json()
    open_kfid = requests.post(base + "/cgi-bin/kf/account/add", params={"access_token": token},
                              json={"name": "bench", "media_id": media["media_id"]}
                              ).json()["open_kfid"]
    seeded = requests.post(base + "/sandbox/seed_messages",
                           json={"open_kfid": open_kfid, "count": count}).json()
    assert seeded.get("errcode") == 0, seeded
    return token, open_kfid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=None,
                        help="message counts (default 5000 50000; --quick: 2000 5000)")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs of each command per count (default 5; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    counts = args.counts or ([2000, 5000] if args.quick else [5000, 50000])
    runs = args.runs or (1 if args.quick else 5)
    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")
    from kfcli.sandbox import start

    why_no_pg = pg_available()
    commands = (["kfcli sqlite", "durable", "kfcli --no-save", "plain"]
                + ([] if why_no_pg else ["kfcli postgresql"]))
    results: dict[int, dict[str, tuple[list[float], list[int], list[float]]]] = {}
    loads = [os.getloadavg()[0]]
    nprocs: dict[str, int] = {}  # processes seen in each command's tree
    for count in counts:
        print(f"{count} messages: {runs} run(s) of {', '.join(commands)} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            server = start(Path(tmp) / "sandbox.db")
            pg = PgDatabases()
            try:
                creds, base = server.credentials, server.base_url
                token, open_kfid = seed_sandbox(base, creds, count)
                plain = Path(tmp) / "plain.py"
                plain.write_text(PLAIN)
                durable = Path(tmp) / "durable.py"
                durable.write_text(DURABLE)
                ddl = Path(tmp) / "store.sql"
                ddl.write_text(store_ddl(Path(tmp) / "ddl.db"))
                env = {**os.environ, "KFCLI_BASE_URL": base, "KFCLI_CORP_ID": creds["corp_id"],
                       "KFCLI_SECRET": creds["secret"], "XDG_CACHE_HOME": f"{tmp}/cache",
                       "KFCLI_CONFIG_DIR": f"{tmp}/cfg"}
                env.pop("KFCLI_STORE", None)
                sync = [kfcli, "msg", "sync", open_kfid, "-o", "jsonl"]
                # Warm the access token cache and the page cache once, outside the figures.
                env["KFCLI_STORE"] = sqlite_url(f"{tmp}/warm.db")
                env["XDG_STATE_HOME"] = f"{tmp}/state-warm"
                measure(sync, env)
                per: dict[str, tuple[list[float], list[int], list[float]]] = {
                    c: ([], [], []) for c in commands}
                for run in range(runs):
                    for name in commands:
                        env["XDG_STATE_HOME"] = f"{tmp}/state{run}"  # run journals: fresh too
                        if name == "plain":
                            cmd = [sys.executable, str(plain), base, token, open_kfid]
                        elif name == "durable":
                            cmd = [sys.executable, str(durable), base, token, open_kfid,
                                   f"{tmp}/durable-{run}.db", str(ddl)]
                        elif name == "kfcli --no-save":
                            cmd = [*sync, "--no-save"]
                        elif name == "kfcli sqlite":
                            env["KFCLI_STORE"] = sqlite_url(f"{tmp}/store-{run}.db")
                            cmd = sync
                        else:
                            env["KFCLI_STORE"] = pg.new()
                            cmd = sync
                        t, rss, procs, cpu = measure(cmd, env)
                        nprocs[name] = max(nprocs.get(name, 0), procs)
                        per[name][0].append(t)
                        per[name][1].append(rss)
                        per[name][2].append(cpu)
                    if not why_no_pg:
                        pg.drop_all()
                results[count] = per
            finally:
                if not why_no_pg:
                    pg.drop_all()
                server.stop()
        loads.append(os.getloadavg()[0])
        time.sleep(0.2)

    print()
    print(f"=== bench/sync.py: msg sync into a fresh store vs a plain requests loop "
          f"(medians of {runs} alternated run(s); Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f}) ===")
    print(f"{'messages':>9}  {'command':<17}{'msg/s':>8}{'median s':>10}{'CPU s':>7}"
          f"{'vs plain':>10}{'peak RSS (tree)':>17}{'procs':>7}")
    verdicts = []
    for count, per in results.items():
        plain_t = statistics.median(per["plain"][0])
        for name in commands:
            times, rsss, cpus = per[name]
            t = statistics.median(times)
            ratio = plain_t / t
            shown = "-" if name == "plain" else f"{ratio:.2f}x"
            print(f"{count:>9}  {name:<17}{count / t:>8.0f}{t:>10.2f}"
                  f"{statistics.median(cpus):>7.2f}{shown:>10}"
                  f"{max(rsss) / 1024:>15.1f}MB{nprocs[name]:>7}")
            if name.startswith("kfcli") and count == max(results):
                verdicts.append((name, ratio))
    top = results[max(results)]
    for name, base, target in (("kfcli --no-save", "plain", 1.05),
                               ("kfcli sqlite", "durable", 1.15)):
        ratios = sorted(a / b for a, b in zip(top[name][0], top[base][0], strict=True))
        ratio = statistics.median(ratios)
        cpu = statistics.median(a / b for a, b in zip(top[name][2], top[base][2], strict=True))
        verdict = "met" if ratio <= target else "MISSED"
        print(f"budget at {max(results)} messages: {name} / {base}: {ratio:.2f}x "
              f"(runs {ratios[0]:.2f}-{ratios[-1]:.2f}x), target <= {target}x: {verdict}; "
              f"CPU time {cpu:.2f}x")
    for name, ratio in verdicts:
        if name == "kfcli --no-save":
            continue
        verdict = "met" if ratio >= 0.8 else "MISSED"
        print(f"target {name} throughput >= 0.8x plain at {max(results)} messages: "
              f"{ratio:.2f}x, {verdict}")
    if len(results) > 1:
        lo, hi = min(results), max(results)
        for name in commands:
            if not name.startswith("kfcli"):
                continue
            a, b = max(results[lo][name][1]), max(results[hi][name][1])
            flat = "flat" if b <= a * 1.15 + 2048 else "GROWS"
            print(f"{name} peak RSS {lo} -> {hi} messages: {a / 1024:.1f}MB -> "
                  f"{b / 1024:.1f}MB ({flat})")
    if why_no_pg:
        print(f"PostgreSQL: skipped ({why_no_pg})")


if __name__ == "__main__":
    main()
