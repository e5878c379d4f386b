"""The store-backed callback receiver under load: answer latency under a steady load of real
callbacks, exactly once on stdout and in the store, and the receiver's memory and open files
over the run, against a plain wsgiref app in the same run.

    python bench/receiver.py [--server embedded gunicorn] [--store sqlite postgresql]
        [--rate 200] [--seconds 60] [--rounds 3] [--accounts 20] [--quick]
    pg_virtualenv -t python bench/receiver.py --store sqlite postgresql   # PGHOST … from libpq
    python bench/receiver.py --store postgresql --pg-url postgresql://USER@HOST/DB

A sandbox runs in its own process, with --accounts accounts. The receivers (--server):

    kfcli callback serve --sync --port 0                                   (embedded)
    gunicorn -k gthread --threads 8 --workers 4 -b 127.0.0.1:PORT \
        'kfcli.callback:app_from_env(sync=True)'                             (gunicorn)

(--workers, --threads; --threads 0: gunicorn's sync workers), configured by KFCLI_BASE_URL,
KFCLI_CORP_ID, KFCLI_SECRET, KFCLI_TOKEN, KFCLI_AES_KEY and KFCLI_STORE: a fresh SQLite file,
or (--store postgresql) a fresh database on the server of --pg-url or of the libpq
environment, per round and receiver. A receiver is used once GET /readyz answers 200. The
client (this process) drives it open-loop at --rate callbacks/s for --seconds (after a 1 s
warm-up at the same rate), from a pool of threads: at each due time one customer message is
posted to the sandbox (`/sandbox/customer_message`, the accounts taken in turn), then a
signed, encrypted kf_msg_or_event callback announcing it (its Token, OpenKfId, and CreateTime
now) is POSTed to the receiver on a new connection, as WeCom does. The latency is that of the
callback's HTTP answer, from the moment the callback was ready to send; a callback sent late
because the client fell behind shows as a lower sustained rate.

The receiver's RSS, open files and threads (summed over its processes: gunicorn's master and
workers) are read from /proc at the 10th second of the load, every 10 s after it, and at its
end (the 60th second by default); the tables compare the 10th second with the end. After
the load, the receiver is given time to drain (until every customer message was emitted, or
nothing new came for a while); its GET /metrics is read (kfcli_callbacks_total by result,
messages stored, emission lag, callback records dropped, store errors); it is stopped and the
store counts the messages of the round's accounts. Every customer message must appear
exactly once on stdout as a {"type": "message"} line, and be in the store.

The plain alternative, as in bench/callback.py: a single-process `wsgiref` app that only
answers 200 "success" (nothing verified, decrypted or stored), under the same load (customer
messages included, on other accounts).

--rounds rounds of (plain, then each receiver on each store), each with new accounts and a new
store; every figure is printed per round, then the medians over rounds and the ratios (to the
plain app; resources at the end / at the 10th second). Nothing is asserted: the targets are
the receiver's p99 < 50 ms at 200/s, every message once, and flat resources. The load average
is printed too: on a small machine other work moves the tail. Also printed: how long after
the customer message its line appeared on stdout.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from callback import PLAIN, Proc, open_loop, pct, post  # noqa: E402  (bench/callback.py: the plain receiver)

SANDBOX = """
import json, sys, time
from kfcli.sandbox import start
server = start(sys.argv[1])
print(json.dumps({"base_url": server.base_url, **server.credentials}), flush=True)
sys.stdin.read()  # until the bench closes stdin
server.stop()
"""

MESSAGE = "message"


class Sandbox:
    """The sandbox in its own process (so that serving sync_msg to the receiver does not
    compete with the client for this process's GIL)."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SANDBOX, str(db)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.base_url: str = info.pop("base_url")
        self.creds: dict[str, str] = info
        self.host, port = self.base_url.split("//", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self._local = threading.local()

    def call(self, method: str, path: str, body: dict | None = None,
             **params: str) -> dict:
        """One request on this thread's keep-alive connection."""
        from urllib.parse import urlencode

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port,
                                                                 timeout=30)
        if params:
            path += "?" + urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            doc = json.loads(resp.read())
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise
        return doc

    def accounts(self, count: int) -> list[str]:
        png = Path(__file__).resolve().parents[1] / "examples" / "avatar.png"
        import requests

        token = self.call("GET", "/cgi-bin/gettoken", corpid=self.creds["corp_id"],
                          corpsecret=self.creds["secret"])["access_token"]
        media = requests.post(self.base_url + "/cgi-bin/media/upload",
                              params={"access_token": token, "type": "image"},
                              files={"media": ("a.png", png.read_bytes())}, timeout=30).json()
        out = []
        for i in range(count):
            doc = self.call("POST", "/cgi-bin/kf/account/add",
                            {"name": f"bench{i}", "media_id": media["media_id"]},
                            access_token=token)
            assert doc.get("errcode") == 0, doc
            out.append(doc["open_kfid"])
        return out

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


class Server:
    """A receiver process (its children too: gunicorn's workers); stdout parsed as it comes.
    `started(line)` is told each stderr line until it returns True (the receiver listens)."""

    port = 0

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.msgids: collections.Counter[str] = collections.Counter()
        self.first_seen: dict[str, float] = {}  # msgid -> perf_counter() of its first line
        self.callbacks = 0
        self.other = 0
        self.last_line = time.monotonic()
        self.errors: list[str] = []
        listening = threading.Event()

        def read_err() -> None:
            for line in self.proc.stderr:
                if not listening.is_set() and self.started(line):
                    listening.set()
                elif "[INFO]" not in line and " INFO [" not in line:
                    self.errors.append(line.rstrip())
            listening.set()

        threading.Thread(target=read_err, daemon=True).start()
        self._reader = threading.Thread(target=self._read_out, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        listening.wait(30)
        while self.proc.poll() is None and time.monotonic() < deadline:
            if self.get("/readyz")[0] == 200:  # the store opened, the workers booted
                return
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{cmd[0]} did not become ready:\n" + "\n".join(self.errors))

    def started(self, line: str) -> bool:
        raise NotImplementedError

    def get(self, path: str) -> tuple[int, str]:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
            conn.close()
            return resp.status, body
        except (OSError, http.client.HTTPException) as exc:
            return 0, str(exc)

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            self.last_line = time.monotonic()
            try:
                doc = json.loads(line)
            except ValueError:
                self.other += 1
                continue
            kind = doc.get("type") if isinstance(doc, dict) else None
            if kind == MESSAGE:
                msgid = str(doc.get("msgid"))
                self.msgids[msgid] += 1
                self.first_seen.setdefault(msgid, time.perf_counter())
            elif kind == "callback":
                self.callbacks += 1
            else:
                self.other += 1

    def drain(self, expected: set[str], callbacks: int, *, quiet: float = 5.0,
              limit: float = 60.0) -> None:
        """Wait until every expected msgid and `callbacks` callback records were emitted (or
        nothing new came for `quiet` seconds, or `limit` passed)."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if expected <= self.msgids.keys() and self.callbacks >= callbacks:
                time.sleep(1.0)  # a little longer: a duplicate would show now
                return
            if time.monotonic() - self.last_line > quiet:
                return
            time.sleep(0.1)

    def resources(self) -> dict[str, float]:
        """RSS (MB), open files and threads, summed over the process and its descendants."""
        todo, seen = [self.proc.pid], []
        out = {"rss": 0.0, "files": 0, "threads": 0}
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                out["files"] += len(os.listdir(f"/proc/{pid}/fd"))
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text()
                         .split()]
            except (OSError, ValueError):
                continue
            seen.append(pid)
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            out["rss"] += int(fields["VmRSS"].split()[0]) / 1024
            out["threads"] += int(fields["Threads"])
        return {**out, "procs": len(seen)}

    def metrics(self) -> dict[str, float]:
        """The receiver's GET /metrics, as {"name{label=value}": value} for kfcli_* samples."""
        status, text = self.get("/metrics")
        if status != 200:
            return {"unavailable": float(status)}
        from prometheus_client.parser import text_string_to_metric_families

        return {s.name + ("{" + ",".join(f"{k}={v}" for k, v in s.labels.items()) + "}"
                          if s.labels else ""): s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if s.name.startswith("kfcli_")}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)  # what it wrote while stopping is counted too


class Embedded(Server):
    """`kfcli callback serve --sync --port 0`: one process, the standard library's server."""

    def __init__(self, env: dict[str, str]) -> None:
        kfcli = shutil.which("kfcli")
        super().__init__([*([kfcli] if kfcli else [sys.executable, "-m", "kfcli"]),
                          "callback", "serve", "--sync", "--port", "0"], env)

    def started(self, line: str) -> bool:
        if line.startswith("listening on http://"):  # its port is the URL's, the third word
            self.port = int(line.split()[2].rstrip("/").rsplit(":", 1)[1])
            return True
        return False


class Gunicorn(Server):
    """gunicorn with `workers` workers (threaded: `-k gthread --threads N`; `threads` 0: sync
    workers) running the store-backed receiver."""

    def __init__(self, env: dict[str, str], workers: int, threads: int) -> None:
        gunicorn = shutil.which("gunicorn")
        if not gunicorn:
            sys.exit("gunicorn is not installed in this environment (pip install gunicorn)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workers, self._booted = workers, 0
        super().__init__(
            [gunicorn, "--workers", str(workers), "-b", f"127.0.0.1:{self.port}",
             *(["-k", "gthread", "--threads", str(threads)] if threads else []),
             "--graceful-timeout", "5",
             # gunicorn >= 24 opens ~/.gunicorn/gunicorn.ctl, shared by every instance of
             # the user: not needed here.
             *(["--no-control-socket"] if _has_option(gunicorn, "--no-control-socket")
               else []),
             "kfcli.callback:app_from_env(sync=True)"], env)

    def started(self, line: str) -> bool:
        self._booted += "Booting worker" in line
        return self._booted >= self.workers


def _has_option(program: str, option: str) -> bool:
    try:
        usage = subprocess.run([program, "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in usage


class Load:
    """Open-loop load: at each due time, a customer message, then its callback."""

    def __init__(self, sandbox: Sandbox, accounts: list[str], token: str, aes_key: str,
                 corp_id: str) -> None:
        from kfcli.core.crypto import WeComCrypto

        self.sandbox = sandbox
        self.accounts = accounts
        self.crypto = WeComCrypto(token, aes_key, corp_id)
        self.corp_id = corp_id
        self.msgids: list[str] = []
        self.created: dict[str, float] = {}  # msgid -> perf_counter() when the sandbox answered
        self.setup_failures = 0

    def callback(self, open_kfid: str, sync_token: str) -> tuple[str, bytes]:
        inner = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                 f"<CreateTime>{int(time.time())}</CreateTime>"
                 "<MsgType><![CDATA[event]]></MsgType>"
                 "<Event><![CDATA[kf_msg_or_event]]></Event>"
                 f"<Token><![CDATA[{sync_token}]]></Token>"
                 f"<OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>")
        built = self.crypto.build_post(inner.encode())
        return "/?" + built.query, built.body

    def drive(self, port: int, rate: float, seconds: float, first: int = 0
              ) -> tuple[list[float], int, float]:
        """(latencies of the answers that were 200 "success", failures, elapsed)."""
        total = int(rate * seconds)
        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()

        def send(i: int, _due: float) -> None:
            nonlocal failures
            i += first
            open_kfid = self.accounts[i % len(self.accounts)]
            try:
                doc = self.sandbox.call("POST", "/sandbox/customer_message",
                                        {"open_kfid": open_kfid, "text": f"bench {i}"})
                assert doc.get("errcode") == 0, doc
            except (OSError, AssertionError, http.client.HTTPException, ValueError):
                with lock:
                    self.setup_failures += 1
                return
            with lock:
                self.msgids.append(doc["msgid"])
                self.created[doc["msgid"]] = time.perf_counter()
            path, body = self.callback(open_kfid, doc["token"])
            ready = time.perf_counter()
            ok = post(port, path, body)
            done = time.perf_counter()
            with lock:
                if ok:
                    latencies.append(done - ready)
                else:
                    failures += 1

        elapsed = open_loop(total, rate, send)
        return latencies, failures, elapsed


def run_plain(sandbox: Sandbox, env: dict[str, str], accounts: list[str], rate: float,
              seconds: float) -> dict:
    creds = sandbox.creds
    load = Load(sandbox, accounts, creds["token"], creds["aes_key"], creds["corp_id"])
    proc = Proc([sys.executable, "-c", PLAIN, "single"], env)
    try:
        load.drive(proc.port, rate, 1.0)  # warm-up
        lat, failures, elapsed = load.drive(proc.port, rate, seconds, first=10**6)
    finally:
        proc.stop()
    return {"lat": lat, "failures": failures, "elapsed": elapsed,
            "setup_failures": load.setup_failures}


def run_kfcli(sandbox: Sandbox, env: dict[str, str], accounts: list[str], rate: float,
              seconds: float, start: Callable[[], Server]) -> dict:
    creds = sandbox.creds
    load = Load(sandbox, accounts, creds["token"], creds["aes_key"], creds["corp_id"])
    server = start()
    samples: dict[float, dict[str, float]] = {}
    timers = [threading.Timer(t, lambda t=t: samples.__setitem__(t, server.resources()))
              for t in sample_times(seconds)]
    try:
        # warm-up (its messages are checked too)
        warm_lat, _, _ = load.drive(server.port, rate, 1.0)
        warm = set(load.msgids)
        for timer in timers:
            timer.start()
        lat, failures, elapsed = load.drive(server.port, rate, seconds, first=10**6)
        end_of_load = time.perf_counter()
        for timer in timers:
            timer.join()
        expected = set(load.msgids)
        answered = len(warm_lat) + len(lat)  # callbacks answered "success"
        server.drain(expected, answered)
        metrics = server.metrics()
    finally:
        server.stop()
    emitted = server.msgids
    seen = [server.first_seen[m] for m in expected if m in server.first_seen]
    count, found = stored(env["KFCLI_STORE"], creds["corp_id"], accounts, expected)
    return {
        "lat": lat, "failures": failures, "elapsed": elapsed,
        "setup_failures": load.setup_failures,
        "expected": len(expected),
        "emitted": sum(emitted[m] for m in expected),
        "distinct": len(expected & emitted.keys()),
        "duplicates": sum(emitted[m] - 1 for m in expected if emitted[m] > 1),
        "missing": len(expected - emitted.keys()),
        "unexpected": sum(c for m, c in emitted.items() if m not in expected),
        "callbacks": server.callbacks,
        "answered": answered,
        "stored": count, "in_store": found,
        "samples": [samples.get(t, {}) for t in sample_times(seconds)],
        "metrics": metrics,
        "drain": max(seen, default=end_of_load) - end_of_load,
        # Customer message stored in the sandbox -> its line on the receiver's stdout.
        "delivery": [server.first_seen[m] - load.created[m] for m in expected - warm
                     if m in server.first_seen],
        "errors": server.errors,
    }


def sample_times(seconds: float) -> list[float]:
    """When the receiver's resources are sampled, in seconds from the start of the load: at
    the 10th second (or half way), every 10 s after it, and at the end."""
    first = min(10.0, seconds / 2)
    return sorted({first, *range(int(first) + 10, int(seconds), 10), seconds})


def stored(url: str, corp_id: str, accounts: list[str], expected: set[str]) -> tuple[int, int]:
    """(messages in the store for `accounts`, how many of `expected` are among them)."""
    from kfcli.core.store import open_store

    store = open_store(url)
    try:
        msgids = [json.loads(row.text)["msgid"] for kfid in accounts
                  for row in store.messages(corp_id, kfid)]
    finally:
        store.close()
    return len(msgids), len(expected.intersection(msgids))


def ratio(a: float, b: float) -> str:
    return f"x{b / a:.2f}" if a else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=None, help="default 60 (--quick: 3)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of (plain, then each receiver), each with fresh accounts "
                        "and a fresh store; default 3 (--quick: 1)")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--server", nargs="+", choices=("embedded", "gunicorn"),
                        default=["embedded", "gunicorn"])
    parser.add_argument("--store", nargs="+", choices=("sqlite", "postgresql"),
                        default=["sqlite"])
    parser.add_argument("--pg-url", default=None,
                        help="a PostgreSQL server (postgresql://… of any database there) for "
                        "--store postgresql; default: the libpq environment (PGHOST …)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8,
                        help="gunicorn -k gthread --threads N; 0: sync workers")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 60.0)
    rounds = args.rounds or (1 if args.quick else 3)
    early, late = sample_times(seconds)[::len(sample_times(seconds)) - 1]
    if "postgresql" in args.store and not args.pg_url:
        from sync import pg_available  # bench/sync.py

        if why := pg_available():
            sys.exit(f"--store postgresql: {why}; or give --pg-url")
    gunicorn = f"gunicorn -w {args.workers}" + (f" gthread x{args.threads}" if args.threads
                                                else " sync")
    starts = {"embedded": ("callback serve --sync", Embedded),
              "gunicorn": (gunicorn, lambda env: Gunicorn(env, args.workers, args.threads))}
    configs = [(f"{starts[server][0]}, {store}", server, store)
               for server in args.server for store in args.store]
    plain_name = "wsgiref plain (1 process)"

    results: list[tuple[str, int, dict]] = []
    loads = [os.getloadavg()]
    print(f"open-loop {args.rate:g} callbacks/s for {seconds:g} s (customer message first, new "
          f"connection each), {args.accounts} accounts, {rounds} round(s) of plain, "
          f"{'; '.join(c[0] for c in configs)}; load average {loads[0][0]:.2f}", flush=True)
    from sync import PgDatabases

    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(Path(tmp) / "sandbox.db")
        pg = PgDatabases(args.pg_url)
        try:
            creds = sandbox.creds
            for n in range(rounds):
                env = {**os.environ, "KFCLI_BASE_URL": sandbox.base_url,
                       "KFCLI_CORP_ID": creds["corp_id"], "KFCLI_SECRET": creds["secret"],
                       "KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"],
                       "KFCLI_CONFIG_DIR": f"{tmp}/cfg", "XDG_CACHE_HOME": f"{tmp}/cache",
                       "PYTHONUNBUFFERED": "1"}
                results.append((plain_name, n, run_plain(
                    sandbox, env, sandbox.accounts(args.accounts), args.rate, seconds)))
                for i, (name, server, store) in enumerate(configs):
                    env = {**env, "XDG_STATE_HOME": f"{tmp}/state{n}-{i}",
                           # kfcli's form: sqlite:///ABSOLUTE/PATH
                           "KFCLI_STORE": pg.new() if store == "postgresql" else
                           "sqlite:///" + f"{tmp}/store{n}-{i}.db".lstrip("/")}
                    r = run_kfcli(sandbox, env, sandbox.accounts(args.accounts), args.rate,
                                  seconds, lambda env=env, server=server: starts[server][1](env))
                    results.append((name, n, r))
                    print(f"  round {n + 1}, {name}: p99 {pct(r['lat'], 0.99):.1f} ms, "
                          f"{r['in_store']}/{r['expected']} in the store", flush=True)
                loads.append(os.getloadavg())
                if "postgresql" in args.store:
                    pg.drop_all()
        finally:
            sandbox.stop()
            if pg.names:
                pg.drop_all()

    print()
    print(f"=== bench/receiver.py: {args.rate:g} callbacks/s for {seconds:g} s, each announcing "
          f"a new customer message; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"load average (1 min) {min(x[0] for x in loads):.2f}-{max(x[0] for x in loads):.2f}"
          f" ===")
    print(f"{'receiver':<40}{'round':>6}{'sent':>7}{'ok':>7}{'ok/s':>8}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}")
    for name, n, r in results:
        lat = r["lat"]
        print(f"{name:<40}{n + 1:>6}{len(lat) + r['failures']:>7}{len(lat):>7}"
              f"{len(lat) / r['elapsed']:>8.1f}{pct(lat, 0.50):>9.2f}{pct(lat, 0.99):>9.2f}"
              f"{max(lat) * 1000 if lat else float('nan'):>9.2f}"
              + (f"  ({r['setup_failures']} customer messages failed)"
                 if r["setup_failures"] else ""))
    print()
    print(f"{'receiver':<40}{'round':>6}{'msgs':>7}{'stdout':>8}{'dup':>5}{'miss':>5}"
          f"{'stored':>8}{'count':>8}   RSS MB @{early:g}s -> @{late:g}s     files"
          "          threads")
    for name, n, r in results:
        if name == plain_name:
            continue
        a, b = r["samples"][0], r["samples"][-1]
        print(f"{name:<40}{n + 1:>6}{r['expected']:>7}{r['distinct']:>8}{r['duplicates']:>5}"
              f"{r['missing']:>5}{r['in_store']:>8}{r['stored']:>8}   "
              f"{a.get('rss', 0):6.1f} -> {b.get('rss', 0):6.1f} "
              f"{ratio(a.get('rss', 0), b.get('rss', 0)):>6}  "
              f"{a.get('files', 0):4} -> {b.get('files', 0):4} "
              f"{ratio(a.get('files', 0), b.get('files', 0)):>6}  "
              f"{a.get('threads', 0):3} -> {b.get('threads', 0):3}"
              f"  ({b.get('procs', 0)} process{'es' if b.get('procs', 0) > 1 else ''})")
    if len(sample_times(seconds)) > 2:
        print(f"\nRSS MB / open files at {', '.join(f'{t:g}' for t in sample_times(seconds))} s:")
        for name, n, r in results:
            if name != plain_name:
                print(f"  {name}, round {n + 1}: " + ", ".join(
                    f"{x.get('rss', 0):.1f}/{x.get('files', 0)}" for x in r["samples"]))
    print()
    print("GET /metrics at the end of each round:")
    for name, n, r in results:
        if name == plain_name:
            continue
        m = r["metrics"]
        by_result = ", ".join(f"{k.split('result=', 1)[1].rstrip('}')} {v:g}"
                              for k, v in sorted(m.items())
                              if k.startswith("kfcli_callbacks_total{"))
        figures = "; ".join(f"{label} {m.get(key, float('nan')):g}" for label, key in (
            ("stored", "kfcli_messages_stored_total"), ("emit lag", "kfcli_emit_lag_messages"),
            ("callback records dropped", "kfcli_emit_dropped_total"),
            ("store errors", "kfcli_store_errors_total")))
        print(f"  {name}, round {n + 1}: callbacks {by_result or '-'}; {figures}")

    behind = [f"{name} round {n + 1}" for name, n, r in results
              if (len(r["lat"]) + r["failures"]) / r["elapsed"] < 0.95 * args.rate]
    if behind:
        print(f"\nNOT SUSTAINED: the load ran below 95% of {args.rate:g}/s (the client and the "
              f"sandbox fell behind; the machine is too loaded) in: {', '.join(behind)}")
    base = [r for name, _, r in results if name == plain_name]
    b50 = statistics.median(pct(r["lat"], 0.5) for r in base)
    b99 = statistics.median(pct(r["lat"], 0.99) for r in base)
    print()
    print(f"plain: p50 {b50:.2f} ms, p99 {b99:.2f} ms (median round)")
    for name, _, _ in configs:
        ours = [r for n, _, r in results if n == name]
        p50 = statistics.median(pct(r["lat"], 0.5) for r in ours)
        p99s = [pct(r["lat"], 0.99) for r in ours]
        p99 = statistics.median(p99s)
        rate = statistics.median(len(r["lat"]) / r["elapsed"] for r in ours)
        total = {k: sum(r[k] for r in ours) for k in
                 ("expected", "emitted", "distinct", "duplicates", "missing", "unexpected",
                  "callbacks", "answered", "stored", "in_store", "setup_failures")}
        once = (total["duplicates"] == 0 and total["missing"] == 0 and total["expected"] > 0
                and total["in_store"] == total["expected"])
        rss = [r["samples"][-1].get("rss", 0) / (r["samples"][0].get("rss") or 1) for r in ours]
        files = [r["samples"][-1].get("files", 0) / (r["samples"][0].get("files") or 1)
                 for r in ours]
        print(f"{name}:")
        print(f"  {rate:.1f} callbacks/s sustained; p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"(median round; rounds {min(p99s):.1f}-{max(p99s):.1f} ms); vs plain p50 "
              f"x{p50 / b50:.2f}, p99 x{p99 / b99:.2f}; target p99 < 50 ms: "
              f"{'met' if p99 < 50 else 'MISSED'}")
        print(f"  exactly once (all rounds, warm-ups included): expected {total['expected']}, "
              f"on stdout {total['emitted']} ({total['distinct']} distinct), duplicates "
              f"{total['duplicates']}, missing {total['missing']}, other message lines "
              f"{total['unexpected']}; in the store {total['in_store']} (the store counts "
              f"{total['stored']}; customer messages whose creation the client did not see "
              f"answered: {total['setup_failures']}); callback lines "
              f"{total['callbacks']} of {total['answered']} answered; last message line at "
              f"most {max(r['drain'] for r in ours):.2f} s after the load: "
              f"{'met' if once else 'MISSED'}")
        delivery = [d for r in ours for d in r["delivery"]]
        print(f"  customer message -> its line on stdout: p50 {pct(delivery, 0.5):.1f} ms, "
              f"p99 {pct(delivery, 0.99):.1f} ms, max {max(delivery, default=0) * 1000:.1f} ms")
        print(f"  @{late:g}s / @{early:g}s: RSS x{min(rss):.2f}-x{max(rss):.2f}, open files "
              f"x{min(files):.2f}-x{max(files):.2f} over the rounds")
        errors = [line for r in ours for line in r["errors"]]
        if errors:
            print(f"  stderr ({len(errors)} lines not at INFO; the last):")
            for line in errors[-10:]:
                print(f"    {line}")


if __name__ == "__main__":
    main()
