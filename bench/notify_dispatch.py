"""Notification dispatch benchmark: what an alert costs the daemon's event loop, with dead destinations.

Run: `.venv/bin/python bench/notify_dispatch.py [--alerts 2000] [--dead 5]`. One healthy destination (a
sender that takes 1 ms) and `--dead` destinations whose sender hangs until the attempt times out (0.2 s),
retried with backoff. Each alert is offered as the alert tracker does (a plain call on the event loop).

Prints: the cost of one `offer()` (µs, median and worst), the event loop's worst lag while the dead
destinations hang and retry (a 10 ms ticker), and the healthy destination's delivery rate. Targets: an
offer under 100 µs, loop lag under 50 ms, every healthy message delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sovterm.notify.destinations import Destination  # noqa: E402
from sovterm.notify.dispatch import Dispatcher, Message  # noqa: E402
from sovterm.store.secrets import Secret  # noqa: E402


async def main(alerts: int, dead: int) -> None:
    delivered = 0
    lock = threading.Lock()
    stop = threading.Event()

    def send(url: str, title: str, body: str, kind: str) -> None:
        nonlocal delivered
        if url.startswith("dead"):
            stop.wait(0.3)  # hangs past the attempt's timeout
            raise ConnectionError("dead")
        time.sleep(0.001)
        with lock:
            delivered += 1

    d = Dispatcher(max_per_hour=alerts * 2, dedupe_s=0, retry_base_s=0.05, retry_max_s=0.2, max_attempts=1000,
                   timeout_s=0.2, send=send)
    d.set_destinations([Destination("ok", "json", "info", Secret("ok://x"))]
                       + [Destination(f"dead{n}", "json", "info", Secret(f"dead{n}://x")) for n in range(dead)])
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    beat = asyncio.create_task(ticker())
    costs = []
    started = time.perf_counter()
    for n in range(alerts):
        message = Message(f"loop.l{n}.failed", "started", "warning", f"Loop l{n} failed", "body")
        t = time.perf_counter()
        d.offer(message)
        costs.append(time.perf_counter() - t)
        if n % 50 == 0:
            await asyncio.sleep(0)
    wanted = min(alerts, 50)  # the healthy queue keeps the newest 50 while it catches up
    for _ in range(6000):  # up to 60 s
        if delivered >= wanted:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # let the dead destinations hang and retry a while longer
    elapsed = time.perf_counter() - started
    beat.cancel()
    stop.set()
    await d.close()
    print(f"offer(): median {statistics.median(costs) * 1e6:.1f} µs, worst {max(costs) * 1e6:.1f} µs "
          f"({alerts} alerts, {dead + 1} destinations)")
    print(f"event loop lag with {dead} hanging destinations: worst {max(lags) * 1000:.1f} ms, "
          f"median {statistics.median(lags) * 1000:.2f} ms")
    print(f"healthy destination: {delivered} delivered in {elapsed:.2f} s ({delivered / elapsed:.0f}/s); "
          f"dropped from its full queue: {d.outboxes['ok'].dropped}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--dead", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.dead))
