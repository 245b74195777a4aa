"""Items end to end (#15 point 2): a BTCPay Point-of-Sale cart (the metadata BTCPay's PoS app writes, made
by the simulator) becomes a SalesReceipt with a line per cart item (QuickBooks item matched by SKU or name,
quantity, unit price) and a rounding/adjustment line whenever the cart does not add up to what was received;
the store's policy decides what an unknown item does (default item, create it, hold the posting)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.support.system import System

from .conftest import docs_about, postings

D = Decimal


def pay_cart(s: System, cart: list[tuple[str, str, Decimal, int]], **kw: Any) -> Any:
    state = s.btcpay.state
    pay_btc = kw.pop("pay_btc", None)
    inv = s.btcpay.call(state.create_pos_invoice, s.store_id, cart, **kw)
    s.btcpay.call(state.pay, inv.id, method="BTC-LN", amount_btc=pay_btc)
    return inv


def add_item(s: System, name: str, sku: str | None = None) -> str:
    books = s.qbo.state.books[next(iter(s.qbo.state.books))]
    income = next(a["Id"] for a in books.table("Account").values() if a["Name"] == "Sales of Product Income")
    body: dict[str, Any] = {"Name": name, "Type": "NonInventory", "IncomeAccountRef": {"value": income}}
    if sku:
        body["Sku"] = sku
    return str(s.qbo.call(books.add, "Item", body)["Id"])


def lines_of(doc: dict[str, Any]) -> list[tuple[str, int, Decimal, Decimal]]:
    """(item id, quantity, unit price, amount) of each line."""
    return [(ln["SalesItemLineDetail"]["ItemRef"]["value"], int(ln["SalesItemLineDetail"]["Qty"]),
             D(str(ln["SalesItemLineDetail"]["UnitPrice"])), D(str(ln["Amount"]))) for ln in doc["Line"]]


def test_pos_cart_posts_a_line_per_item_with_qty_and_unit_price(deposit_system: System) -> None:
    s = deposit_system
    latte = add_item(s, "Latte", sku="latte")  # matched by SKU = the PoS item id
    croissant = add_item(s, "Croissant")  # matched by name = the PoS item title
    inv = pay_cart(s, [("latte", "Latte (large)", D("4.50"), 2), ("croissant-1", "Croissant", D("3.25"), 1)])
    assert "posData" in inv.metadata and inv.amount == D("12.25")
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == D("12.25")
    assert lines_of(doc) == [(latte, 2, D("4.50"), D("9.00")), (croissant, 1, D("3.25"), D("3.25"))]
    assert "Latte (large) (latte)" in doc["Line"][0]["Description"]
    s.wait_for(lambda: postings(s, inv.id) and postings(s, inv.id)[0][4] == "posted", what="posted")
    listed = s.cli_ok("setup", "items", "list")
    assert "latte" in listed and "Latte (#" in listed and "sku" in listed and "croissant-1" in listed


def test_cart_that_does_not_add_up_gets_a_rounding_line(deposit_system: System) -> None:
    s = deposit_system
    mapped_item = s.sql("SELECT item_id FROM qbo_mappings WHERE store_id = ?", (s.store_id,))[0][0]
    tea = add_item(s, "Tea", sku="tea")
    # a 10 % discount of 3 × 1.99 = 5.97 → 0.60 off (BTCPay rounds per line): 5.37, and a tip of 1.00
    inv = pay_cart(s, [("tea", "Tea", D("1.99"), 3)], discount_percent=D("10"), tip=D("1.00"))
    assert inv.amount == D("6.37")
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == inv.amount
    assert lines_of(doc) == [(tea, 3, D("1.99"), D("5.97")), (mapped_item, 1, D("-0.60"), D("-0.60")),
                             (mapped_item, 1, D("1.00"), D("1.00"))]
    # paid 10 % over the price: what was received is booked (accounting.md D4), the excess on the adjustment line
    over = pay_cart(s, [("tea", "Tea", D("2.00"), 5)], pay_btc=D("0.00016924"))  # 11.00 at 65,000
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", over.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == D("11.00")
    assert lines_of(doc)[-1] == (mapped_item, 1, D("1.00"), D("1.00"))
    assert "Rounding/adjustment" in doc["Line"][-1]["Description"]


def test_unknown_items_default_create_or_hold(deposit_system: System) -> None:
    s = deposit_system
    mapped_item = s.sql("SELECT item_id FROM qbo_mappings WHERE store_id = ?", (s.store_id,))[0][0]
    # default: the store's sales item, the title in the line
    inv = pay_cart(s, [("mystery-1", "Mystery box", D("7.00"), 1)])
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert lines_of(doc) == [(mapped_item, 1, D("7.00"), D("7.00"))] and "Mystery box" in doc["Line"][0]["Description"]
    # create: a Service item named after the title, SKU = the code
    s.cli_ok("setup", "items", "policy", "create")
    inv = pay_cart(s, [("mug-2", "Mug", D("12.00"), 2)])
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    created = [i for i in s.qbo_docs("Item") if i.get("Sku") == "mug-2"]
    assert len(created) == 1 and created[0]["Name"] == "Mug"
    assert lines_of(doc) == [(created[0]["Id"], 2, D("12.00"), D("24.00"))]
    # hold: no document; the posting is listed as held with the item, and released once it is mapped
    s.cli_ok("setup", "items", "policy", "hold")
    inv = pay_cart(s, [("scarf-3", "Scarf", D("30.00"), 1)])
    s.wait_for(lambda: s.sql("SELECT state FROM sync_jobs WHERE invoice_id = ? AND state = 'held'", (inv.id,)),
               what="the posting held")
    assert not docs_about(s, "SalesReceipt", inv.id)
    listed = s.cli_ok("setup", "items", "list")
    assert "scarf-3" in listed and "NOT MAPPED" in listed and "[1 held]" in listed
    scarf = add_item(s, "Winter scarf")
    out = s.cli_ok("setup", "items", "map", "scarf-3", "--item", "Winter scarf")
    assert "released" in out
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt after mapping")[0]
    assert lines_of(doc) == [(scarf, 1, D("30.00"), D("30.00"))]
    assert len(docs_about(s, "SalesReceipt", inv.id)) == 1
    s.cli_ok("setup", "items", "policy", "default")


def test_item_code_alone_and_mapping_refusals(deposit_system: System) -> None:
    s = deposit_system
    gift = add_item(s, "Gift card", sku="GIFT")
    inv = s.btcpay.call(s.btcpay.state.create_invoice, s.store_id, D("25.00"), "USD",
                        metadata={"itemCode": "GIFT", "itemDesc": "Gift card 25"})
    s.btcpay.call(s.btcpay.state.pay, inv.id, method="BTC-LN")
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert lines_of(doc) == [(gift, 1, D("25.00"), D("25.00"))]
    bad = s.cli("setup", "items", "map", "GIFT", "--item", "No such item")
    assert bad.returncode != 0 and "no Item named" in bad.stderr
