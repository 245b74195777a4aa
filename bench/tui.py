"""TUI benchmarks: time to the first complete dashboard on a real daemon, and log-tail throughput.

Run: `.venv/bin/python bench/tui.py`. Prints one result per line.
The throughput part drives the connection's real ingest path (notification pump → 50 ms coalescing → app
buffer → logs screen pull → `Log.write_lines`) with synthetic `logs.line` notifications at a fixed rate,
because the daemon cannot be made to log 1,000 lines/s on demand without a debug method.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sovterm.tui.app import SovtermApp  # noqa: E402
from sovterm.tui.screens.dashboard import DashboardScreen  # noqa: E402
from sovterm.tui.screens.logs import LogsScreen  # noqa: E402
from tests.support.daemon import DaemonProcess, write_config  # noqa: E402
from tests.tui.fakes import fixed_app  # noqa: E402


async def until(pilot: Any, condition: Any, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await pilot.pause(0.005)


async def time_to_dashboard(socket_path: Path) -> float:
    started = time.perf_counter()
    app = SovtermApp(socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.is_mounted
                    and app.session.state.status is not None and "READY" in str(app.screen.query_one("#daemon").content))
        return time.perf_counter() - started


class SyntheticLogs:
    """A ControlClient stand-in whose notifications are `logs.line` at `rate` lines/s for `seconds`."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate, self.seconds, self.sent = rate, seconds, 0

    async def notifications(self) -> AsyncIterator[dict[str, Any]]:
        tick = 0.01
        per_tick = max(1, int(self.rate * tick))
        start = time.perf_counter()
        while time.perf_counter() - start < self.seconds:
            for _ in range(per_tick):
                self.sent += 1
                yield {"method": "logs.line", "params": {
                    "seq": self.sent, "ts": "2026-07-01T12:00:00.000Z", "level": "INFO",
                    "component": "bench", "msg": f"synthetic line {self.sent} " + "x" * 60}}
            due = start + tick * (self.sent // per_tick)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))


async def log_throughput(rate: int, seconds: float) -> dict[str, float]:
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.is_mounted)
        screen = app.screen
        log = screen.log_widget
        written = 0
        original = log.write_lines

        def counting(lines: Any, scroll_end: bool | None = None) -> Any:
            nonlocal written
            lines = list(lines)
            written += len(lines)
            return original(lines, scroll_end)

        log.write_lines = counting  # type: ignore[method-assign]
        source = SyntheticLogs(rate, seconds)
        pending: list[dict[str, Any]] = []
        tracemalloc.start()
        started = time.perf_counter()
        flusher = asyncio.create_task(app.connection._flush(pending))
        await app.connection._pump(source, pending)  # type: ignore[arg-type]
        await until(pilot, lambda: not pending and screen._seen == app.session.log_buffer.total, timeout=30)
        await pilot.pause(0.1)
        elapsed = time.perf_counter() - started
        flusher.cancel()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"sent": source.sent, "written": written, "elapsed": elapsed, "rate": written / elapsed,
                "buffer": len(app.session.log_buffer), "log_lines": log.line_count, "peak_mb": peak / 1e6}


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="sovterm-bench-"))
    daemon = DaemonProcess(root, write_config(root)).start()
    try:
        runs = [await time_to_dashboard(daemon.socket_path) for _ in range(3)]
        print(f"dashboard: first complete dashboard in {min(runs) * 1000:.0f} ms "
              f"(best of 3; runs {', '.join(f'{r * 1000:.0f}' for r in runs)} ms; target < 1000 ms)")
    finally:
        daemon.stop()
    for rate, seconds in ((1000, 5.0), (5000, 3.0)):
        r = await log_throughput(rate, seconds)
        print(f"logs: offered {rate} lines/s for {seconds:.0f} s -> wrote {r['written']} of {r['sent']} lines "
              f"in {r['elapsed']:.2f} s = {r['rate']:.0f} lines/s sustained; buffer {r['buffer']} lines, "
              f"Log widget {r['log_lines']} lines (bounded at 10000); peak traced memory {r['peak_mb']:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
