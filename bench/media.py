"""The media archive: memory and speed of fetching media into the store and writing it out.

    python bench/media.py [--size-mb 19] [--runs 3]

Starts the simulator in this process (real HTTP on loopback), makes a customer send a file of
16 KB and one of SIZE MB, stores both messages with `msg sync --no-media`, then runs in fresh
Python processes, with a new SQLite store each run:

    kfcli store media --retry            # fetch into the archive (streamed to disk)
    kfcli msg media MSGID -O OUT         # write it back out of the archive

and reports the median wall time and the peak RSS (VmHWM at exit) of each, for the small and
the large file, next to the plain alternative: a Python process that downloads the same
media with `urllib` into memory and writes it to a file (`resp.read()`, what a script would
do). Target: kfcli's peak RSS for the large file within 1.2x of its peak RSS for the small
one (memory flat in the file's size). Times are shown for information: with files this
size they are mostly the start-up of a kfcli process and of its store.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PLAIN = """
import sys, urllib.request
base, token, media_id, out = sys.argv[1:]
url = f"{base}/cgi-bin/media/get?access_token={token}&media_id={media_id}"
with urllib.request.urlopen(url) as r:
    data = r.read()
open(out, "wb").write(data)
"""

# Runs a Python program (-m kfcli or -c CODE) and, at exit, writes the process's own peak RSS
# (VmHWM: that of this program only; a child's ru_maxrss also counts the memory of the
# process it was forked from) to the file named by BENCH_HWM.
MEASURED = """
import atexit, os, runpy, sys
def report():
    with open("/proc/self/status") as status, open(os.environ["BENCH_HWM"], "w") as out:
        out.write(next(l.split()[1] for l in status if l.startswith("VmHWM:")))
atexit.register(report)
kind, what, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = what
if kind == "-m":
    runpy.run_module(what, run_name="__main__", alter_sys=True)
else:
    exec(compile(what, "<plain>", "exec"), {"__name__": "__main__"})
"""


def kfcli() -> list[str]:
    found = shutil.which("kfcli")
    return [found] if found else [sys.executable, "-m", "kfcli"]


def run(program: list[str], env: dict[str, str], work: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one Python process: `program` is ["-m", "kfcli", ...]
    or ["-c", CODE, ...]."""
    hwm = work / "hwm"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURED, *program],
                          env={**env, "BENCH_HWM": str(hwm)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(program[:4])} failed: {proc.stderr}")
    return elapsed, int(hwm.read_text()) / 1024


def post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(base + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as resp:
        return json.load(resp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=19.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from kfcli.sandbox import start

    work = Path(tempfile.mkdtemp(prefix="kfcli-bench-media-"))
    server = start(work / "sandbox.db")
    try:
        base = server.base_url
        creds = server.credentials
        token = json.load(urllib.request.urlopen(
            f"{base}/cgi-bin/gettoken?corpid={creds['corp_id']}&corpsecret={creds['secret']}"
        ))["access_token"]
        env = {**os.environ, "KFCLI_BASE_URL": base, "KFCLI_CORP_ID": creds["corp_id"],
               "KFCLI_SECRET": creds["secret"], "HOME": str(work / "home"),
               "XDG_STATE_HOME": str(work / "state"), "XDG_CACHE_HOME": str(work / "cache"),
               "KFCLI_CONFIG_DIR": str(work / "config")}
        avatar = Path(__file__).resolve().parents[1] / "examples" / "avatar.png"
        open_kfid = subprocess.run([*kfcli(), "account", "add", "--name", "Bench", "--avatar",
                                    str(avatar)], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip()
        sizes = {"16 KB": 16 * 1024, f"{args.size_mb:g} MB": int(args.size_mb * 1024 * 1024)}
        files = {}
        for label, size in sizes.items():
            data = os.urandom(size)
            doc = post(base, "/sandbox/customer_message", {
                "open_kfid": open_kfid, "msgtype": "file", "filename": "bench.bin",
                "media_base64": base64.b64encode(data).decode()})
            files[label] = (doc["msgid"], data)
        synced = subprocess.run([*kfcli(), "msg", "sync", open_kfid, "--no-media", "-o", "jsonl"],
                                env=env, capture_output=True, text=True, check=True).stdout
        media_ids = {json.loads(line)["msgid"]: json.loads(line)["file"]["media_id"]
                     for line in synced.splitlines()}
        results: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for label, (msgid, data) in files.items():
            out = work / "out.bin"
            rows = results.setdefault(label, {"fetch": [], "write": [], "plain": []})
            for n in range(args.runs):
                store = work / f"store-{label.replace(' ', '')}-{n}.db"
                run_env = {**env, "KFCLI_STORE": str(store)}
                # The message, into this run's store, without its media.
                subprocess.run([*kfcli(), "store", "reset-cursor", open_kfid, "--yes"],
                               env=run_env, capture_output=True)
                subprocess.run([*kfcli(), "msg", "sync", open_kfid, "--all", "--no-media"],
                               env=run_env, capture_output=True, check=True)
                rows["fetch"].append(run(["-m", "kfcli", "store", "media", "--retry"],
                                         run_env, work))
                rows["write"].append(run(["-m", "kfcli", "msg", "media", msgid, "-O", str(out),
                                          "--force"], run_env, work))
                assert out.read_bytes() == data
                rows["plain"].append(run(["-c", PLAIN, base, token, media_ids[msgid],
                                          str(out)], env, work))
                assert out.read_bytes() == data
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def med(samples, i):
        return statistics.median(s[i] for s in samples)

    print(f"{'file':>8}  {'step':<34} {'time':>8}  {'peak RSS':>9}")
    for label, rows in results.items():
        for step, name in (("fetch", "kfcli store media --retry"),
                           ("write", "kfcli msg media -O FILE"),
                           ("plain", "plain urllib read() + write")):
            print(f"{label:>8}  {name:<34} {med(rows[step], 0):7.2f}s  "
                  f"{med(rows[step], 1):7.1f} MB")
    small, large = results.values()
    for step in ("fetch", "write", "plain"):
        ratio = med(large[step], 1) / med(small[step], 1)
        print(f"peak RSS, large / small file, {step}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
