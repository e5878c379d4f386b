"""The store-backed callback receiver under gunicorn: answer latency under a steady load of
real callbacks, and exactly-once output, against a plain wsgiref app in the same run.

    python bench/receiver.py [--rate 200] [--seconds 10] [--rounds 3] [--accounts 20] [--quick]

A sandbox runs in its own process, with --accounts accounts. The receiver is

    gunicorn --workers 4 -b 127.0.0.1:PORT 'kfcli.callback:app_from_env(sync=True)'

configured by KFCLI_BASE_URL, KFCLI_CORP_ID, KFCLI_SECRET, KFCLI_TOKEN, KFCLI_AES_KEY and
KFCLI_STORE (a fresh SQLite file). The client (this process) drives it open-loop at --rate
callbacks/s for --seconds (after a 1 s warm-up at the same rate), from a pool of threads: at
each due time one customer message is posted to the sandbox (`/sandbox/customer_message`, the
accounts taken in turn), then a signed, encrypted kf_msg_or_event callback announcing it (its
Token, OpenKfId, and CreateTime now) is POSTed to the receiver on a new connection, as WeCom
does. The latency is that of the callback's HTTP answer, from the moment the callback was
ready to send; a callback sent late because the client fell behind shows as a lower
sustained rate.

After the load, the workers are given time to drain (until every customer message was
emitted, or nothing new came for a while), then gunicorn's stdout is checked: every customer
message must appear exactly once as a {"type": "message"} line (expected, emitted,
duplicates, missing are printed).

The plain alternative, as in bench/callback.py: a single-process `wsgiref` app that only
answers 200 "success" (nothing verified, decrypted or stored), under the same load (customer
messages included, on other accounts).

--rounds rounds of (plain, then kfcli), each with new accounts and a new store; the summary
gives each round and the medians over rounds (the load average is printed too: on a small
machine other work moves the tail). Also printed: how long after the customer message its
line appeared on stdout. Target: the receiver's p99 < 50 ms at 200/s.
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


class Gunicorn:
    """gunicorn with 4 workers running the store-backed receiver; stdout parsed as it comes."""

    def __init__(self, env: dict[str, str], workers: int) -> None:
        gunicorn = shutil.which("gunicorn")
        if not gunicorn:
            sys.exit("gunicorn is not installed in this environment (pip install gunicorn)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [gunicorn, "--workers", str(workers), "-b", f"127.0.0.1:{self.port}",
             "--graceful-timeout", "5",
             # gunicorn >= 24 opens ~/.gunicorn/gunicorn.ctl, shared by every instance of
             # the user: not needed here.
             *(["--no-control-socket"] if _has_option(gunicorn, "--no-control-socket")
               else []),
             "kfcli.callback:app_from_env(sync=True)"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.msgids: collections.Counter[str] = collections.Counter()
        self.first_seen: dict[str, float] = {}  # msgid -> perf_counter() of its first line
        self.callbacks = 0
        self.other = 0
        self.last_line = time.monotonic()
        self.errors: list[str] = []
        booted = threading.Event()
        self._booted = 0

        def read_err() -> None:
            for line in self.proc.stderr:
                if "Booting worker" in line:
                    self._booted += 1
                    if self._booted >= workers:
                        booted.set()
                elif "[INFO]" not in line:
                    self.errors.append(line.rstrip())
            booted.set()

        threading.Thread(target=read_err, daemon=True).start()
        threading.Thread(target=self._read_out, daemon=True).start()
        if not booted.wait(30) or self.proc.poll() is not None:
            self.stop()
            sys.exit("gunicorn did not start:\n" + "\n".join(self.errors))
        deadline = time.monotonic() + 15
        while True:  # the port answers once the arbiter listens; the workers just booted
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    sys.exit("gunicorn does not listen:\n" + "\n".join(self.errors))
                time.sleep(0.05)

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

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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
              seconds: float, workers: int) -> dict:
    creds = sandbox.creds
    load = Load(sandbox, accounts, creds["token"], creds["aes_key"], creds["corp_id"])
    server = Gunicorn(env, workers)
    try:
        # warm-up (its messages are checked too)
        warm_lat, _, _ = load.drive(server.port, rate, 1.0)
        warm = set(load.msgids)
        lat, failures, elapsed = load.drive(server.port, rate, seconds, first=10**6)
        end_of_load = time.perf_counter()
        expected = set(load.msgids)
        answered = len(warm_lat) + len(lat)  # callbacks answered "success"
        server.drain(expected, answered)
    finally:
        server.stop()
    emitted = server.msgids
    seen = [server.first_seen[m] for m in expected if m in server.first_seen]
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
        "drain": max(seen, default=end_of_load) - end_of_load,
        # Customer message stored in the sandbox -> its line on gunicorn's stdout.
        "delivery": [server.first_seen[m] - load.created[m] for m in expected - warm
                     if m in server.first_seen],
        "errors": server.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=None, help="default 10 (--quick: 3)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of (plain, kfcli), each with fresh accounts and a fresh "
                        "store; default 3 (--quick: 1)")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    rounds = args.rounds or (1 if args.quick else 3)
    kfcli_name = f"kfcli receiver (gunicorn -w {args.workers})"
    plain_name = "wsgiref plain (1 process)"

    results: list[tuple[str, dict]] = []
    loads = [os.getloadavg()[0]]
    print(f"open-loop {args.rate:g} callbacks/s for {seconds:g} s (customer message first, new "
          f"connection each), {args.accounts} accounts, {rounds} round(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(Path(tmp) / "sandbox.db")
        try:
            creds = sandbox.creds
            for n in range(rounds):
                env = {**os.environ, "KFCLI_BASE_URL": sandbox.base_url,
                       "KFCLI_CORP_ID": creds["corp_id"], "KFCLI_SECRET": creds["secret"],
                       "KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"],
                       # kfcli's form: sqlite:///ABSOLUTE/PATH
                       "KFCLI_STORE": "sqlite:///" + f"{tmp}/store{n}.db".lstrip("/"),
                       "KFCLI_CONFIG_DIR": f"{tmp}/cfg", "XDG_CACHE_HOME": f"{tmp}/cache",
                       "XDG_STATE_HOME": f"{tmp}/state{n}", "PYTHONUNBUFFERED": "1"}
                results.append((plain_name, run_plain(
                    sandbox, env, sandbox.accounts(args.accounts), args.rate, seconds)))
                results.append((kfcli_name, run_kfcli(
                    sandbox, env, sandbox.accounts(args.accounts), args.rate, seconds,
                    args.workers)))
                loads.append(os.getloadavg()[0])
                print(f"  round {n + 1}: kfcli p99 {pct(results[-1][1]['lat'], 0.99):.1f} ms",
                      flush=True)
        finally:
            sandbox.stop()

    print()
    print(f"=== bench/receiver.py: {args.rate:g} callbacks/s for {seconds:g} s, each announcing "
          f"a new customer message; SQLite store; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; load average {min(loads):.1f}-{max(loads):.1f} ===")
    print(f"{'receiver':<32}{'round':>6}{'sent':>6}{'ok':>6}{'cb/s':>8}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}")
    for i, (name, r) in enumerate(results):
        lat = r["lat"]
        sent = len(lat) + r["failures"]
        print(f"{name:<32}{i // 2 + 1:>6}{sent:>6}{len(lat):>6}{len(lat) / r['elapsed']:>8.1f}"
              f"{pct(lat, 0.50):>9.2f}{pct(lat, 0.99):>9.2f}"
              f"{max(lat) * 1000 if lat else float('nan'):>9.2f}"
              + (f"  ({r['setup_failures']} customer messages failed)"
                 if r["setup_failures"] else ""))
    ours = [r for name, r in results if name == kfcli_name]
    base = [r for name, r in results if name == plain_name]

    def median_of(rs: list[dict], q: float) -> float:
        return statistics.median(pct(r["lat"], q) for r in rs)

    p50, p99 = median_of(ours, 0.5), median_of(ours, 0.99)
    b50, b99 = median_of(base, 0.5), median_of(base, 0.99)
    rate = statistics.median(len(r["lat"]) / r["elapsed"] for r in ours)
    print(f"median over rounds: kfcli {rate:.1f} callbacks/s sustained, p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms; plain p50 {b50:.2f} ms, p99 {b99:.2f} ms "
          f"(kfcli/plain: p50 x{p50 / b50:.2f}, p99 x{p99 / b99:.2f})")
    total = {k: sum(r[k] for r in ours) for k in
             ("expected", "emitted", "distinct", "duplicates", "missing", "unexpected",
              "callbacks", "answered")}
    print(f"exactly once on gunicorn's stdout (all rounds, warm-ups included): expected "
          f"{total['expected']}, emitted {total['emitted']} ({total['distinct']} distinct), "
          f"duplicates {total['duplicates']}, missing {total['missing']}, other message "
          f"lines {total['unexpected']}; callback lines {total['callbacks']} of "
          f"{total['answered']} answered; last message line at most "
          f"{max(r['drain'] for r in ours):.2f} s after the load ended")
    delivery = [d for r in ours for d in r["delivery"]]
    print(f"customer message -> its line on stdout (after the warm-up): p50 "
          f"{pct(delivery, 0.5):.1f} ms, p99 {pct(delivery, 0.99):.1f} ms, "
          f"max {max(delivery, default=0) * 1000:.1f} ms")
    ok = (total["duplicates"] == 0 and total["missing"] == 0 and total["expected"] > 0
          and total["callbacks"] == total["answered"])
    print(f"exactly once: {'met' if ok else 'MISSED'}")
    errors = [line for r in ours for line in r["errors"]]
    if errors:
        print("gunicorn stderr (last lines):")
        for line in errors[-25:]:
            print(f"  {line}")
    verdict = "met" if p99 < 50 else "MISSED"
    print(f"target p99 < 50 ms at {args.rate:g} callbacks/s (median round): {p99:.1f} ms, "
          f"{verdict}")


if __name__ == "__main__":
    main()
