"""The fair value of the bitcoin held, end to end: invoices booked at 50,000 USD/BTC, a payout, the store's
BTCPay rate at 65,000; `sovterm books holdings` matches the ledger, and `sovterm books remeasure` posts one
JournalEntry per account and period, once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.system import System, start_system

BOOK_RATE = Decimal("50000")


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = start_system(tmp_path, mode="deposit")
    yield s
    s.close()


def _seed_rate(s: System, day: str, rate: str) -> None:
    conn = sqlite3.connect(s.daemon.root / "data" / "sovterm.db", timeout=10)
    try:
        with conn:
            conn.execute("INSERT INTO books_rates(store_id, day, currency, rate, source, fetched_at) "
                         "VALUES(?, ?, 'USD', ?, 'BTCPay (seeded by the test)', 0)", (s.store_id, day, rate))
    finally:
        conn.close()


def _paid(s: System, amount: str) -> Any:
    state = s.btcpay.state
    inv = s.btcpay.call(state.create_invoice, s.store_id, Decimal(amount), "USD", rate=BOOK_RATE)
    s.btcpay.call(state.pay, inv.id, method="BTC-LN")
    return inv


def test_holdings_match_the_ledger_and_remeasure_posts_once(system: System) -> None:
    s = system
    state = s.btcpay.state
    a, b = _paid(s, "100.00"), _paid(s, "30.00")
    s.wait_for(lambda: len(s.qbo_docs("SalesReceipt")) == 2, what="two receipts")
    payout = s.btcpay.call(state.create_payout, s.store_id, Decimal("0.001"), "BTC", approved=True)
    s.btcpay.call(state.mark_payout_paid, s.store_id, payout.id)
    s.wait_for(lambda: s.qbo_docs("Transfer"), what="the payout's transfer")
    s.wait_idle()
    today = datetime.now(UTC).date().isoformat()

    rows = s.cli_json("books", "holdings", "--as-of", today)
    assert len(rows) == 1
    h = rows[0]
    # the ledger, read independently: sats in (payments) and out (the payout), fiat booked in and out
    sats_in = s.sql("SELECT SUM(amount_sats) FROM invoice_payments WHERE invoice_id IN (?, ?)", (a.id, b.id))[0][0]
    sats_out = s.sql("SELECT amount_sats FROM payouts WHERE payout_id = ?", (payout.id,))[0][0]
    booked_in = sum(Decimal(r[0]) for r in s.sql("SELECT amount FROM sync_postings WHERE kind = 'sale'"))
    booked_out = Decimal(s.sql("SELECT amount FROM sync_postings WHERE kind = 'transfer'")[0][0])
    assert (sats_in, sats_out, booked_in, booked_out) == (260_000, 100_000, Decimal("130.00"), Decimal("50.00"))
    assert h["sats"] == sats_in - sats_out == 160_000
    assert h["account_id"] == s.sql("SELECT deposit_account_id FROM qbo_mappings")[0][0]
    assert Decimal(h["cost"]) == Decimal("80.00")  # FIFO: the payout took 100,000 of A's 200,000 sats (50.00)
    assert (h["rate"], h["rate_day"]) == ("65000.00", today) and s.store_id in h["rate_source"]
    assert Decimal(h["fair_value"]) == Decimal("104.00")  # 160,000 sats × 65,000
    assert Decimal(h["unrealized"]) == Decimal("24.00")
    assert Decimal(h["carrying"]) == booked_in - booked_out == Decimal("80.00")
    assert Decimal(h["remeasurement"]) == Decimal("24.00") and h["remeasured"] is None
    (realized,) = h["realized"]
    assert (realized["sats"], Decimal(realized["cost"]), Decimal(realized["gain"])) == (100_000, Decimal("50.00"), 0)
    assert s.sql("SELECT store_id, currency, rate FROM books_rates") == [(s.store_id, "USD", "65000.00")]
    text = s.cli_ok("books", "holdings", "--as-of", today)
    assert "160,000 sats" in text and "104.00 USD" in text and "+24.00 USD" in text

    first = s.cli_json("books", "remeasure", "--as-of", today)
    assert [(e["state"], Decimal(e["amount"])) for e in first["entries"]] == [("posted", Decimal("24.00"))]
    second = s.cli_json("books", "remeasure", "--as-of", today)
    assert [e["state"] for e in second["entries"]] == ["already posted"]
    entries = s.qbo_docs("JournalEntry")
    assert len(entries) == 1
    je = entries[0]
    accounts = {x["Id"]: x for x in s.qbo_docs("Account")}
    lines = {(ln["JournalEntryLineDetail"]["PostingType"], accounts[ln["JournalEntryLineDetail"]["AccountRef"]
              ["value"]]["Name"], Decimal(str(ln["Amount"]))) for ln in je["Line"]}
    assert lines == {("Debit", "Bitcoin (BTCPay)", Decimal("24.00")),
                     ("Credit", "Unrealized Gain/Loss on Bitcoin", Decimal("24.00"))}
    assert je["TxnDate"] == today and "65000.00 USD/BTC" in je["PrivateNote"] and s.store_id in je["PrivateNote"]
    assert first["entries"][0]["qbo_id"] == je["Id"] == second["entries"][0]["qbo_id"]
    # the books now carry fair value: nothing left to remeasure for the period
    after = s.cli_json("books", "holdings", "--as-of", today)[0]
    assert Decimal(after["carrying"]) == Decimal("104.00") and Decimal(after["remeasurement"]) == 0
    assert after["remeasured"] == {"status": "posted", "qbo_id": je["Id"]}
    audit = s.sql("SELECT subject, outcome FROM audit WHERE action = 'books.remeasure'")
    assert audit == [(today, "ok"), (today, "ok")]
    # periods go forward: an earlier date after today's entry would count the change twice
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    _seed_rate(s, yesterday, "60000")  # the loop records only today's: yesterday's as if it had run then
    earlier = s.cli_json("books", "remeasure", "--as-of", yesterday)
    assert [e["state"] for e in earlier["entries"]] == [f"later period {today} already remeasured"]
    assert len(s.qbo_docs("JournalEntry")) == 1

    # a rollback of the day takes the JournalEntry back too (deleted: QuickBooks has no void for it); once the
    # sync has posted the day's documents again, the books part posts the period again, worked out afresh
    done = s.cli_json("sync", "rollback", "--from", today, "--to", today, "--yes")
    assert ("JournalEntry", je["Id"], "delete") in {(d["entity"], d["qbo_id"], d["action"]) for d in done["documents"]}
    assert done["done"] == 4, done  # two receipts, the payout's Transfer, the remeasurement
    s.wait_for(lambda: s.sql("SELECT seq, status, void_reason IS NOT NULL FROM books_remeasurements WHERE period = ? "
                             "ORDER BY seq", (today,)) == [(0, "voided", 1), (1, "posted", 0)], what="the re-post")
    [again] = s.qbo_docs("JournalEntry")
    assert again["Id"] != je["Id"] and Decimal(str(again["TotalAmt"])) == Decimal("24.00")
    assert len([d for d in s.qbo_docs("SalesReceipt") if d.get("TxnStatus") != "Voided"]) == 2
    final = s.cli_json("books", "holdings", "--as-of", today)[0]
    assert Decimal(final["carrying"]) == Decimal("104.00") and Decimal(final["remeasurement"]) == 0
    assert s.cli_json("books", "remeasure", "--as-of", today)["entries"][0]["state"] == "already posted"


def test_remeasure_refuses_a_future_date_and_a_date_without_a_rate(system: System) -> None:
    s = system
    _paid(s, "10.00")
    s.wait_idle()
    future = s.cli("books", "remeasure", "--as-of", "2999-01-31")
    assert future.returncode != 0 and "in the future" in future.stderr
    old = s.cli("books", "holdings", "--as-of", "2001-01-31")
    assert old.returncode != 0 and "no BTCPay rate recorded up to 2001-01-31" in old.stderr
    bad = s.cli("books", "holdings", "--as-of", "31/01/2026")
    assert bad.returncode != 0 and "YYYY-MM-DD" in bad.stderr
    assert not s.qbo_docs("JournalEntry")
