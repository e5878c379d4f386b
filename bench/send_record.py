"""`kfcli msg send --batch` of 2,000 replies, each recorded in the store with its conversation
(issue 21: sends in the archive), against the same batch by the kfcli before that change.

    python bench/send_record.py [--runs 5] [--customers 400] [--baseline REF] [--parallel 4]

A sandbox runs in its own process (bench/receiver.py). The baseline is the kfcli of git REF
(default: the parent of the commit that added origin 100, `kfcli.core.origins.KFCLI`),
exported with `git archive` and run as `python -m kfcli` with it first on PYTHONPATH; the
current one is this checkout's. Per run, for each of the two in alternating order: a new
account, --customers customers who each write once, `kfcli msg sync` into a fresh SQLite
store of its own, then, timed (wall clock of the whole process):

    kfcli msg send --batch replies.jsonl --parallel N

with 5 replies per customer (`reply_to` their message: the window allows 5), 2,000 lines
for 400 customers. Both check the window and record each send and acknowledgement (the
baseline in its `sent` table; the current one also stores the message: origin 100, search
index). Prints the median of each and the ratio (target: current / baseline <= 1.15x);
checks that every line was sent and that the current store holds the 2,000 sends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from receiver import Sandbox  # noqa: E402  (the sandbox in its own process)

ROOT = Path(__file__).resolve().parents[1]
PER_CUSTOMER = 5


def baseline_ref() -> str:
    added = subprocess.run(["git", "log", "--format=%H", "-S", "KFCLI = 100", "--reverse",
                            "--", "kfcli/core/origins.py"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("no commit adds origin 100 here: give --baseline REF")
    return added[0] + "^"


def export(ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", "archive", ref, "kfcli"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def kfcli(env: dict[str, str], *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    run_env = dict(env)
    if path is not None:
        run_env["PYTHONPATH"] = path
    # From the temporary directory: `python -m` puts the working directory first on the
    # path, and this checkout's kfcli must not shadow the baseline's.
    return subprocess.run([sys.executable, "-m", "kfcli", *args], env=run_env,
                          capture_output=True, text=True, cwd=Path(env["KFCLI_CONFIG_DIR"]).parent)


def prepare(sandbox: Sandbox, env: dict[str, str], customers: int, path: str | None,
            batch: Path) -> str:
    """A new account whose customers wrote once each, synced into env's store; the batch
    file of replies written. Returns the account."""
    (open_kfid,) = sandbox.accounts(1)
    for i in range(customers):
        doc = sandbox.call("POST", "/sandbox/customer_message",
                           {"open_kfid": open_kfid, "text": f"question {i}"})
        assert doc.get("errcode") == 0, doc
    r = kfcli(env, "msg", "sync", open_kfid, "-o", "jsonl", path=path)
    assert r.returncode == 0, r.stderr
    inbound = [json.loads(x) for x in r.stdout.splitlines()]
    with open(batch, "w", encoding="utf-8") as f:
        for m in inbound:
            for n in range(PER_CUSTOMER):
                f.write(json.dumps({"open_kfid": open_kfid,
                                    "external_userid": m["external_userid"],
                                    "msgtype": "text",
                                    "text": {"content": f"answer {n + 1} to {m['msgid']}"},
                                    "reply_to": m["msgid"]}, ensure_ascii=False) + "\n")
    return open_kfid


def version(env: dict[str, str], path: str | None) -> str:
    return kfcli(env, "--version", path=path).stdout.strip()


def timed(env: dict[str, str], batch: Path, parallel: int, path: str | None) -> float:
    started = time.perf_counter()
    r = kfcli(env, "msg", "send", "--batch", str(batch), "--parallel", str(parallel),
              path=path)
    took = time.perf_counter() - started
    assert r.returncode == 0, r.stderr[-2000:]
    statuses = {json.loads(x)["status"] for x in r.stdout.splitlines()}
    assert statuses == {"sent"}, statuses
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--baseline", help="git ref of the kfcli to compare with")
    args = parser.parse_args()
    ref = args.baseline or baseline_ref()
    lines = args.customers * PER_CUSTOMER
    print(f"msg send --batch of {lines} replies ({args.customers} customers x {PER_CUSTOMER}), "
          f"--parallel {args.parallel}, {args.runs} runs; baseline {ref}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        export(ref, base)
        sandbox = Sandbox(Path(tmp) / "sandbox.db")
        creds = sandbox.creds
        try:
            for run in range(args.runs):
                order = ["baseline", "current"] if run % 2 == 0 else ["current", "baseline"]
                for which in order:
                    path = str(base) if which == "baseline" else None
                    where = Path(tmp) / f"{which}{run}"
                    env = {**os.environ, "KFCLI_BASE_URL": sandbox.base_url,
                           "KFCLI_CORP_ID": creds["corp_id"], "KFCLI_SECRET": creds["secret"],
                           "KFCLI_CONFIG_DIR": str(where / "cfg"),
                           "XDG_CACHE_HOME": str(where / "cache"),
                           "XDG_STATE_HOME": str(where / "state"),
                           "KFCLI_STORE": "sqlite:///" + str(where / "store.db").lstrip("/")}
                    batch = where / "replies.jsonl"
                    where.mkdir()
                    if run == 0:
                        print(f"  {which}: {version(env, path)}", flush=True)
                    open_kfid = prepare(sandbox, env, args.customers, path, batch)
                    took = timed(env, batch, args.parallel, path)
                    times[which].append(took)
                    if which == "current":
                        r = kfcli(env, "msg", "history", open_kfid, "-o", "jsonl")
                        sends = sum(1 for x in r.stdout.splitlines()
                                    if json.loads(x)["origin"] == 100)
                        assert sends == lines, sends
                    print(f"  run {run + 1} {which:8} {took:6.2f} s", flush=True)
        finally:
            sandbox.stop()
    b, c = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(f"median: baseline {b:.2f} s ({lines / b:.0f} sends/s), current (every send "
          f"recorded with its conversation) {c:.2f} s ({lines / c:.0f} sends/s); ratio "
          f"{c / b:.2f}x (target <= 1.15x); load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
