"""`sovterm sync rollback` end to end: post, roll back, post again through the real daemon and both
simulators; every invoice, payout and hand-booked wallet transaction ends in QuickBooks exactly once net,
and the books-match report (documents and the wallet balance) agrees."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sovterm.sim.qbo import FaultRule
from tests.support.system import System

from .conftest import docs_about, postings, settle


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _live_total(s: System, entity: str, invoice_id: str) -> Decimal:
    return sum((Decimal(str(d["TotalAmt"])) for d in docs_about(s, entity, invoice_id)
                if d.get("TxnStatus") != "Voided"), Decimal(0))


def _book_everything(s: System) -> tuple[list[Any], str, str, str]:
    """Three paid invoices, one of them partly refunded; an on-chain one funding the wallet, a payout paid
    from it (its Transfer and its miner fee's Purchase) and a withdrawal booked by hand (a Transfer); all
    posted. Returns (the invoices, the payout's id, its transaction, the withdrawal's transaction)."""
    state = s.btcpay.state
    invoices = [settle(s, "25.00"), settle(s, "12.34"), settle(s, "40.00"), settle(s, "65.00", method="BTC-CHAIN")]
    pp = s.btcpay.call(state.refund, invoices[2].id, "Custom", custom_amount=Decimal("10.00"),
                       custom_currency="USD")
    s.wait_for(lambda: docs_about(s, "RefundReceipt", invoices[2].id), what="the refund receipt")
    s.wait_for(lambda: docs_about(s, "SalesReceipt", invoices[3].id), what="the on-chain sale")
    assert pp.id
    payout = s.btcpay.call(state.create_payout, s.store_id, Decimal("0.0005"), "BTC", approved=True)
    tx = s.btcpay.call(state.pay_payouts, s.store_id, [payout.id], fee_sats=1_410)
    s.wait_for(lambda: docs_about(s, "Purchase", tx.txid), what="the payout's miner fee")
    withdrawal = s.btcpay.call(state.wallet_send, s.store_id, Decimal("0.0002"), fee_sats=500)
    s.cli_json("reconcile", "book", withdrawal.txid, "--account", "Checking")
    s.wait_for(lambda: docs_about(s, "Transfer", withdrawal.txid), what="the booked withdrawal")
    s.wait_idle()
    return invoices, payout.id, tx.txid, withdrawal.txid


def _assert_once_net(s: System, invoices: list[Any], payout: str, tx: str, withdrawal: str) -> None:
    for inv in invoices:
        assert _live_total(s, "SalesReceipt", inv.id) == inv.amount, inv.id
    assert _live_total(s, "RefundReceipt", invoices[2].id) == Decimal("10.00")
    assert len(docs_about(s, "RefundReceipt", invoices[2].id)) == 1  # the old one was deleted, not voided
    # QuickBooks cannot void a Transfer or a Purchase: the old ones are gone, one of each is in the books
    assert [Decimal(str(d["Amount"])) for d in docs_about(s, "Transfer", payout)] == [Decimal("32.50")]
    assert [Decimal(str(d["TotalAmt"])) for d in docs_about(s, "Purchase", tx)] == [Decimal("0.92")]
    assert [Decimal(str(d["Amount"])) for d in docs_about(s, "Transfer", withdrawal)] == [Decimal("13.32")]
    result = s.cli("reconcile", "--from", _today(), "--to", _today(), "--json", timeout=120)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] is True, report
    assert report["wallets"][0]["difference"] == 0 and report["wallets"][0]["unexplained"] == []


def test_dry_run_lists_and_changes_nothing_then_rollback_reposts_each_invoice_once(
        system_factory: Callable[..., System]) -> None:
    s = system_factory(mode="deposit")
    invoices, payout, tx, withdrawal = _book_everything(s)
    entities = ("SalesReceipt", "RefundReceipt", "Transfer", "Purchase")
    before_ledger = s.sql("SELECT * FROM sync_postings ORDER BY marker")
    before_books = [s.qbo_docs(e) for e in entities]

    dry = s.cli_json("sync", "rollback", "--from", _today(), "--to", _today())  # no --yes: a dry run
    assert dry["dry_run"] is True and dry["id"] is None
    listed = {(d["invoice_id"], d["entity"], d["action"]) for d in dry["documents"]}
    assert listed == {(i.id, "SalesReceipt", "void") for i in invoices} | {
        (invoices[2].id, "RefundReceipt", "delete"), (f"payout:{payout}", "Transfer", "delete"),
        (f"payout:{payout}", "Purchase", "delete"), (f"wallet:{withdrawal}", "Transfer", "delete")}
    assert s.sql("SELECT * FROM sync_postings ORDER BY marker") == before_ledger
    assert [s.qbo_docs(e) for e in entities] == before_books
    assert s.sql("SELECT COUNT(*) FROM sync_rollbacks") == [(0,)]
    text = s.cli_ok("sync", "rollback", "--from", _today(), "--to", _today(), "--dry-run")
    assert "dry run: nothing changed" in text and "run again with --yes" in text

    done = s.cli_json("sync", "rollback", "--from", _today(), "--to", _today(), "--yes")
    assert done["dry_run"] is False and done["done"] == 8
    s.wait_idle()
    _assert_once_net(s, invoices, payout, tx, withdrawal)
    for inv in invoices:
        rows = postings(s, inv.id)
        sale = [r for r in rows if r[0] == "sale"]
        assert [(r[1], r[4]) for r in sale] == [(0, "voided"), (1, "posted")]
        assert sale[0][7].startswith("rolled back by ")
    assert [(r[0], r[1], r[4]) for r in postings(s, f"payout:{payout}")] == [
        ("networkfee", 0, "voided"), ("networkfee", 1, "posted"), ("transfer", 0, "voided"), ("transfer", 1, "posted")]
    assert [(r[1], r[4]) for r in postings(s, f"wallet:{withdrawal}")] == [(0, "voided"), (1, "posted")]
    # audited, with who and what
    audit = s.sql("SELECT subject, detail, outcome FROM audit WHERE action = 'sync.rollback' ORDER BY id")
    assert len(audit) == 3 and all(_today() in row[0] for row in audit)
    assert '"dry_run": false' in audit[-1][1] and '"documents": 8' in audit[-1][1] and audit[-1][2] == "ok"
    # a second sync changes nothing more
    s.cli_ok("sync", "now")
    s.wait_idle()
    _assert_once_net(s, invoices, payout, tx, withdrawal)


def test_a_crash_in_the_middle_of_a_rollback_resumes_after_restart(system_factory: Callable[..., System]) -> None:
    s = system_factory(mode="deposit", qbo_settings={"request_timeout_s": 30})
    state = s.btcpay.state
    invoices = [settle(s, "11.00"), settle(s, "22.00"), settle(s, "65.00", method="BTC-CHAIN")]
    for inv in invoices:
        s.wait_for(lambda inv=inv: docs_about(s, "SalesReceipt", inv.id), what="the receipt")
    payout = s.btcpay.call(state.create_payout, s.store_id, Decimal("0.0005"), "BTC", approved=True)
    tx = s.btcpay.call(state.pay_payouts, s.store_id, [payout.id], fee_sats=1_410)
    s.wait_for(lambda: docs_about(s, "Purchase", tx.txid), what="the payout's miner fee")
    s.wait_idle()
    s.cli_ok("sync", "pause")  # nothing but the rollback writes while it is killed
    # the payout's documents go fee first, then Transfer: a read and a delete each. The Transfer's delete
    # is committed by QuickBooks and never answered; the daemon is killed while it waits
    s.qbo.call(s.qbo.state.faults.append, FaultRule("hang_after_commit", "transfer", times=1, after=1))
    s.qbo.call(setattr, s.qbo.state, "hang_s", 60.0)
    outcome: dict[str, Any] = {}
    call = threading.Thread(target=lambda: outcome.update(
        r=s.cli("sync", "rollback", "--from", _today(), "--to", _today(), "--yes", timeout=120)), daemon=True)
    call.start()

    s.wait_for(lambda: not docs_about(s, "Transfer", payout.id), what="the Transfer deleted")
    time.sleep(0.3)
    s.daemon.kill()  # SIGKILL in the middle
    call.join(60)
    assert outcome["r"].returncode != 0
    assert s.sql("SELECT state FROM sync_rollbacks") == [("running",)]
    assert s.sql("SELECT status FROM sync_postings WHERE invoice_id = ? ORDER BY kind",
                 (f"payout:{payout.id}",)) == [("voiding",), ("voiding",)]
    assert not docs_about(s, "Purchase", tx.txid)  # deleted before the crash
    assert s.sql("SELECT action FROM audit WHERE action LIKE 'sync.rollback.%'") == [("sync.rollback.plan",)]
    s.qbo.call(setattr, s.qbo.state, "hang_s", 0.0)
    s.daemon.start()
    s.wait_for(lambda: s.sql("SELECT state FROM sync_rollbacks") == [("done",)], what="the rollback finished")
    assert s.sql("SELECT actor FROM audit WHERE action = 'sync.rollback.done'") == [("daemon",)]
    assert sum(1 for d in s.qbo_docs("SalesReceipt") if d.get("TxnStatus") == "Voided") == 3
    s.cli_ok("sync", "resume")
    s.wait_idle()
    assert len(s.qbo_docs("SalesReceipt")) == 6  # three voided, three posted again: never a second void or a third
    for inv in invoices:
        assert _live_total(s, "SalesReceipt", inv.id) == inv.amount
        assert [(r[1], r[4]) for r in postings(s, inv.id)] == [(0, "voided"), (1, "posted")]
    assert len(docs_about(s, "Transfer", payout.id)) == 1 and len(docs_about(s, "Purchase", tx.txid)) == 1
    assert [(r[0], r[1], r[4]) for r in postings(s, f"payout:{payout.id}")] == [
        ("networkfee", 0, "voided"), ("networkfee", 1, "posted"), ("transfer", 0, "voided"), ("transfer", 1, "posted")]
    report = s.cli_json("reconcile", "--from", _today(), "--to", _today(), timeout=120)
    assert report["ok"] is True, report["differences"]


def test_rollback_refuses_bad_dates_and_an_unfinished_other_range(system_factory: Callable[..., System]) -> None:
    s = system_factory(mode="deposit")
    bad = s.cli("sync", "rollback", "--from", "2026-02-30", "--to", "2026-03-01", "--yes")
    assert bad.returncode != 0 and "YYYY-MM-DD" in bad.stderr + bad.stdout
    backwards = s.cli("sync", "rollback", "--from", "2026-03-02", "--to", "2026-03-01", "--yes")
    assert backwards.returncode != 0 and "before it starts" in backwards.stderr + backwards.stdout


def test_a_rolled_back_payment_gives_the_invoice_its_balance_back_until_posted_again(
        system_factory: Callable[..., System]) -> None:
    """RB4: QuickBooks voids a Payment (its invoice is open again), and the sync applies a new one."""
    s = system_factory(mode="invoicing")
    target = next(d for d in s.qbo_docs("Invoice") if d.get("DocNumber") == "1001")
    inv = settle(s, "100.00", metadata={"qboInvoiceId": target["Id"]})
    s.wait_for(lambda: docs_about(s, "Payment", inv.id), what="the payment")
    s.wait_idle()
    s.cli_ok("sync", "pause")
    s.cli_json("sync", "rollback", "--from", _today(), "--to", _today(), "--yes")
    balance = Decimal(str(s.qbo_doc("Invoice", target["Id"])["Balance"]))
    assert balance == Decimal("100.00")  # the voided payment no longer pays it
    s.cli_ok("sync", "resume")
    s.wait_idle()
    assert Decimal(str(s.qbo_doc("Invoice", target["Id"])["Balance"])) == 0
    assert _live_total(s, "Payment", inv.id) == Decimal("100.00")
    assert [(r[0], r[1], r[4]) for r in postings(s, inv.id)] == [("payment", 0, "voided"), ("payment", 1, "posted")]
