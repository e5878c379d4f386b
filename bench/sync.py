"""Throughput and peak memory of `kfcli msg sync` against a minimal `requests` loop.

    python bench/sync.py [--counts 5000 50000] [--runs 3]

For each message count, seeds a fresh sandbox and, in one run with the two commands alternated,
times `kfcli msg sync OPEN_KFID --all -o jsonl > /dev/null` (cursor saving and the msgid
journal included) and a plain script paging through sync_msg with `requests` and printing
each message as a JSON line. Prints messages/s for both, the ratio (target: kfcli >= 0.9x),
and the peak RSS of each process (target: kfcli's does not grow with the message count).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

# Runs a command with stdout to /dev/null and prints (seconds, peak RSS of the child in KiB).
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
with open("/dev/null", "wb") as sink:
    subprocess.run(sys.argv[1:], stdout=sink, check=True)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")
    import requests

    from kfcli.sandbox import start

    print(f"{'messages':>9} {'kfcli msg/s':>12} {'plain msg/s':>12} {'ratio':>6} "
          f"{'kfcli RSS':>10} {'plain RSS':>10}")
    for count in args.counts:
        with tempfile.TemporaryDirectory() as tmp:
            server = start(Path(tmp) / "bench.db")
            try:
                creds = server.credentials
                base = server.base_url
                token = requests.get(base + "/cgi-bin/gettoken", params={
                    "corpid": creds["corp_id"], "corpsecret": creds["secret"]}).json()[
                    "access_token"]
                png = Path(__file__).resolve().parents[1] / "examples" / "avatar.png"
                media = requests.post(base + "/cgi-bin/media/upload",
                                      params={"access_token": token, "type": "image"},
                                      files={"media": ("a.png", png.read_bytes())}).json()
                open_kfid = requests.post(base + "/cgi-bin/kf/account/add",
                                          params={"access_token": token},
                                          json={"name": "bench", "media_id": media["media_id"]}
                                          ).json()["open_kfid"]
                seeded = requests.post(base + "/sandbox/seed_messages",
                                       json={"open_kfid": open_kfid, "count": count}).json()
                assert seeded.get("errcode") == 0, seeded
                plain = Path(tmp) / "plain.py"
                plain.write_text(PLAIN)
                env = {**os.environ, "KFCLI_BASE_URL": base, "KFCLI_CORP_ID": creds["corp_id"],
                       "KFCLI_SECRET": creds["secret"], "XDG_CACHE_HOME": f"{tmp}/cache",
                       "KFCLI_CONFIG_DIR": f"{tmp}/cfg"}
                ours, theirs, ours_rss, theirs_rss = [], [], [], []
                for run in range(args.runs):
                    env["XDG_STATE_HOME"] = f"{tmp}/state{run}"  # a fresh cursor every run
                    t, rss = measure([kfcli, "msg", "sync", open_kfid, "--all", "-o", "jsonl"],
                                     env)
                    ours.append(t)
                    ours_rss.append(rss)
                    t, rss = measure([sys.executable, str(plain), base, token, open_kfid], env)
                    theirs.append(t)
                    theirs_rss.append(rss)
            finally:
                server.stop()
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{count:>9} {count / a:>12.0f} {count / b:>12.0f} {b / a:>5.2f}x "
              f"{max(ours_rss) / 1024:>8.1f}MB {max(theirs_rss) / 1024:>8.1f}MB")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
