"""Daily summary mode end to end (issue 15, point 1): BTCPay (simulated) → webhooks → the daemon → one
QuickBooks document per store, currency and day once the day has closed, with the setup through the CLI."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sovterm.qbo.postings import marker_for
from tests.support.system import System

DAY_S = 86_400


def midday(days_ago: int) -> int:
    """12:00 UTC, `days_ago` days before today."""
    today = datetime.now(UTC).date()
    return int(datetime.combine(today - timedelta(days=days_ago), datetime.min.time(), UTC).timestamp()) + DAY_S // 2


def paid(system: System, amount: str, at: int, method: str = "BTC-LN") -> Any:
    """An invoice created and paid (and, on-chain, confirmed) at `at`, as BTCPay shows it afterwards."""
    sim, state = system.btcpay, system.btcpay.state
    inv = sim.call(state.create_invoice, system.store_id, Decimal(amount), "USD", created=at - 60)
    sim.call(state.pay, inv.id, method=method, at=at)
    if method == "BTC-CHAIN":
        sim.call(state.confirm, inv.id, at=at + 600)
    assert inv.status == "Settled", inv.status
    return inv


def day_docs(system: System, day: date) -> list[dict[str, Any]]:
    """Summary documents of a day (Deposits, and Purchases for adjustments that take money out)."""
    return [d for entity in ("Deposit", "Purchase") for d in system.qbo_docs(entity)
            if d["TxnDate"] == day.isoformat() and "daily summary" in str(d.get("PrivateNote", ""))]


def settled_down(system: System) -> bool:
    """Nothing due is waiting: the jobs of open days wait for their close, on purpose."""
    system.btcpay.wait_deliveries_idle()
    due = system.sql("SELECT COUNT(*) FROM sync_jobs WHERE state = 'running' OR (state = 'queued' AND "
                     "next_run_at <= ?)", (time.time(),))[0][0]
    return due == 0


@pytest.mark.slow
def test_a_day_becomes_one_document_after_it_closes_late_payments_adjust_and_the_cut_over_holds(system_factory):
    s = system_factory(mode="summary")
    today = datetime.now(UTC).date()
    day = today - timedelta(days=2)
    out = s.cli_ok("setup", "mode", "summary", "--from", day.isoformat(), "--timezone", "UTC")
    assert f"one document per currency and day from {day.isoformat()} (UTC)" in out
    before = paid(s, "9.99", midday(3))  # before the cut-over: a document of its own
    on_day = [paid(s, "25.00", midday(2)), paid(s, "12.34", midday(2) + 3600, "BTC-CHAIN"),
              paid(s, "40.00", midday(2) + 7200)]
    now = paid(s, "5.00", int(time.time()))  # today: its day is still open
    [doc] = s.wait_for(lambda: day_docs(s, day), what="the day's summary")
    assert Decimal(doc["TotalAmt"]) == Decimal("77.34")
    assert [(x["Description"], Decimal(x["Amount"])) for x in doc["Line"]] == [
        ("on-chain sales (1 invoice)", Decimal("12.34")), ("Lightning sales (2 invoices)", Decimal("65.00"))]
    assert doc["DocNumber"] == marker_for("day", s.store_id, f"summary:USD:{day.isoformat()}", 0)
    s.wait_for(lambda: settled_down(s), what="the queue settled")
    # none before the day closes: today's invoice is in no document yet, its day's job waits for the close
    assert day_docs(s, today) == []
    [(next_run,)] = s.sql("SELECT next_run_at FROM sync_jobs WHERE state = 'queued' AND invoice_id = ?",
                          (f"summary:USD:{today.isoformat()}",))
    assert next_run >= datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC).timestamp()
    assert not [d for d in s.qbo_docs("SalesReceipt") if now.id in str(d.get("PrivateNote", ""))]
    # before the cut-over the invoice has its own SalesReceipt, and none of the day's invoices has one
    receipts = s.qbo_docs("SalesReceipt")
    assert [d for d in receipts if before.id in d["PrivateNote"]]
    assert not [d for d in receipts for inv in on_day if inv.id in d["PrivateNote"]]
    # a payment received on the closed day that BTCPay shows only now: one adjustment, the summary untouched
    late = paid(s, "10.00", midday(2) + 10_800)
    adjustment = s.wait_for(lambda: [d for d in day_docs(s, day) if d["Id"] != doc["Id"]], what="the adjustment")
    assert len(adjustment) == 1 and Decimal(adjustment[0]["TotalAmt"]) == Decimal("10.00")
    assert "adjustment #1" in adjustment[0]["PrivateNote"]
    assert s.qbo_doc("Deposit", doc["Id"])["SyncToken"] == doc["SyncToken"]
    # the summary lists its invoices; the books match, every sat once
    listed = s.cli_json("sync", "summary", day.isoformat())
    assert sorted(x["invoice_id"] for x in listed["invoices"]) == sorted([i.id for i in on_day] + [late.id])
    s.wait_for(lambda: settled_down(s), what="the queue settled")
    report = s.cli_json("reconcile", "--from", (today - timedelta(days=5)).isoformat(), "--to", today.isoformat())
    assert report["ok"] is True, report["differences"]

    # rollback (issue 15 point 2): the day before it and the day itself. The summary day goes back whole (its
    # summary and its adjustment, both Deposits, deleted) and comes back as one document holding every entry
    # of the day; the invoice of the day before gets its own SalesReceipt again; today's entries are untouched
    start = (day - timedelta(days=1)).isoformat()
    dry = s.cli_json("sync", "rollback", "--from", start, "--to", day.isoformat())
    key = f"summary:USD:{day.isoformat()}"
    assert sorted((d["invoice_id"], d["seq"], d["entity"], d["action"]) for d in dry["documents"]) == sorted([
        (before.id, 0, "SalesReceipt", "void"), (key, 0, "Deposit", "delete"), (key, 1, "Deposit", "delete")])
    done = s.cli_json("sync", "rollback", "--from", start, "--to", day.isoformat(), "--yes")
    assert done["done"] == 3
    s.wait_for(lambda: settled_down(s), what="the queue settled")
    [again] = s.wait_for(lambda: day_docs(s, day), what="the day's summary posted again")
    assert Decimal(again["TotalAmt"]) == Decimal("87.34") and again["Id"] not in (doc["Id"], adjustment[0]["Id"])
    assert [(x["Description"], Decimal(x["Amount"])) for x in again["Line"]] == [
        ("on-chain sales (1 invoice)", Decimal("12.34")), ("Lightning sales (3 invoices)", Decimal("75.00"))]
    assert s.sql("SELECT seq, status FROM sync_postings WHERE invoice_id = ? ORDER BY seq", (key,)) == [
        (0, "voided"), (1, "voided"), (2, "posted")]
    assert s.sql("SELECT DISTINCT doc_seq FROM sync_summary_entries WHERE day = ?", (day.isoformat(),)) == [(2,)]
    assert s.sql("SELECT doc_seq FROM sync_summary_entries WHERE invoice_id = ?", (now.id,)) == [(None,)]
    [receipt] = [d for d in s.qbo_docs("SalesReceipt") if before.id in d["PrivateNote"]
                 and d.get("TxnStatus") != "Voided"]
    assert Decimal(receipt["TotalAmt"]) == Decimal("9.99")
    report = s.cli_json("reconcile", "--from", (today - timedelta(days=5)).isoformat(), "--to", today.isoformat())
    assert report["ok"] is True, report["differences"]
