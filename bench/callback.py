"""Callback receiver latency under a steady load, against plain wsgiref apps in the same run.

    python bench/callback.py [--rate 200] [--seconds 10]

Each receiver runs in its own process on loopback; the client (this process) sends signed,
encrypted kf_msg_or_event POSTs open-loop at --rate requests/s for --seconds, each on a new
connection (wsgiref speaks HTTP/1.0), from a pool of threads using `http.client`. Latency is
measured from the moment a request was *due*, so a receiver that falls behind is charged for
the queueing too (no coordinated omission).

Receivers:

1. `wsgiref plain` - `wsgiref.simple_server.make_server` as is (one request at a time), an app
   that answers 200 "success" without reading anything: the floor of the standard library;
2. `wsgiref plain, threaded` - the same app on wsgiref with `ThreadingMixIn`, the server model
   kfcli uses;
3. `kfcli callback serve` - verify, decrypt, parse, queue, answer; a worker thread writes each
   callback as a JSON line (counted here, to show the worker keeps up).

Target: kfcli's p99 < 50 ms at 200 requests/s.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "wx5823bf96d3bd56c7"

PLAIN = """
import sys, socketserver
from wsgiref.simple_server import WSGIServer, WSGIRequestHandler, make_server

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

class Threaded(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")])
    return [b"success"]

cls = Threaded if sys.argv[1] == "threaded" else WSGIServer
server = make_server("127.0.0.1", 0, app, server_class=cls, handler_class=Quiet)
print(f"listening on http://127.0.0.1:{server.server_port}/", file=sys.stderr, flush=True)
server.serve_forever()
"""


class Proc:
    """A receiver subprocess: its port from the first stderr line; stdout lines counted."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        if not line.startswith("listening on http://"):
            self.proc.kill()
            raise SystemExit(f"receiver did not start: {line}{self.proc.stderr.read()}")
        self.port = int(line.split()[2].rstrip("/").rsplit(":", 1)[1])
        self.lines = 0
        self.errors: list[str] = []
        threading.Thread(target=self._count, daemon=True).start()
        threading.Thread(target=self._errs, daemon=True).start()

    def _count(self) -> None:
        for _ in self.proc.stdout:
            self.lines += 1

    def _errs(self) -> None:
        for line in self.proc.stderr:
            self.errors.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def requests_for(count: int) -> list[tuple[str, bytes]]:
    """Distinct signed POSTs, built before the clock starts."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kfcli.core.crypto import WeComCrypto

    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    out = []
    for i in range(count):
        inner = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
                 f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                 "<Event><![CDATA[kf_msg_or_event]]></Event>"
                 f"<Token><![CDATA[ENCbench{i:06d}]]></Token>"
                 "<OpenKfId><![CDATA[wkBenchAccount000000000000000001]]></OpenKfId></xml>")
        post = crypto.build_post(inner.encode())
        out.append(("/?" + post.query, post.body))
    return out


def post(port: int, path: str, body: bytes) -> bool:
    """One callback on a new connection, as WeCom sends it: True when answered 200 success."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", path, body=body, headers={"Content-Type": "text/xml"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status == 200 and data == b"success"
    except (OSError, http.client.HTTPException):
        return False


def open_loop(total: int, rate: float, send) -> float:
    """Call `send(i, due)` for i in range(total) at `rate` per second, each on a pool thread
    at its due time whatever the earlier ones are doing (an open loop); returns the elapsed
    time once all were sent."""
    with ThreadPoolExecutor(max_workers=64) as pool:
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i, due)
    return time.perf_counter() - start


def drive(port: int, reqs: list[tuple[str, bytes]], rate: float, seconds: float
          ) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def send(i: int, due: float) -> None:
        nonlocal failures
        ok = post(port, *reqs[i % len(reqs)])
        done = time.perf_counter()
        with lock:
            if ok:
                latencies.append(done - due)
            else:
                failures += 1

    elapsed = open_loop(int(rate * seconds), rate, send)
    return latencies, failures, elapsed


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    env = {**os.environ, "KFCLI_TOKEN": TOKEN, "KFCLI_AES_KEY": AES_KEY, "KFCLI_CORP_ID": CORP_ID,
           "KFCLI_CONFIG_DIR": tempfile.mkdtemp(prefix="kfcli-bench-")}  # no profile
    kfcli = shutil.which("kfcli")
    kfcli_cmd = [kfcli] if kfcli else [sys.executable, "-m", "kfcli"]
    receivers = [
        ("wsgiref plain", [sys.executable, "-c", PLAIN, "single"]),
        ("wsgiref plain, threaded", [sys.executable, "-c", PLAIN, "threaded"]),
        ("kfcli callback serve", [*kfcli_cmd, "callback", "serve", "--port", "0"]),
    ]
    reqs = requests_for(500)
    print(f"open-loop {args.rate:g} requests/s for {args.seconds:g} s, new connection each, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"{'receiver':<26}{'sent':>7}{'ok':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'emitted':>9}")
    results = {}
    for name, cmd in receivers:
        proc = Proc(cmd, env)
        try:
            drive(proc.port, reqs, args.rate, 1.0)  # warm-up (imports, first AES)
            warm_lines = proc.lines
            lat, failures, elapsed = drive(proc.port, reqs, args.rate, args.seconds)
            time.sleep(0.5)  # let the worker write out what is queued
            emitted = proc.lines - warm_lines if name.startswith("kfcli") else 0
        finally:
            proc.stop()
        sent = len(lat) + failures
        results[name] = lat
        emitted_s = str(emitted) if name.startswith("kfcli") else "-"
        print(f"{name:<26}{sent:>7}{len(lat):>7}{sent / elapsed:>9.1f}{pct(lat, 0.50):>9.2f}"
              f"{pct(lat, 0.99):>9.2f}{max(lat) * 1000 if lat else float('nan'):>9.2f}"
              f"{emitted_s:>9}")
        if proc.errors:
            print(f"  stderr: {''.join(proc.errors[:3]).strip()}")
    ours, base = results["kfcli callback serve"], results["wsgiref plain, threaded"]
    if ours and base:
        print(f"kfcli / threaded wsgiref: p50 x{pct(ours, .5) / pct(base, .5):.2f}, "
              f"p99 x{pct(ours, .99) / pct(base, .99):.2f}; mean "
              f"{statistics.fmean(ours) * 1000:.2f} ms vs {statistics.fmean(base) * 1000:.2f} ms")
        verdict = "met" if pct(ours, 0.99) < 50 else "MISSED"
        print(f"target p99 < 50 ms at {args.rate:g} req/s: {verdict}")


if __name__ == "__main__":
    main()
