"""`kfcli msg history` on a large store against the same command on a small one.

    python bench/history.py [--runs 15] [--large 200000] [--small 1000] [--quick]

Builds two SQLite stores directly with `kfcli.core.store.open_store(url).commit_page(...)`,
in pages of 1,000 messages made with `Incoming.from_api(doc)`, one account each:

* small: --small messages (1,000), 200 customers with 5 messages each, interleaved;
* large: --large messages (200,000), the same 200 customers; the queried customer X has the
  same 5 messages as in the small store, spread from the first page to the last, and the
  other 199 customers share the rest.

Then times, in one run with the two stores alternated, fresh processes of the installed
entry point:

    kfcli msg history OPEN_KFID --customer X -o jsonl      (target: large/small <= 1.5x)
    kfcli msg history OPEN_KFID --limit 20 -o jsonl        (the last 20 of the account)

with KFCLI_STORE set to the store, KFCLI_CORP_ID to the corp the stores were filled for and a
dummy KFCLI_SECRET/KFCLI_BASE_URL (history reads only the store). Prints the median wall time
on each store and the ratio; also checks that both stores print the same 5 lines for X.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORP_ID = "wwbenchhistorycorp01"
OPEN_KFID = "wkBenchHistory000000000000000001"
CUSTOMERS = 200
PER_CUSTOMER = 5
PAGE = 1000
T0 = 1_790_000_000
SPAN = 3 * 86400


def customer(i: int) -> str:
    return f"wmBenchCustomer{i:017d}"


def doc(n: int, who: str, send_time: int) -> dict:
    return {"msgid": f"bench{n:027d}", "open_kfid": OPEN_KFID, "external_userid": who,
            "send_time": send_time, "origin": 3, "msgtype": "text",
            "text": {"content": f"message {n} from {who}: how do I return my order?"}}


def plan(total: int, seed: int) -> list[str]:
    """The customer of each message, in store order. Customer 0 (X) has PER_CUSTOMER messages
    spread evenly over the whole range (first and last included); the others share the rest
    evenly (so with total == CUSTOMERS * PER_CUSTOMER every customer has PER_CUSTOMER)."""
    rng = random.Random(seed)
    others = [customer(1 + i % (CUSTOMERS - 1)) for i in range(total - PER_CUSTOMER)]
    rng.shuffle(others)
    at = {round(k * (total - 1) / (PER_CUSTOMER - 1)) for k in range(PER_CUSTOMER)}
    it = iter(others)
    return [customer(0) if i in at else next(it) for i in range(total)]


def build(path: Path, total: int) -> float:
    """Fill a new store; returns seconds taken. X's messages are the same in every store
    (msgids bench0..bench4, same times and texts), so the outputs can be compared."""
    from kfcli.core.store import Incoming, open_store

    start = time.perf_counter()
    who = plan(total, seed=total)
    x_seen = 0
    other = PER_CUSTOMER
    store = open_store("sqlite:///" + str(path).lstrip("/"))
    try:
        expected = None
        for first in range(0, total, PAGE):
            items = []
            for i in range(first, min(total, first + PAGE)):
                # Sent over the same 3 days in both stores; X's messages at the same times.
                if who[i] == customer(0):
                    n, x_seen = x_seen, x_seen + 1
                    sent = T0 + n * SPAN // (PER_CUSTOMER - 1)
                else:
                    n, other = other, other + 1
                    sent = T0 + i * SPAN // max(1, total - 1)
                items.append(Incoming.from_api(doc(n, who[i], sent)))
            cursor = f"cursor{first + len(items)}"
            store.commit_page(CORP_ID, OPEN_KFID, expected=expected, cursor=cursor,
                              messages=items, owner=None)
            expected = cursor
    finally:
        store.close()
    assert x_seen == PER_CUSTOMER, x_seen
    return time.perf_counter() - start


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="default 15 (--quick: 3)")
    parser.add_argument("--large", type=int, default=None, help="default 200000 (--quick: "
                        "20000)")
    parser.add_argument("--small", type=int, default=CUSTOMERS * PER_CUSTOMER)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 15)
    large = args.large or (20_000 if args.quick else 200_000)
    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")

    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"small": Path(tmp) / "small.db", "large": Path(tmp) / "large.db"}
        sizes = {"small": args.small, "large": large}
        built = {}
        for name, path in stores.items():
            print(f"building the {name} store ({sizes[name]} messages) ...", flush=True)
            built[name] = build(path, sizes[name])
        base_env = {**os.environ, "KFCLI_CORP_ID": CORP_ID, "KFCLI_SECRET": "dummy-secret",
                    "KFCLI_BASE_URL": "http://127.0.0.1:9", "KFCLI_CONFIG_DIR": f"{tmp}/cfg",
                    "XDG_CACHE_HOME": f"{tmp}/cache", "XDG_STATE_HOME": f"{tmp}/state"}
        queries = {
            f"--customer X ({PER_CUSTOMER} msgs)": ["--customer", customer(0)],
            "--limit 20": ["--limit", "20"],
        }
        times: dict[tuple[str, str], list[float]] = {}
        outputs: dict[tuple[str, str], str] = {}
        for query, extra in queries.items():
            cmd = [kfcli, "msg", "history", OPEN_KFID, *extra, "-o", "jsonl"]
            for name, path in stores.items():  # warm-up: caches, and the outputs to compare
                env = {**base_env, "KFCLI_STORE": f"sqlite:///{str(path).lstrip('/')}"}
                _, outputs[query, name] = timed(cmd, env)
                times[query, name] = []
            for _ in range(runs):
                for name, path in stores.items():
                    env = {**base_env, "KFCLI_STORE": f"sqlite:///{str(path).lstrip('/')}"}
                    t, _ = timed(cmd, env)
                    times[query, name].append(t)
        loads.append(os.getloadavg()[0])
        sizes_mb = {name: path.stat().st_size / 1e6 for name, path in stores.items()}

    print()
    print(f"=== bench/history.py: msg history on a {large}-message store vs a "
          f"{args.small}-message one (medians of {runs} alternated runs; Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{min(loads):.1f}-{max(loads):.1f}) ===")
    print("stores: " + ", ".join(
        f"{name} {sizes[name]} msgs, {sizes_mb[name]:.1f} MB, built in {built[name]:.1f} s"
        for name in stores))
    print(f"{'query':<26}{'small ms':>10}{'large ms':>10}{'large/small':>13}{'lines':>8}"
          f"{'same output':>13}")
    for query in queries:
        small = statistics.median(times[query, "small"])
        big = statistics.median(times[query, "large"])
        lines = [len(outputs[query, n].splitlines()) for n in stores]
        same = outputs[query, "small"] == outputs[query, "large"]
        shown_same = "yes" if same else ("no" if query.startswith("--customer") else "-")
        print(f"{query:<26}{small * 1000:>10.1f}{big * 1000:>10.1f}{big / small:>12.2f}x"
              f"{'/'.join(map(str, lines)):>8}{shown_same:>13}")
    query = next(iter(queries))
    ratio = statistics.median(times[query, "large"]) / statistics.median(times[query, "small"])
    same = outputs[query, "small"] == outputs[query, "large"]
    print(f"target --customer large/small <= 1.5x: {ratio:.2f}x, "
          f"{'met' if ratio <= 1.5 and same else 'MISSED'}"
          + ("" if same else " (outputs differ)"))


if __name__ == "__main__":
    main()
