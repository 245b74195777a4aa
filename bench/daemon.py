"""Spine benchmark: start-to-READY time, idle resident memory, control-socket round trips.

Prints one figure per line. Targets (issue 2): READY < 1 s, idle RSS < 60 MB, p99 round trip < 5 ms.
Runs a real daemon in a temporary directory; READY is taken from the systemd notify protocol.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sovterm.control.client import ControlClient  # noqa: E402
from tests.support.daemon import DaemonProcess, clean_env, write_config  # noqa: E402

RUNS = 5
CALLS = 5000


def time_to_ready(root: Path) -> tuple[float, DaemonProcess]:
    notify = root / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(10)
    d = DaemonProcess(root, write_config(root))
    d.env = clean_env(NOTIFY_SOCKET=str(notify))
    started = time.perf_counter()
    d.start(wait=False)
    while b"READY=1" not in listener.recv(4096):
        pass
    elapsed = time.perf_counter() - started
    listener.close()
    return elapsed, d


async def round_trips(path: Path) -> list[float]:
    async with await ControlClient.connect(path) as client:
        for _ in range(200):  # warm up
            await client.call("ping")
        samples = []
        for _ in range(CALLS):
            t = time.perf_counter()
            await client.call("ping")
            samples.append(time.perf_counter() - t)
        return samples


def _library_floor() -> int:
    """RSS of a bare interpreter that imports only the daemon's third-party libraries."""
    import subprocess

    code = ("import aiohttp, aiohttp.web, pydantic, aiosqlite, apscheduler.schedulers.asyncio, "
            "cryptography.hazmat.primitives.ciphers.aead, psutil; print(psutil.Process().memory_info().rss)")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        readies = []
        daemon = None
        for i in range(RUNS):
            root = Path(tmp) / f"r{i}"
            root.mkdir()
            elapsed, d = time_to_ready(root)
            readies.append(elapsed)
            if i < RUNS - 1:
                d.stop()
            else:
                daemon = d
        assert daemon is not None and daemon.proc is not None
        print(f"start to READY: median {statistics.median(readies) * 1000:.0f} ms, worst {max(readies) * 1000:.0f} ms "
              f"over {RUNS} starts (includes Python start-up; target < 1000 ms)")
        time.sleep(3)  # let the first loop runs settle
        mem = psutil.Process(daemon.proc.pid).memory_full_info()
        print(f"idle resident memory: {mem.rss / 1e6:.1f} MB RSS (target < 60 MB)")
        print(f"idle unique memory: {mem.uss / 1e6:.1f} MB USS (RSS minus library pages shared with other processes)")
        print(f"floor: {_library_floor() / 1e6:.1f} MB RSS for Python + aiohttp + pydantic + aiosqlite + cryptography alone")
        samples = asyncio.run(round_trips(daemon.socket_path))
        total = sum(samples)
        samples.sort()
        p50 = samples[len(samples) // 2] * 1000
        p99 = samples[int(len(samples) * 0.99)] * 1000
        print(f"control socket: {len(samples) / total:.0f} round trips/s sequential")
        print(f"control socket latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p99 < 5 ms)")
        daemon.stop()


if __name__ == "__main__":
    main()
