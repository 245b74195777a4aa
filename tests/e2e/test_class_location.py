"""Class and location end to end (#15 point 4): the store's class (per line) and location (QuickBooks
Department, on the header) on every document that carries them, a pay link's own over the store's, and
the mapping refusing an inactive or unknown class or location like an account."""

from __future__ import annotations

from typing import Any

from tests.support.system import System

from .conftest import docs_about, settle
from .test_links_and_fees import click


def list_id(s: System, entity: str, name: str) -> str:
    return next(d["Id"] for d in s.qbo_docs(entity) if d.get("Name") == name)


def add_list_entry(s: System, entity: str, name: str) -> str:
    books = s.qbo.state.books[next(iter(s.qbo.state.books))]
    return str(s.qbo.call(books.add, entity, {"Name": name})["Id"])


def set_active(s: System, entity: str, entry_id: str, active: bool) -> None:
    books = s.qbo.state.books[next(iter(s.qbo.state.books))]
    s.qbo.call(lambda: books.table(entity)[entry_id].__setitem__("Active", active))


def dims(doc: dict[str, Any], detail: str) -> tuple[str | None, list[str | None]]:
    """(location on the header, class of each line)."""
    return ((doc.get("DepartmentRef") or {}).get("value"),
            [(ln[detail].get("ClassRef") or {}).get("value") for ln in doc["Line"]])


def test_store_class_and_location_on_receipts_deposits_and_refunds(deposit_system: System) -> None:
    s = deposit_system
    online, main_street = list_id(s, "Class", "Online"), list_id(s, "Department", "Main Street")
    out = s.cli_ok("setup", "accounts", "--class", "Online", "--location", "Main Street")
    assert "Main Street" in out and "Online" in out
    inv = settle(s, "40.00")
    receipt = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert dims(receipt, "SalesItemLineDetail") == (main_street, [online])
    s.btcpay.call(s.btcpay.state.refund, inv.id, "Fiat")
    refund = s.wait_for(lambda: docs_about(s, "RefundReceipt", inv.id), what="refund receipt")[0]
    assert dims(refund, "SalesItemLineDetail") == (main_street, [online])
    s.cli_ok("setup", "mode", "deposit", "--deposit-as", "deposit")
    try:
        inv = settle(s, "15.00")
        deposit = s.wait_for(lambda: docs_about(s, "Deposit", inv.id), what="deposit")[0]
        assert dims(deposit, "DepositLineDetail") == (main_street, [online])
    finally:
        s.cli_ok("setup", "mode", "deposit", "--deposit-as", "salesreceipt")


def test_a_pay_link_books_to_its_own_class_and_location(deposit_system: System) -> None:
    s = deposit_system
    events, popup = add_list_entry(s, "Class", "Events"), add_list_entry(s, "Department", "Pop-up")
    link = s.cli_json("link", "create", "--amount", "20.00", "--currency", "USD", "--memo", "Festival ticket")
    link_id = link.get("link_id") or link["id"]
    out = s.cli_ok("setup", "link-dimensions", link_id, "--class", "Events", "--location", "Pop-up")
    assert "Events" in out and "Pop-up" in out
    status, location, _ = click(link["url"])
    assert status == 303
    invoice_id = location.rsplit("/i/", 1)[1]
    s.btcpay.call(s.btcpay.state.pay, invoice_id, method="BTC-LN")
    receipt = s.wait_for(lambda: docs_about(s, "SalesReceipt", invoice_id), what="receipt")[0]
    assert dims(receipt, "SalesItemLineDetail") == (popup, [events])
    other = settle(s, "5.00")  # the store's other invoices keep the store's
    receipt = s.wait_for(lambda: docs_about(s, "SalesReceipt", other.id), what="receipt")[0]
    assert dims(receipt, "SalesItemLineDetail")[0] != popup


def test_the_mapping_refuses_an_inactive_or_unknown_class_or_location(deposit_system: System) -> None:
    s = deposit_system
    closed = add_list_entry(s, "Class", "Closed branch")
    set_active(s, "Class", closed, False)
    bad = s.cli("setup", "accounts", "--class", "Closed branch")
    assert bad.returncode == 1 and "inactive" in bad.stderr and "Closed branch" in bad.stderr
    bad = s.cli("setup", "accounts", "--location", "Nowhere")
    assert bad.returncode == 1 and "no Department named or numbered 'Nowhere'" in bad.stderr
    # a class made inactive after it was mapped: the next save of the mapping refuses it too
    shop = add_list_entry(s, "Class", "Shop")
    s.cli_ok("setup", "accounts", "--class", "Shop")
    set_active(s, "Class", shop, False)
    bad = s.cli("setup", "accounts", "--location", "Main Street")
    assert bad.returncode == 1 and "class: Class 'Shop' is inactive" in bad.stderr
    set_active(s, "Class", shop, True)
    s.cli_ok("setup", "accounts", "--class", "Online")
