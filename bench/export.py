"""`kfcli msg export` throughput and memory on a large store.

    python bench/export.py [--large 1000000] [--small 100000] [--runs 3] [--formats csv,...]
    python bench/export.py --quick          # 20,000 vs 2,000 messages, csv and html

Builds two SQLite stores directly with `kfcli.core.store.open_store(url).commit_page(...)`,
in pages of 1,000 messages made with `Incoming.from_api(doc)`, one account each, sent over
7 days by 5,000 customers: 80% customer text (Chinese and Latin, some with a line break),
10% servicer answers, 5% images, 5% enter_session events.

Then runs, in fresh processes of the installed entry point, for each store and format:

    kfcli msg export --format FMT -O OUT --force

and reports the median wall time, messages per second, and the peak RSS of the process
(`wait4` rusage). Targets: csv >= 100,000 messages/s on the large store; peak RSS on the
large store within 1.2x of the small store's (memory flat in the number of messages).
Also prints how fast the store can be read and each row parsed with json.loads in-process,
nothing else: the ceiling for any export that looks inside the messages, on this machine.
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

CORP_ID = "wwbenchexportcorp001"
OPEN_KFID = "wkBenchExport0000000000000000001"
CUSTOMERS = 5000
PAGE = 1000
T0 = 1_790_000_000
SPAN = 7 * 86400
TEXTS = ["你好，我想问一下我的订单什么时候发货？", "请问可以退款吗", "OK, thanks a lot!",
         "订单号 2026113012345\n麻烦帮我查一下物流", "The parcel arrived damaged, what now?",
         "好的，谢谢", "这个优惠券怎么用？有效期到什么时候", "Can I change the delivery address?"]


def doc(n: int, rng: random.Random, send_time: int) -> dict:
    who = f"wmBenchExportCustomer{rng.randrange(CUSTOMERS):011d}"
    base = {"msgid": f"benchexport{n:021d}", "open_kfid": OPEN_KFID, "send_time": send_time}
    roll = rng.random()
    if roll < 0.80:
        return {**base, "external_userid": who, "origin": 3, "msgtype": "text",
                "text": {"content": rng.choice(TEXTS)}}
    if roll < 0.90:
        return {**base, "external_userid": who, "origin": 5, "servicer_userid": "user001",
                "msgtype": "text", "text": {"content": "您好，这边帮您查询一下，请稍等。"}}
    if roll < 0.95:
        return {**base, "external_userid": who, "origin": 3, "msgtype": "image",
                "image": {"media_id": f"2{n:040d}MEDIAIDBENCH"}}
    return {**base, "origin": 4, "msgtype": "event",
            "event": {"event_type": "enter_session", "open_kfid": OPEN_KFID,
                      "external_userid": who, "scene": "spring_sale", "scene_param": ""}}


def build(path: Path, total: int) -> float:
    from kfcli.core.store import Incoming, open_store

    start = time.perf_counter()
    rng = random.Random(total)
    store = open_store("sqlite:///" + str(path).lstrip("/"))
    try:
        expected = None
        for first in range(0, total, PAGE):
            items = [Incoming.from_api(doc(i, rng, T0 + i * SPAN // max(1, total - 1)))
                     for i in range(first, min(total, first + PAGE))]
            cursor = f"cursor{first + len(items)}"
            store.commit_page(CORP_ID, OPEN_KFID, expected=expected, cursor=cursor,
                              messages=items, owner=None)
            expected = cursor
    finally:
        store.close()
    return time.perf_counter() - start


def parse_rate(path: Path) -> float:
    """Messages/s of reading the store and json.loads-ing each row, nothing else: the
    ceiling of any export that looks inside messages, on this machine, now."""
    import json

    from kfcli.core.store import open_store

    store = open_store("sqlite:///" + str(path).lstrip("/"))
    try:
        start = time.perf_counter()
        count = sum(1 for row in store.messages(CORP_ID, None) if json.loads(row.text))
        return count / (time.perf_counter() - start)
    finally:
        store.close()


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return elapsed, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=None, help="default 1000000")
    parser.add_argument("--small", type=int, default=None, help="default 100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default="csv,jsonl,html")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    large = args.large or (20_000 if args.quick else 1_000_000)
    small = args.small or (2_000 if args.quick else 100_000)
    formats = args.formats.split(",")
    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")
    loads = [os.getloadavg()[0]]
    results: dict[tuple[str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"small": Path(tmp) / "small.db", "large": Path(tmp) / "large.db"}
        sizes = {"small": small, "large": large}
        built = {}
        for name, path in stores.items():
            print(f"building the {name} store ({sizes[name]:,} messages) ...", flush=True)
            built[name] = build(path, sizes[name])
        base_env = {**os.environ, "KFCLI_CORP_ID": CORP_ID, "KFCLI_SECRET": "dummy-secret",
                    "KFCLI_BASE_URL": "http://127.0.0.1:9", "KFCLI_CONFIG_DIR": f"{tmp}/cfg",
                    "XDG_CACHE_HOME": f"{tmp}/cache", "XDG_STATE_HOME": f"{tmp}/state"}
        for fmt in formats:
            for name, path in stores.items():
                env = {**base_env, "KFCLI_STORE": f"sqlite:///{str(path).lstrip('/')}"}
                out = Path(tmp) / f"out.{fmt}"
                cmd = [kfcli, "msg", "export", "--format", fmt, "-O", str(out), "--force"]
                runs = [run(cmd, env) for _ in range(args.runs)]
                results[fmt, name] = (statistics.median(t for t, _ in runs),
                                      max(m for _, m in runs))
                print(f"  {fmt} {name}: {results[fmt, name][0]:.2f} s, "
                      f"{out.stat().st_size / 1e6:.0f} MB written", flush=True)
        ceiling = parse_rate(stores["small"])
        loads.append(os.getloadavg()[0])
        sizes_mb = {name: path.stat().st_size / 1e6 for name, path in stores.items()}

    print()
    print(f"=== bench/export.py: msg export, medians of {args.runs} runs (Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{min(loads):.1f}-{max(loads):.1f}) ===")
    print("stores: " + ", ".join(
        f"{name} {sizes[name]:,} msgs, {sizes_mb[name]:.0f} MB, built in {built[name]:.0f} s"
        for name in stores))
    print(f"{'format':<8}{'store':>8}{'messages':>12}{'seconds':>10}{'msgs/s':>11}"
          f"{'peak RSS MB':>13}")
    for fmt in formats:
        for name in stores:
            seconds, rss = results[fmt, name]
            print(f"{fmt:<8}{name:>8}{sizes[name]:>12,}{seconds:>10.2f}"
                  f"{sizes[name] / seconds:>11,.0f}{rss:>13.1f}")
    print(f"reading the store and json.loads alone, in process: {ceiling:,.0f} msgs/s")
    if "csv" in formats:
        rate = large / results["csv", "large"][0]
        flat = results["csv", "large"][1] / results["csv", "small"][1]
        print(f"target csv >= 100,000 msgs/s on {large:,}: {rate:,.0f}/s, "
              f"{'met' if rate >= 100_000 else 'MISSED'}; peak RSS large/small {flat:.2f}x, "
              f"{'flat' if flat <= 1.2 else 'NOT FLAT'}")


if __name__ == "__main__":
    main()
