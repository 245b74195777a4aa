"""Cashu payments end to end: BTCNutServer records a `CASHU` payment with status Processing and marks the
invoice Settled; sovterm books it once, to the "Cashu ecash" asset account (a claim on the mint, not bitcoin
in the wallet), and keeps it out of the wallet balance."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.support.system import System

from .conftest import docs_about, postings


def test_cashu_invoice_is_posted_once_to_the_cashu_ecash_account(deposit_system: System) -> None:
    s, state = deposit_system, deposit_system.btcpay.state
    inv = s.btcpay.call(state.create_invoice, s.store_id, Decimal("13.00"), "USD",
                        payment_methods=["BTC-CHAIN", "BTC-LN", "CASHU"])
    payment = s.btcpay.call(state.pay_cashu, inv.id)
    assert payment.status == "Processing" and inv.status == "Settled" and inv.additional_status == "Marked"

    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt for the Cashu invoice")[0]
    accounts = {a["Id"]: a for a in s.qbo_docs("Account")}
    account = accounts[doc["DepositToAccountRef"]["value"]]
    assert account["Name"] == "Cashu ecash" and account["AccountType"] == "Other Current Asset"
    assert Decimal(doc["TotalAmt"]) == Decimal("13.00")
    assert "paid Cashu ecash" in doc["PrivateNote"]
    # the ledger knows the method by name, and the daemon's invoice view shows it
    assert s.sql("SELECT payment_method, status FROM invoice_payments WHERE invoice_id = ?", (inv.id,)) == [
        ("cashu", "Processing")]
    s.wait_for(lambda: postings(s, inv.id) and postings(s, inv.id)[0][4] == "posted", what="the posting recorded")

    # a second look and BTCPay redelivering the settlement change nothing
    hook = next(iter(state.webhooks.values()))
    settled = next(d for d in list(state.deliveries.values())
                   if d.event.get("invoiceId") == inv.id and d.event["type"] == "InvoiceSettled")
    s.btcpay.call(state.redeliver, hook.id, settled.id)
    s.cli_ok("sync", "now")
    s.wait_idle()
    assert len(docs_about(s, "SalesReceipt", inv.id)) == 1
    assert [r[:5] for r in postings(s, inv.id)] == [("sale", 0, "SalesReceipt", "13.00", "posted")]

    # ecash never reaches the wallet: not "received" and not "confirming" in the balance check
    result = s.cli("reconcile", "--from", "2000-01-01", "--to", "2100-01-01", "--json", timeout=120)
    wallet = json.loads(result.stdout)["wallets"][0]
    assert payment.value > 0 and (wallet["received"], wallet["confirming"]) == (0, 0)  # this module's only invoice
