"""Invoicing mode end to end: BTCPay invoices that pay QuickBooks invoices become Payments applied to them
(found by `qboInvoiceId` in the metadata or orderId = DocNumber); the rest waits for the operator."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.support.system import System

from .conftest import docs_about, postings, settle


def qbo_invoice(s: System, doc_number: str) -> dict:
    return next(d for d in s.qbo_docs("Invoice") if d.get("DocNumber") == doc_number)


def test_partial_payment_is_applied_and_leaves_the_invoice_open(invoicing_system: System) -> None:
    s = invoicing_system
    target = qbo_invoice(s, "1001")
    assert Decimal(target["Balance"]) == Decimal("100.00")
    inv = settle(s, "40.00", metadata={"qboInvoiceId": target["Id"]})
    pay = s.wait_for(lambda: docs_about(s, "Payment", inv.id), what="payment")
    assert len(pay) == 1
    assert Decimal(pay[0]["TotalAmt"]) == Decimal("40.00")
    assert pay[0]["Line"][0]["LinkedTxn"] == [{"TxnId": target["Id"], "TxnType": "Invoice"}]
    assert pay[0]["CustomerRef"]["value"] == target["CustomerRef"]["value"]
    assert Decimal(qbo_invoice(s, "1001")["Balance"]) == Decimal("60.00")  # still open
    s.wait_idle()
    assert [r[:5] for r in postings(s, inv.id)] == [("payment", 0, "Payment", "40.00", "posted")]


def test_overpayment_leaves_unapplied_credit_and_is_flagged_for_review(invoicing_system: System) -> None:
    s = invoicing_system
    state = s.btcpay.state
    due_btc = (Decimal("125.00") / state.rate).quantize(Decimal("0.00000001"))
    inv = settle(s, "125.00", metadata={"orderId": "1002"}, pay_btc=(due_btc * Decimal("1.2")).quantize(
        Decimal("0.00000001")))
    pay = s.wait_for(lambda: docs_about(s, "Payment", inv.id), what="payment")[0]
    total = Decimal(pay["TotalAmt"])
    assert total > Decimal("145") and Decimal(pay["Line"][0]["Amount"]) == Decimal("125.00")
    assert Decimal(pay["UnappliedAmt"]) == total - Decimal("125.00")
    assert Decimal(qbo_invoice(s, "1002")["Balance"]) == 0
    s.wait_idle()
    review = postings(s, inv.id)[0][6]
    assert "overpaid" in review and "unapplied customer credit" in review
    assert "REVIEW" in s.cli_ok("sync", "recent") and s.cli_json("sync", "status")["review"] >= 1
    # the bookkeeper looks at it, and says so: it leaves the review list, with who and when kept
    assert inv.id in [r["invoice_id"] for r in s.cli_json("sync", "review")] and inv.id in s.cli_ok("sync", "review")
    waiting = s.cli_json("sync", "status")["review"]
    assert s.cli_json("sync", "reviewed", inv.id) == {"reviewed": 1}
    assert inv.id not in [r["invoice_id"] for r in s.cli_json("sync", "review")]
    assert s.cli_json("sync", "status")["review"] == waiting - 1
    again = s.cli("sync", "reviewed", inv.id)
    assert again.returncode != 0 and "nothing of invoice" in again.stderr
    trail = [(r["subject"], r["outcome"]) for r in s.cli_json("audit") if r["action"] == "sync.reviewed"]
    assert trail == [(inv.id, "refused"), (inv.id, "ok")]  # newest first: the second try was refused
    assert s.sql("SELECT reviewed_by FROM sync_postings WHERE invoice_id = ?", (inv.id,))[0][0]


def test_unmatched_invoice_is_listed_and_resolved_by_the_operator(invoicing_system: System) -> None:
    s = invoicing_system
    inv = settle(s, "150.00", metadata={"orderId": "no-such-doc"})
    listed = s.wait_for(lambda: [r for r in s.cli_json("sync", "unmatched") if r["invoice_id"] == inv.id],
                        what="the invoice in `sync unmatched`")
    assert "no-such-doc" in listed[0]["reason"] and listed[0]["amount"] == "150.00"
    assert inv.id in s.cli_ok("sync", "unmatched")
    assert not docs_about(s, "Payment", inv.id)  # nothing guessed, nothing dropped
    out = s.cli_json("sync", "resolve", inv.id, "--qbo-invoice", "1003")
    assert out["resolution"] == {"qbo_invoice": "1003"}
    pay = s.wait_for(lambda: docs_about(s, "Payment", inv.id), what="payment after resolving")
    assert pay[0]["Line"][0]["LinkedTxn"][0]["TxnId"] == qbo_invoice(s, "1003")["Id"]
    assert Decimal(qbo_invoice(s, "1003")["Balance"]) == 0
    s.wait_idle()
    assert not [r for r in s.cli_json("sync", "unmatched") if r["invoice_id"] == inv.id]
    audit = [r for r in s.cli_json("audit") if r["action"] == "sync.resolve"]
    assert audit and json.dumps(audit[-1]).find(inv.id) >= 0
