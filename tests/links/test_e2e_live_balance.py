"""End to end through the real daemon's listener against both simulators: the worked example of
docs/pay-links.md. Invoice 1001 of 100.00, link reserved at 100.00, the customer pays 40.00 by cheque,
the next click invalidates the old BTCPay invoice and reserves 60.00; paid through the link, the next
click is the paid page."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.system import System, start_system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # invoicing mode: the link's payment becomes a Payment applied to the invoice (issue 13 point 1 does
    # that in every mode; this test is about the click)
    started = start_system(Path(tmp_path_factory.mktemp("links")), mode="invoicing")
    yield started
    started.close()


def click(url: str) -> tuple[int, str | None, str]:
    """What the customer's browser gets for the pay link, without following the redirect."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        conn.request("GET", parts.path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location"), resp.read().decode()
    finally:
        conn.close()


def balance(system: System, doc_number: str) -> Decimal:
    return Decimal(next(d for d in system.qbo_docs("Invoice") if d["DocNumber"] == doc_number)["Balance"])


def cheque(system: System, doc_number: str, amount: str) -> None:
    """The bookkeeper records a cheque against the invoice, directly in QuickBooks."""
    books = system.qbo.state.books[system.realm]

    def record() -> None:
        invoice = next(d for d in books.table("Invoice").values() if d.get("DocNumber") == doc_number)
        books.create("Payment", {
            "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal(amount),
            "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        })

    system.qbo.call(record)


def btcpay_invoice(system: System, checkout: str | None) -> tuple[str, Decimal, str]:
    assert checkout is not None
    inv = system.btcpay.state.invoices[checkout.rsplit("/i/", 1)[1]]
    return inv.id, inv.amount, system.btcpay.call(lambda: inv.status)


def test_a_click_follows_the_live_balance(system: System) -> None:
    link = system.cli_json("link", "create", "--qbo-invoice", "1001")
    assert link["balance"] == "100.00"
    status, first, _ = click(link["url"])
    assert status == 303
    old_id, old_amount, old_status = btcpay_invoice(system, first)
    assert (old_amount, old_status) == (Decimal("100.00"), "New")

    cheque(system, "1001", "40.00")
    status, second, _ = click(link["url"])
    assert status == 303 and second != first
    assert system.btcpay.call(lambda: system.btcpay.state.invoices[old_id].status) == "Invalid"
    new_id, new_amount, new_status = btcpay_invoice(system, second)
    assert (new_amount, new_status) == (Decimal("60.00"), "New")
    assert click(link["url"])[:2] == (303, second)  # same balance: same checkout
    assert system.sql("SELECT btcpay_invoice_id, amount, state FROM link_reservations ORDER BY id") == [
        (old_id, "100.00", "superseded"), (new_id, "60.00", "open")]

    system.btcpay.call(system.btcpay.state.pay, new_id, method="BTC-LN")  # the customer pays the 60.00
    system.wait_for(lambda: balance(system, "1001") == 0, 30, "the sync to post the Payment of 60.00")
    status, location, page = click(link["url"])
    assert (status, location) == (410, None) and "has been paid" in page
    payments = [p for p in system.qbo_docs("Payment") if Decimal(p["TotalAmt"]) == Decimal("60.00")]
    assert len(payments) == 1
    assert system.sql("SELECT state FROM pay_links WHERE link_id = ?", (link["link_id"],)) == [("paid",)]
