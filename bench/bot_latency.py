"""Bot latency through the README's pipeline: from a customer's message to the bot's reply
delivered, with a receiver ingesting, on SQLite and PostgreSQL, also after the loop sat idle.

    python bench/bot_latency.py [--store sqlite postgresql] [--messages 200] [--idle 120]
    pg_virtualenv -t python bench/bot_latency.py          # PostgreSQL from the libpq environment

A sandbox runs in its own process and POSTs a signed, encrypted callback to the receiver for
each customer message, as WeCom does. Per store (a fresh SQLite file, or a fresh database):

    kfcli callback serve --sync --no-emit --port 0                     (the ingest)
    kfcli msg history K --follow --consumer bot --ack replies -o jsonl \\
        | python examples/bot.py | kfcli msg send --batch -              (the bot loop)

then --messages customer messages, one at a time, each from a new customer (WeCom's reply
window is per customer), each waited for: the latency is from the moment the message was
posted to the sandbox to the moment the pipeline's result line for its reply ("sent") is
read. After messages 1/4, 2/4 and 3/4 of the way, the loop sits idle for --idle seconds
first ("after an idle spell": nothing polls WeCom or the store hard meanwhile, and nothing
backs off for a minute either).

The plain alternative, in the same run, is the floor of any such loop: one sync_msg (with the
callback's token) and one send_msg made by this process over one keep-alive connection right
after the message is posted, with no store, no callback and no bot (what remains of kfcli's
latency above it is the callback, the commit, the wake-up of the consumer, the bot's grouping
of messages that arrive together and three processes' pipes). Printed: p50, p95 and max per
store, the idle spells' own latencies, and the ratio of p50 to the floor's p50. Nothing is
asserted; the target is p95 <= 0.5 s on both stores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from receiver import Sandbox  # noqa: E402  (bench/receiver.py: the sandbox in its own process)
from sync import PgDatabases  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KFCLI = [sys.executable, "-m", "kfcli"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Pipeline:
    """The receiver and the bot loop, as processes; result lines of `msg send --batch` are
    read on a thread as they come."""

    def __init__(self, env: dict[str, str], open_kfid: str) -> None:
        self.env = env
        self.receiver = subprocess.Popen(
            [*KFCLI, "callback", "serve", "--sync", "--no-emit", "--port", "0"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = self.receiver.stderr.readline()
        if "listening on " not in first:
            raise SystemExit(f"the receiver did not start: {first}")
        self.url = first.split("listening on ", 1)[1].split()[0]
        threading.Thread(target=self._drain, args=(self.receiver.stderr,), daemon=True).start()
        # The consumer exists before the first message (it starts at the newest one).
        subprocess.run([*KFCLI, "msg", "history", open_kfid, "--consumer", "bot", "-o", "jsonl"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        loop = (f"{' '.join(KFCLI)} msg history {open_kfid} --follow --consumer bot "
                f"--ack replies -o jsonl | {sys.executable} {ROOT / 'examples' / 'bot.py'} "
                f"| {' '.join(KFCLI)} msg send --batch -")
        self.loop = subprocess.Popen(["bash", "-c", loop], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        threading.Thread(target=self._drain, args=(self.loop.stderr,), daemon=True).start()
        self.results: list[tuple[float, dict]] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _drain(self, stream) -> None:
        for _ in stream:
            pass

    def _read(self) -> None:
        for line in self.loop.stdout:
            now = time.monotonic()
            with self.arrived:
                self.results.append((now, json.loads(line)))
                self.arrived.notify_all()

    def wait(self, count: int, timeout: float = 60.0) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.results) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"no reply within {timeout:.0f} s (result {count})")
                self.arrived.wait(left)
            return self.results[count - 1]

    def stop(self) -> None:
        import signal

        for proc in (self.loop, self.receiver):
            try:
                os.killpg(proc.pid, signal.SIGTERM) if proc is self.loop else proc.terminate()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


def run_kfcli(sandbox: Sandbox, env: dict[str, str], messages: int, idle: float
              ) -> tuple[list[float], list[float]]:
    (open_kfid,) = sandbox.accounts(1)
    pipeline = Pipeline(env, open_kfid)
    try:
        doc = sandbox.call("POST", "/sandbox/callback", {"url": pipeline.url})
        assert doc.get("errcode", 0) == 0, doc
        latencies, after_idle = [], []
        spells = {messages * k // 4 for k in (1, 2, 3)}
        for n in range(messages):
            if n in spells and idle:
                time.sleep(idle)
            posted = time.monotonic()
            doc = sandbox.call("POST", "/sandbox/customer_message",
                               {"open_kfid": open_kfid, "text": f"latency {n}",
                                "external_userid": f"wmLat{n:05d}"})
            assert doc.get("errcode", 0) == 0, doc
            at, result = pipeline.wait(n + 1)
            if result.get("status") != "sent":
                raise SystemExit(f"reply {n}: {result}")
            latencies.append(at - posted)
            if n in spells and idle:
                after_idle.append(at - posted)
        return latencies, after_idle
    finally:
        sandbox.call("POST", "/sandbox/callback", {"url": ""})
        pipeline.stop()


def run_floor(sandbox: Sandbox, messages: int) -> list[float]:
    """sync_msg + send_msg by hand, right after each message: the floor of any bot loop."""
    (open_kfid,) = sandbox.accounts(1)
    token = sandbox.call("GET", "/cgi-bin/gettoken", corpid=sandbox.creds["corp_id"],
                         corpsecret=sandbox.creds["secret"])["access_token"]
    cursor = ""
    out = []
    for n in range(messages):
        posted = time.monotonic()
        sandbox.call("POST", "/sandbox/customer_message",
                     {"open_kfid": open_kfid, "text": f"floor {n}",
                      "external_userid": f"wmFloor{n:05d}"})
        page = sandbox.call("POST", "/cgi-bin/kf/sync_msg",
                            {"open_kfid": open_kfid, "cursor": cursor, "limit": 1000},
                            access_token=token)
        cursor = page.get("next_cursor", cursor)
        (msg,) = [m for m in page["msg_list"] if m.get("origin") == 3]
        sent = sandbox.call("POST", "/cgi-bin/kf/send_msg",
                            {"touser": msg["external_userid"], "open_kfid": open_kfid,
                             "msgtype": "text", "text": {"content": "收到"}},
                            access_token=token)
        assert sent.get("errcode") == 0, sent
        out.append(time.monotonic() - posted)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--idle", type=float, default=120.0,
                        help="seconds of idleness before three of the messages")
    parser.add_argument("--pg-url", help="a postgresql:// URL of the server to use")
    args = parser.parse_args()
    if "postgresql" in args.store and not (args.pg_url or os.environ.get("PGHOST")):
        raise SystemExit("PostgreSQL: run under pg_virtualenv -t, or give --pg-url "
                         "(or --store sqlite)")
    print(f"{args.messages} messages one at a time, idle {args.idle:g} s three times; load "
          f"average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(Path(tmp) / "sandbox.db")
        pg = PgDatabases(args.pg_url) if "postgresql" in args.store else None
        try:
            creds = sandbox.creds
            floor = run_floor(sandbox, args.messages)
            rows.append(("floor: sync_msg + send_msg by hand", floor, []))
            for i, store in enumerate(args.store):
                env = {**os.environ, "KFCLI_BASE_URL": sandbox.base_url,
                       "KFCLI_CORP_ID": creds["corp_id"], "KFCLI_SECRET": creds["secret"],
                       "KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"],
                       "KFCLI_CONFIG_DIR": f"{tmp}/cfg{i}", "XDG_CACHE_HOME": f"{tmp}/cache",
                       "XDG_STATE_HOME": f"{tmp}/state{i}", "PYTHONUNBUFFERED": "1",
                       "KFCLI_STORE": pg.new() if store == "postgresql" and pg else
                       "sqlite:///" + f"{tmp}/store{i}.db".lstrip("/")}
                latencies, idle = run_kfcli(sandbox, env, args.messages, args.idle)
                rows.append((f"kfcli pipeline, {store}", latencies, idle))
        finally:
            sandbox.stop()
            if pg is not None:
                pg.drop_all()
    base = statistics.median(rows[0][1])
    print(f"{'':38} {'p50':>8} {'p95':>8} {'max':>8} {'after idle':>22} {'p50/floor':>10}")
    for name, values, idle in rows:
        spells = " ".join(f"{v * 1000:.0f}" for v in idle) + " ms" if idle else ""
        print(f"{name:38} {pct(values, 50) * 1000:6.0f}ms {pct(values, 95) * 1000:6.0f}ms "
              f"{max(values) * 1000:6.0f}ms {spells:>22} "
              f"{statistics.median(values) / base:9.1f}x")
    print(f"load average {os.getloadavg()[0]:.2f}; target: p95 <= 500 ms on each store")


if __name__ == "__main__":
    main()
