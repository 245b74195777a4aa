"""CLI benchmark: how long `sovterm status` (against a running daemon) and `sovterm --help` take, next to
the Python floor (an interpreter importing json, socket and argparse).

Prints the median wall time and peak memory of each over RUNS runs, interleaved so a busy machine slows
all three alike. Target (issue 19 point 7): < 150 ms each. The daemon is demo-like: the BTCPay and
QuickBooks simulators, a store followed, a company connected, accounts mapped (tests.support.system).
Commands run as the `sovterm` console script does (`from sovterm.cli import main`), from byte-compiled
modules as an installed package has them, started by a small measuring process (not the bench's own,
which holds the simulators: forking it would add its memory and time to every figure).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 21
TARGET_S = 0.150
CONSOLE_SCRIPT = "import sys; from sovterm.cli import main; sys.exit(main())"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in MB and exit status of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss // 1024, proc.returncode


def measure(config: str) -> None:
    """The measuring process: standard library only, so the figures are the commands' own."""
    env = dict(os.environ)
    cases = {
        "python floor (json, socket, argparse)": [sys.executable, "-c", "import json, socket, argparse"],
        "sovterm --help": [sys.executable, "-c", CONSOLE_SCRIPT, "--help"],
        "sovterm status": [sys.executable, "-c", CONSOLE_SCRIPT, "--config", config, "status"],
    }
    for argv in cases.values():  # warm up: byte-compile, fill the page cache
        run_once(argv, env)
    samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in cases}
    for _ in range(RUNS):
        for name, argv in cases.items():
            samples[name].append(run_once(argv, env))
    floor = statistics.median(s[0] for s in samples["python floor (json, socket, argparse)"])
    for name, runs in samples.items():
        wall = statistics.median(s[0] for s in runs)
        rss = statistics.median(s[1] for s in runs)
        codes = sorted({s[2] for s in runs})
        verdict = "" if name.startswith("python") else (
            f", {wall / floor:.1f}x the floor, target < {TARGET_S * 1000:.0f} ms: "
            + ("met" if wall < TARGET_S else "MISSED"))
        print(f"{name:<40} median {wall * 1000:6.1f} ms, peak RSS {rss:3d} MB, exit {codes} over {RUNS} runs{verdict}")


def main() -> None:
    sys.path.insert(0, str(REPO))
    from tests.support.daemon import clean_env
    from tests.support.system import start_system

    env = clean_env(PYTHONPATH=str(REPO))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package is byte-compiled; so is this run
    with tempfile.TemporaryDirectory() as tmp:
        system = start_system(Path(tmp), mode="deposit")
        try:
            subprocess.run([sys.executable, __file__, "--measure", str(system.daemon.config)], env=env, check=True)
        finally:
            system.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        measure(sys.argv[2])
    else:
        main()
