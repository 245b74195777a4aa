"""Deposit mode end to end, through the real listener: a pay link for a QuickBooks invoice pays that invoice
(a Payment, never a SalesReceipt), and the network fee a customer pays on top of the price is booked, so
the bitcoin account holds what the wallet received."""

from __future__ import annotations

import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from tests.support.system import System

from .conftest import docs_about, postings

SATS = Decimal(100_000_000)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def click(url: str) -> tuple[int, str, str]:
    """A customer's browser opening the pay link: (status, Location, page)."""
    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=20) as resp:
            return resp.status, resp.headers.get("Location", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", ""), exc.read().decode()


def qbo_invoice(s: System, doc_number: str) -> dict[str, Any]:
    return next(d for d in s.qbo_docs("Invoice") if d.get("DocNumber") == doc_number)


def test_pay_link_for_a_quickbooks_invoice_pays_it_in_deposit_mode(deposit_system: System) -> None:
    s = deposit_system
    state = s.btcpay.state
    target = qbo_invoice(s, "1001")
    assert Decimal(target["Balance"]) == Decimal("100.00")
    link = s.cli_json("link", "create", "--qbo-invoice", "1001")
    status, location, _ = click(link["url"])
    assert status == 303 and "/i/" in location
    invoice_id = location.rsplit("/i/", 1)[1]
    assert s.btcpay.call(lambda: state.invoice(invoice_id).metadata["qboInvoiceId"]) == target["Id"]
    s.btcpay.call(state.pay, invoice_id, method="BTC-CHAIN")  # the customer pays the checkout
    s.btcpay.call(state.confirm, invoice_id)
    s.wait_for(lambda: Decimal(qbo_invoice(s, "1001")["Balance"]) == 0, what="invoice 1001 paid in QuickBooks")
    s.wait_idle()
    [payment] = [p for p in s.qbo_docs("Payment")
                 if {"TxnId": target["Id"], "TxnType": "Invoice"} in p["Line"][0]["LinkedTxn"]]  # exactly one
    assert docs_about(s, "Payment", invoice_id) == [payment]
    assert Decimal(payment["TotalAmt"]) == Decimal("100.00")
    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": target["Id"], "TxnType": "Invoice"}]
    assert payment["CustomerRef"]["value"] == target["CustomerRef"]["value"]
    assert docs_about(s, "SalesReceipt", invoice_id) == []  # the revenue is counted once: on invoice 1001
    assert [r[:5] for r in postings(s, invoice_id)] == [("payment", 0, "Payment", "100.00", "posted")]
    # the next click shows the paid page, not "payment received" for ever
    s.wait_for(lambda: click(link["url"])[0] == 410, what="the paid page")
    status, _, page = click(link["url"])
    assert status == 410 and "Already paid" in page and "Invoice 1001 has been paid" in page


def test_network_fee_paid_by_the_customer_is_booked_and_lightning_has_none(deposit_system: System) -> None:
    s = deposit_system
    state = s.btcpay.state
    s.btcpay.call(setattr, state, "rate", Decimal(50_000))
    inv = s.btcpay.call(state.create_invoice, s.store_id, Decimal("100.00"), "USD")
    # the store's default networkFeeMode (MultiplePaymentsOnly): the second payment carries BTCPay's fee
    s.btcpay.call(state.pay, inv.id, method="BTC-CHAIN", amount_btc=Decimal("0.001"))
    s.btcpay.call(state.pay, inv.id, method="BTC-CHAIN")
    s.btcpay.call(state.confirm, inv.id)
    assert inv.status == "Settled"
    gross_sats = int(inv.paid_btc() * SATS)
    fee_sats = int(inv.fees_paid_btc() * SATS)
    assert (gross_sats, fee_sats) == (201_000, 1_000)
    [fee] = s.wait_for(lambda: docs_about(s, "Deposit", inv.id), what="the fee deposit")
    s.wait_idle()
    [receipt] = docs_about(s, "SalesReceipt", inv.id)
    assert Decimal(receipt["TotalAmt"]) == Decimal("100.00")  # the price: the fee is not an overpayment
    assert Decimal(fee["TotalAmt"]) == (Decimal(fee_sats) / SATS * inv.rate).quantize(Decimal("0.01")) == Decimal("0.50")
    deposit_account, collected = s.sql(
        "SELECT deposit_account_id, fee_collected_account_id FROM qbo_mappings WHERE store_id = ?", (s.store_id,))[0]
    assert fee["Line"][0]["DepositLineDetail"]["AccountRef"]["value"] == collected
    account = next(a for a in s.qbo_docs("Account") if a["Id"] == collected)
    assert (account["Name"], account["AccountType"]) == ("Bitcoin Network Fees Collected", "Other Income")
    into_asset = [d for d in (receipt, fee) if d["DepositToAccountRef"]["value"] == deposit_account]
    assert sum(Decimal(d["TotalAmt"]) for d in into_asset) == (gross_sats * inv.rate / SATS).quantize(Decimal("0.01"))
    assert "incl. network fee 1,000 sats" in receipt["PrivateNote"] and "1,000 sats" in fee["PrivateNote"]
    assert [r[:5] for r in postings(s, inv.id)] == [("fee", 0, "Deposit", "0.50", "posted"),
                                                   ("sale", 0, "SalesReceipt", "100.00", "posted")]
    ln = s.btcpay.call(state.create_invoice, s.store_id, Decimal("25.00"), "USD")
    s.btcpay.call(state.pay, ln.id, method="BTC-LN")
    s.wait_for(lambda: docs_about(s, "SalesReceipt", ln.id), what="the Lightning receipt")
    s.wait_idle()
    assert docs_about(s, "Deposit", ln.id) == [] and [r[0] for r in postings(s, ln.id)] == ["sale"]
