"""How large an SQLite store's write-ahead log grows, with the default checkpoint (64 MB) and
with KFCLI_SQLITE_WAL_MB, while messages arrive one at a time as a receiver stores them.

    python bench/wal.py [--messages 2000] [--limits 64 4 1]

For each limit, in one run: a fresh store, a reader holding it open (as a follower does, its
connection idle between looks), and MESSAGES pages of one message each committed through the
store's own commit_page (each a transaction, as a callback's pull is). Prints the largest
-wal file seen, the store file's size, and the time per message relative to the default's
(a ratio measured in the same run; no absolute target). The issue this answers: on an 8 MB
tmpfs the default WAL alone filled the disk after 86 messages.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kfcli.core.store import Incoming  # noqa: E402
from kfcli.core.store.sqlite import SqliteStore  # noqa: E402

TEXT = "请问订单什么时候发货？我已经等了三天了，能不能帮我查一下物流信息。" * 3


def run(limit: float, count: int, directory: Path) -> tuple[int, int, float]:
    path = directory / f"wal-{limit:g}.db"
    store = SqliteStore(path, wal_mb=limit)
    reader = SqliteStore(path, wal_mb=limit)
    wal = Path(f"{path}-wal")
    largest = 0
    cursor = None
    started = time.perf_counter()
    for n in range(count):
        doc = {"msgid": f"m{n:08d}", "open_kfid": "wkBench", "external_userid": f"wm{n % 50}",
               "send_time": 1_760_000_000 + n, "origin": 3, "msgtype": "text",
               "text": {"content": f"{TEXT} {n}"}}
        store.commit_page("wwBench", "wkBench", expected=cursor, cursor=f"c{n}",
                          messages=[Incoming.from_api(doc)], owner=None)
        cursor = f"c{n}"
        if n % 10 == 0:
            reader.last_seq("wwBench", "wkBench")  # a follower's look at the store
        largest = max(largest, wal.stat().st_size if wal.exists() else 0)
    took = time.perf_counter() - started
    size = path.stat().st_size
    reader.close()
    store.close()
    return largest, size, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--limits", type=float, nargs="+", default=[64, 4, 1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {limit: run(limit, args.messages, Path(tmp)) for limit in args.limits}
    base = results[args.limits[0]][2]
    print(f"{args.messages} messages, one per transaction")
    print(f"{'WAL limit':>10} {'largest -wal':>14} {'store file':>12} {'time/msg':>10} "
          f"{'vs first':>9}")
    for limit, (largest, size, took) in results.items():
        print(f"{limit:>8g} MB {largest / 1e6:>11.2f} MB {size / 1e6:>9.2f} MB "
              f"{took / args.messages * 1e3:>7.2f} ms {took / base:>8.2f}x")


if __name__ == "__main__":
    main()
