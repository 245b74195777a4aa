"""Backfill benchmark: 10,000 settled BTCPay invoices into the QuickBooks simulator with Intuit's limits.

Run: `.venv/bin/python bench/backfill.py [--invoices 10000] [--time-scale 0.25]`. A real daemon
(subprocess) is set up through the CLI against both simulators; the BTCPay store holds the invoices
as history (paid 2 to 20 days ago, beyond the first poll's window), and `sovterm sync backfill --since`
brings them in and posts them. The QuickBooks simulator enforces Intuit's throttles (500 requests and
40 batch requests a minute, 10 concurrent) with one "minute" lasting `60 × time-scale` seconds, and
the daemon's own pacing is scaled the same way (see tests/support/system.py).

Prints: documents per simulated minute, the ratio to the most the limits allow (40 batches × 30
documents + the other 460 requests as single creates = 1,660 a minute), the request mix, the daemon's
peak resident memory (psutil, sampled every 0.2 s), and checks that every invoice is in QuickBooks
exactly once with the right total. Targets: ratio >= 0.8, peak memory < 150 MB.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INTUIT_REQUESTS_PER_MIN = 500
INTUIT_BATCHES_PER_MIN = 40
BATCH_ITEMS = 30
MOST_PER_MIN = INTUIT_BATCHES_PER_MIN * BATCH_ITEMS + (INTUIT_REQUESTS_PER_MIN - INTUIT_BATCHES_PER_MIN)
TIME_LIMIT_S = 170.0


def seed_history(state: Any, store_id: str, n: int) -> dict[str, Decimal]:
    """n invoices paid over Lightning between 20 and 2 days ago, without webhooks (history)."""
    rng = random.Random(9)
    now = state.now()
    state.muted = True
    try:
        out = {}
        for _ in range(n):
            created = now - rng.randint(2 * 86_400, 20 * 86_400)
            amount = Decimal(rng.randint(100, 99_999)) / 100
            inv = state.create_invoice(store_id, amount, "USD", created=created)
            state.pay(inv.id, method="BTC-LN", at=created + 60)
            out[inv.id] = amount
        return out
    finally:
        state.muted = False


class PeakRSS:
    """Samples a process's resident memory in a thread; `.peak` in bytes."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:  # the process ended
                return
            time.sleep(self._every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def main(n: int, scale: float) -> int:
    from tests.support.system import start_system

    expected: dict[str, Decimal] = {}

    def history(system: Any) -> None:
        expected.update(system.btcpay.call(seed_history, system.btcpay.state, system.store_id, n, timeout=120))

    root = Path(tempfile.mkdtemp(prefix="sovterm-backfill-bench-"))
    system = start_system(
        root, mode="deposit", qbo_time_scale=scale, limits_time_scale=scale, before_setup=history,
        sync={"interval_s": 1, "lease_s": 30}, btcpay_settings={"poll_window_days": 1},
        qbo_settings={"request_timeout_s": 30},
    )
    try:
        assert system.daemon.proc is not None
        rss = PeakRSS(system.daemon.proc.pid)
        since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        started = time.monotonic()
        system.cli_ok("sync", "backfill", "--since", since)
        first_doc = None
        posted = 0
        while time.monotonic() - started < TIME_LIMIT_S:
            posted = system.sql("SELECT COUNT(*) FROM sync_postings WHERE status = 'posted'")[0][0]
            if posted and first_doc is None:
                first_doc = time.monotonic()
            if posted >= n:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        peak = rss.stop()
        if posted < n:
            print(f"INCOMPLETE: {posted}/{n} posted after {elapsed:.0f} s", file=sys.stderr)
            return 1
        receipts = system.qbo_docs("SalesReceipt")
        log = system.qbo.call(lambda: list(system.qbo.state.request_log))
        ours = [e for e in log if e[1] == system.realm]
        routes: dict[str, int] = {}
        for e in ours:
            if e[4] == 200:
                routes[e[3]] = routes.get(e[3], 0) + 1
        throttled = sum(1 for e in ours if e[4] == 429)
        amounts = {d["DocNumber"]: Decimal(str(d["TotalAmt"])) for d in receipts}
        ok = len(receipts) == n == len(amounts) and sum(amounts.values()) == sum(expected.values())
        minutes = elapsed / (60 * scale)
        per_min = n / minutes
        print(f"backfill: {n} documents in {elapsed:.1f} s = {minutes:.2f} simulated minutes "
              f"(one minute = {60 * scale:.1f} s); first document after {first_doc - started:.1f} s")
        print(f"backfill: {per_min:.0f} documents per simulated minute")
        print(f"limits allow at most {MOST_PER_MIN} a minute ({INTUIT_BATCHES_PER_MIN} batches × {BATCH_ITEMS} + "
              f"{INTUIT_REQUESTS_PER_MIN - INTUIT_BATCHES_PER_MIN} single requests): ratio {per_min / MOST_PER_MIN:.2f} "
              f"(target >= 0.8)")
        print(f"requests: {routes.get('batch', 0)} batches, {routes.get('salesreceipt', 0)} single creates, "
              f"{routes.get('query', 0)} queries (marker look-ups, setup), {throttled} answered 429")
        print(f"daemon peak RSS: {peak / 2**20:.1f} MB (target < 150 MB)")
        print(f"QuickBooks holds {len(receipts)} receipts for {n} invoices, totals "
              f"{'match' if ok else 'DO NOT MATCH'} BTCPay to the cent")
        return 0 if ok else 1
    finally:
        system.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--time-scale", type=float, default=0.25,
                        help="seconds of wall time per second of Intuit's limit windows (default 0.25)")
    args = parser.parse_args()
    sys.exit(main(args.invoices, args.time_scale))
