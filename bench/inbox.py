"""`kfcli msg inbox` on a large store against the same command on a small one.

    python bench/inbox.py [--runs 9] [--large 1000000] [--small 10000] [--share F] [--quick]

Builds two SQLite stores directly with `kfcli.core.store.open_store(url).commit_page(...)`
(as bench/history.py and bench/search.py do), in pages of 5,000 messages, one account, 50
messages per customer (customer and servicer turns alternating, the customers interleaved):

* small: --small messages (10,000): 200 customers;
* large: --large messages (1,000,000): 20,000 customers.

In both, the same WAITING customers (100) have a customer message last (the same msgids,
times and texts); every other conversation ends with a servicer's answer. Then times, in one
run with the two stores alternated, fresh processes of the installed entry point:

    kfcli msg inbox -o jsonl        (target: large/small within 2x)

with KFCLI_STORE set to the store and dummy credentials (inbox reads only the store). Prints
the median wall time on each store, the ratio, and whether both print the same lines.

--share F: instead, that share of each store's customers waits (0.9: 180 and 18,000); the
command prints the 100 most urgent (its default --limit), different customers in each store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from history import timed  # noqa: E402  (bench/history.py: a fresh process, timed)

CORP_ID = "wwbenchinboxcorp0001"
OPEN_KFID = "wkBenchInbox00000000000000000001"
PER_CUSTOMER = 50
WAITING = 100
PAGE = 5000
T0 = 1_790_000_000


def customer(i: int) -> str:
    return f"wmBenchCustomer{i:017d}"


def doc(i: int, customers: int, total: int, waiting: int = WAITING) -> dict:
    """Message i of the store: customer i % customers, turn i // customers (customer turns
    even, servicer odd; the waiting customers' last turn is theirs). The waiting customers'
    last messages are the same in every store: msgid, time and text."""
    c, turn = i % customers, i // customers
    last = turn == PER_CUSTOMER - 1
    origin = 3 if (c < waiting and last) or turn % 2 == 0 else 5
    if c < waiting and last:
        msgid, sent = f"benchwait{c:023d}", T0 + 86400 + c * 60
    else:
        msgid, sent = f"bench{i:027d}", T0 + i * 86400 // total
    d = {"msgid": msgid, "open_kfid": OPEN_KFID, "external_userid": customer(c),
         "send_time": sent, "origin": origin, "msgtype": "text",
         "text": {"content": f"turn {turn}: where is my order?" if origin == 3 else
                  f"turn {turn}: it ships today"}}
    if origin == 5:
        d["servicer_userid"] = "benchservicer"
    return d


def build(path: Path, total: int, share: float | None = None) -> float:
    from kfcli.core.store import Incoming, open_store

    customers = total // PER_CUSTOMER
    waiting = WAITING if share is None else int(customers * share)
    start = time.perf_counter()
    store = open_store("sqlite:///" + str(path).lstrip("/"))
    try:
        expected = None
        for first in range(0, total, PAGE):
            items = [Incoming.from_api(doc(i, customers, total, waiting))
                     for i in range(first, min(total, first + PAGE))]
            cursor = f"cursor{first + len(items)}"
            store.commit_page(CORP_ID, OPEN_KFID, expected=expected, cursor=cursor,
                              messages=items, owner=None)
            expected = cursor
    finally:
        store.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="default 9 (--quick: 3)")
    parser.add_argument("--large", type=int, default=None,
                        help="default 1000000 (--quick: 100000)")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=None,
                        help=f"the share of customers waiting (default: {WAITING} in each)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 9)
    large = args.large or (100_000 if args.quick else 1_000_000)
    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")

    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"small": Path(tmp) / "small.db", "large": Path(tmp) / "large.db"}
        sizes = {"small": args.small, "large": large}
        built = {}
        for name, path in stores.items():
            print(f"building the {name} store ({sizes[name]} messages, "
                  f"{sizes[name] // PER_CUSTOMER} customers) ...", flush=True)
            built[name] = build(path, sizes[name], args.share)
        base_env = {**os.environ, "KFCLI_CORP_ID": CORP_ID, "KFCLI_SECRET": "dummy-secret",
                    "KFCLI_BASE_URL": "http://127.0.0.1:9", "KFCLI_CONFIG_DIR": f"{tmp}/cfg",
                    "XDG_CACHE_HOME": f"{tmp}/cache", "XDG_STATE_HOME": f"{tmp}/state"}
        cmd = [kfcli, "msg", "inbox", "-o", "jsonl"]
        envs = {name: {**base_env, "KFCLI_STORE": f"sqlite:///{str(path).lstrip('/')}"}
                for name, path in stores.items()}
        outputs = {name: timed(cmd, envs[name])[1] for name in stores}  # warm-up
        times: dict[str, list[float]] = {name: [] for name in stores}
        for _ in range(runs):
            for name in stores:
                times[name].append(timed(cmd, envs[name])[0])
        loads.append(os.getloadavg()[0])

    def lines(out: str) -> list[str]:  # `waited` depends on the clock of each run
        import json

        return [json.dumps({k: v for k, v in json.loads(x).items() if k != "waited"})
                for x in out.splitlines()]

    small, big = statistics.median(times["small"]), statistics.median(times["large"])
    same = args.share is not None or lines(outputs["small"]) == lines(outputs["large"])
    print()
    print(f"=== bench/inbox.py: msg inbox on a {large}-message store vs a {args.small}-message "
          f"one (medians of {runs} alternated runs; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f}) ===")
    print("stores: " + ", ".join(f"{name} {sizes[name]} msgs / {sizes[name] // PER_CUSTOMER} "
                                 f"customers, built in {built[name]:.1f} s" for name in stores))
    print(f"small {small * 1000:.1f} ms, large {big * 1000:.1f} ms, "
          f"{len(outputs['large'].splitlines())} listed, same output: "
          f"{'-' if args.share is not None else 'yes' if same else 'no'}")
    ratio = big / small
    print(f"target large/small <= 2x: {ratio:.2f}x, "
          f"{'met' if ratio <= 2 and same else 'MISSED'}" + ("" if same else " (outputs differ)"))


if __name__ == "__main__":
    main()
