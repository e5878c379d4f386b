"""Start-up and per-command latency of kfcli, as ratios against the plain alternative.

    python bench/startup.py [--runs 30]

Prints these ratios, each measured in this one run with the two commands interleaved:

1. `kfcli --version` vs `python -c pass` (target: within 6x);
2. a TAB press, as the bash script asks it, vs `python -c pass` (target: within 2x): the
   completion of `kfcli account l` (commands, from the generated tree) and of
   `kfcli msg sync ` (open_kfids, from the config file and the account cache); and, for
   reference, the same request through Typer's own completion (the scripts' former path);
3. `kfcli account list` against a sandbox with a cached token vs a plain `requests` script
   making the same call with the same token (target: within 1.2x).

Medians of wall-clock time over --runs runs of fresh processes. Bytecode is cached in a
temporary PYTHONPYCACHEPREFIX (as an installed package has its .pyc files), also when the
environment sets PYTHONDONTWRITEBYTECODE; --no-pyc measures without (the generated command
tree is then compiled on every TAB press).
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
import sys, requests
resp = requests.post(sys.argv[1] + "/cgi-bin/kf/account/list",
                     params={"access_token": sys.argv[2]}, json={"offset": 0, "limit": 100})
for a in resp.json()["account_list"]:
    print(a["open_kfid"], a["name"], sep="\\t")
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def compare(a: list[str], b: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    ta, tb = [], []
    for cmd in (a, b):  # warm the OS caches
        timed(cmd, env)
    for _ in range(runs):
        ta.append(timed(a, env))
        tb.append(timed(b, env))
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-pyc", action="store_true",
                        help="measure as when Python may not cache bytecode (every run "
                        "compiles kfcli's modules): PYTHONDONTWRITEBYTECODE=1")
    args = parser.parse_args()

    kfcli = shutil.which("kfcli")
    if not kfcli:
        sys.exit("kfcli is not installed in this environment (pip install .)")
    from kfcli.sandbox import start

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": f"{tmp}/cache", "KFCLI_CONFIG_DIR": f"{tmp}/cfg",
               "PYTHONPYCACHEPREFIX": f"{tmp}/pycache"}
        env.pop("KFCLI_OUTPUT", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.no_pyc:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        version, bare = compare([kfcli, "--version"], [sys.executable, "-c", "pass"], env,
                                args.runs)
        print(f"python -c pass           {bare * 1000:7.1f} ms")
        print(f"kfcli --version          {version * 1000:7.1f} ms")
        print(f"ratio                    {version / bare:7.2f}x   (target <= 6x)")

        server = start(Path(tmp) / "bench.db")
        try:
            env.update(KFCLI_BASE_URL=server.base_url, KFCLI_CORP_ID=server.credentials["corp_id"],
                       KFCLI_SECRET=server.credentials["secret"])
            png = Path(__file__).resolve().parents[1] / "examples" / "avatar.png"
            for i in range(5):
                subprocess.run([kfcli, "account", "add", "--name", f"bench{i}", "--avatar",
                                str(png)], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([kfcli, "account", "list"], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fills the account cache
            tab = {**env, "_KFCLI_COMPLETE": "bash", "_KFCLI_WORDBREAKS": " \t\n\"'@><=;|&(:"}
            for line, what in (("kfcli account l", "commands"), ("kfcli msg sync ", "open_kfids")):
                assert _completes(kfcli, line, tab), f"no candidates for {line!r}"
                ours, bare = compare([kfcli, line], [sys.executable, "-c", "pass"], tab,
                                     args.runs)
                print(f"python -c pass           {bare * 1000:7.1f} ms")
                print(f"TAB: {line:<19} {ours * 1000:7.1f} ms   ({what})")
                print(f"ratio                    {ours / bare:7.2f}x   (target <= 2x)")
            # For reference: the same request through Typer, as the scripts before asked it.
            typer_env = {**env, "_KFCLI_COMPLETE": "complete_bash",
                         "COMP_WORDS": "kfcli account l", "COMP_CWORD": "2"}
            ours, bare = compare([kfcli], [sys.executable, "-c", "pass"], typer_env, args.runs)
            print(f"python -c pass           {bare * 1000:7.1f} ms")
            print(f"TAB through Typer        {ours * 1000:7.1f} ms   (reference: the old path)")
            print(f"ratio                    {ours / bare:7.2f}x")
            token = _cached_token(env)
            plain = Path(tmp) / "plain.py"
            plain.write_text(PLAIN)
            ours, theirs = compare(
                [kfcli, "account", "list"],
                [sys.executable, str(plain), server.base_url, token],
                env,
                args.runs,
            )
        finally:
            server.stop()
        print(f"plain requests script    {theirs * 1000:7.1f} ms")
        print(f"kfcli account list       {ours * 1000:7.1f} ms   (cached token, TSV to a pipe)")
        print(f"ratio                    {ours / theirs:7.2f}x   (target <= 1.2x)")


def _completes(kfcli: str, line: str, env: dict[str, str]) -> bool:
    out = subprocess.run([kfcli, line], env=env, capture_output=True, text=True, check=True)
    return len(out.stdout.splitlines()) > 1  # the mode line, then candidates


def _cached_token(env: dict[str, str]) -> str:
    code = (
        "from kfcli.core.tokens import TokenCache;"
        "import os;"
        "c = TokenCache(os.environ['KFCLI_CORP_ID'], os.environ['KFCLI_SECRET'], None);"
        "print(c.read().access_token)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


if __name__ == "__main__":
    main()
