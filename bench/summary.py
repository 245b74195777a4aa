"""Daily summary mode benchmark: QuickBooks requests and documents per 1,000 BTCPay invoices, per-transaction
(deposit mode) against daily summary mode (issue 15, point 1).

Run: `.venv/bin/python bench/summary.py [--invoices 2000] [--days 20] [--time-scale 0.1]`. For each mode a
real daemon (subprocess) is set up through the CLI against both simulators; the BTCPay store holds the
invoices as history (paid over the last `days` days, all closed), and `sovterm sync backfill --since`
posts them. Every request the QuickBooks simulator answers for the company from the backfill's start on
is counted (creates, batches and queries; the setup before it is left out), with the documents it holds.
Then the year of a merchant with 100,000 invoices: per-transaction, one document per invoice; summary,
the documents per day measured here times 365.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIME_LIMIT_S = 300.0
YEAR_INVOICES = 100_000


def seed_history(state: Any, store_id: str, n: int, days: int) -> dict[str, Decimal]:
    """n invoices paid over Lightning or on-chain in the last `days` closed days, without webhooks."""
    rng = random.Random(15)
    today = state.now() // 86_400 * 86_400
    state.muted = True
    try:
        out = {}
        for _ in range(n):
            at = today - rng.randint(1, days) * 86_400 + rng.randint(3600, 82_800)
            amount = Decimal(rng.randint(100, 99_999)) / 100
            inv = state.create_invoice(store_id, amount, "USD", created=at - 60)
            method = rng.choice(("BTC-LN", "BTC-CHAIN"))
            state.pay(inv.id, method=method, at=at)
            if method == "BTC-CHAIN":
                state.confirm(inv.id, at=at + 600)
            out[inv.id] = amount
        return out
    finally:
        state.muted = False


def run(mode: str, n: int, days: int, scale: float) -> dict[str, Any]:
    from tests.support.system import start_system

    expected: dict[str, Decimal] = {}

    since = (datetime.now(UTC) - timedelta(days=days + 5)).date().isoformat()

    def history(system: Any) -> None:
        expected.update(system.btcpay.call(seed_history, system.btcpay.state, system.store_id, n, days, timeout=300))
        # the mode before the store is followed: the first poll's invoices are booked in it too
        system.cli_ok("setup", "mode", mode, *(("--from", since, "--timezone", "UTC") if mode == "summary" else ()))

    root = Path(tempfile.mkdtemp(prefix=f"sovterm-summary-bench-{mode}-"))
    system = start_system(root, mode=None, qbo_time_scale=scale, limits_time_scale=scale, before_setup=history,
                          sync={"interval_s": 1, "lease_s": 30}, btcpay_settings={"poll_window_days": 1},
                          qbo_settings={"request_timeout_s": 30})
    try:
        log_start = system.qbo.call(lambda: len(system.qbo.state.request_log))
        started = time.monotonic()
        system.cli_ok("sync", "backfill", "--since", since)

        def done() -> bool:
            if mode == "deposit":
                return system.sql("SELECT COUNT(*) FROM sync_postings WHERE status = 'posted'")[0][0] >= n
            entered = system.sql("SELECT COUNT(DISTINCT invoice_id) FROM sync_summary_entries")[0][0]
            unbound = system.sql("SELECT COUNT(*) FROM sync_summary_entries WHERE doc_seq IS NULL")[0][0]
            pending = system.sql("SELECT COUNT(*) FROM sync_postings WHERE status != 'posted'")[0][0]
            return entered >= n and not unbound and not pending

        while not done():
            if time.monotonic() - started > TIME_LIMIT_S:
                raise SystemExit(f"{mode}: not everything posted after {TIME_LIMIT_S:.0f} s")
            time.sleep(0.25)
        time.sleep(2)  # nothing more comes (a late adjustment would be counted)
        elapsed = time.monotonic() - started
        log = system.qbo.call(lambda: list(system.qbo.state.request_log)[log_start:])
        ours = [e for e in log if e[1] == system.realm]
        routes: dict[str, int] = {}
        for e in ours:
            routes[e[3]] = routes.get(e[3], 0) + 1
        entities = ("SalesReceipt", "Deposit", "Purchase")
        docs = [d for entity in entities for d in system.qbo_docs(entity) if str(d.get("DocNumber", "")).startswith("SV")]
        total = sum(Decimal(str(d["TotalAmt"])) * (-1 if "AccountRef" in d and "PaymentType" in d else 1)
                    for d in docs)
        report = system.cli_json("reconcile", "--from", since, "--to", datetime.now(UTC).date().isoformat(),
                                 timeout=300)
        return {"mode": mode, "requests": len(ours), "routes": routes, "documents": len(docs), "seconds": elapsed,
                "total_ok": total == sum(expected.values()), "books_match": report["ok"]}
    finally:
        system.close()


def main(n: int, days: int, scale: float) -> int:
    results = [run(mode, n, days, scale) for mode in ("deposit", "summary")]
    print(f"{n} invoices over {days} closed days, posted by a backfill (one Intuit minute = {60 * scale:.1f} s)")
    print(f"{'mode':<10}{'requests':>10}{'per 1,000':>11}{'documents':>11}{'per 1,000':>11}  request mix")
    for r in results:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(r["routes"].items()))
        print(f"{r['mode']:<10}{r['requests']:>10}{r['requests'] * 1000 / n:>11.1f}{r['documents']:>11}"
              f"{r['documents'] * 1000 / n:>11.1f}  {mix}")
    per_tx, summary = results
    print(f"requests: summary mode needs {summary['requests'] / per_tx['requests']:.3f} of per-transaction's "
          f"({per_tx['requests'] / summary['requests']:.1f}x fewer); documents {per_tx['documents'] / summary['documents']:.1f}x fewer")
    per_day = summary["documents"] / days
    print(f"a year of {YEAR_INVOICES:,} invoices: per-transaction {YEAR_INVOICES:,} documents; summary about "
          f"{per_day * 365:,.0f} ({per_day:.2f} a day × 365, one currency, no late changes)")
    ok = all(r["total_ok"] and r["books_match"] for r in results)
    print("totals match BTCPay to the cent and the books-match report agrees in both modes" if ok else
          "MISMATCH: " + ", ".join(f"{r['mode']} total_ok={r['total_ok']} books_match={r['books_match']}"
                                   for r in results))
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.1,
                        help="seconds of wall time per second of Intuit's limit windows (default 0.1)")
    args = parser.parse_args()
    sys.exit(main(args.invoices, args.days, args.time_scale))
