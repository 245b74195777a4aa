"""Issue 15 point 4: for any taxed Point-of-Sale cart (quantity × unit price, tax inside the prices or on
top), the SalesReceipt sovterm writes comes to exactly what the customer paid once QuickBooks (the simulator,
which works tax out as QuickBooks does) has computed it, for a US company (automated sales tax) and a
tax-inclusive one; a rounding/adjustment line appears only when the cart does not add up to what was paid."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.models import dumps, loads
from sovterm.sim.qbo import QBOSimState, seed_company
from sovterm.sync import items, lines

CENT = Decimal("0.01")
US = seed_company(QBOSimState(), "1")
UK = seed_company(QBOSimState(), "2", home_currency="GBP", country="GB")
UK_CODE = next(c["Id"] for c in UK.table("TaxCode").values() if c["Name"] == "20.0% S")


def _mapping(books: Any) -> StoreMapping:
    account = next(a["Id"] for a in books.table("Account").values() if a["Name"] == "Undeposited Funds")
    item = next(iter(books.table("Item")))
    return StoreMapping("S", books.realm_id, account, account, item, account)


carts = st.lists(st.tuples(st.integers(1, 50_000), st.integers(1, 12)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(cart=carts, tax_permille=st.integers(0, 250), on_top=st.booleans(), off_cents=st.integers(-3, 3),
       company=st.sampled_from(["us", "inclusive"]))
def test_a_taxed_cart_always_comes_to_what_was_paid(cart: list[tuple[int, int]], tax_permille: int, on_top: bool,
                                                     off_cents: int, company: str) -> None:
    subtotal = sum(cents * qty for cents, qty in cart) * CENT
    tax = (subtotal * tax_permille / 1000).quantize(CENT)
    price = subtotal + tax if on_top else subtotal  # BTCPay's price: tax added on top, or inside the prices
    paid = price + off_cents * CENT  # rounding, a small over- or underpayment the rules booked
    metadata = {"taxIncluded": str(tax), "posData": {"cart": [
        {"id": f"i{n}", "title": f"Item {n}", "price": str(cents * CENT), "count": qty}
        for n, (cents, qty) in enumerate(cart)]}}
    detail = lines.sale_detail(metadata)
    books = US if company == "us" else UK
    sale = items.SaleContext(detail, {}, items.TaxSetting(company, None if company == "us" else UK_CODE),  # type: ignore[arg-type]
                             None, None)
    body_lines, header = items.sale_lines(sale, _mapping(books), paid, price, "memo")
    account = _mapping(books).deposit_account_id
    doc = books.create("SalesReceipt", loads(dumps({"DepositToAccountRef": {"value": account}, "Line": body_lines,
                                                    **header})))
    assert doc["TotalAmt"] == paid  # what QuickBooks computes is what the customer paid: never tax on top
    booked_tax = doc["TxnTaxDetail"]["TotalTax"]
    expected_tax = (tax * paid / price).quantize(CENT) if paid < price else tax  # a part payment: its part
    if expected_tax >= paid:
        expected_tax = Decimal(0)
    assert booked_tax == expected_tax
    assert sum(Decimal(str(x["Amount"])) for x in doc["Line"]) + booked_tax == paid  # revenue + tax = paid
    adjustments = [x for x in body_lines if x["Description"].startswith("Rounding/adjustment")]
    assert len(adjustments) == (1 if off_cents else 0)  # only when the cart does not add up to what was paid
    for x, (cents, qty) in zip(body_lines, cart, strict=False):  # the cart's lines keep what was sold
        shown = x["SalesItemLineDetail"].get("TaxInclusiveAmt", x["Amount"])
        assert x["SalesItemLineDetail"]["Qty"] * x["SalesItemLineDetail"]["UnitPrice"] == shown
        if "as sold" in x["Description"]:  # the tax share left no exact unit price: the cart in its description
            assert f"{qty} × {cents * CENT} as sold" in x["Description"] and x["SalesItemLineDetail"]["Qty"] == 1
        else:
            assert (x["SalesItemLineDetail"]["Qty"], x["SalesItemLineDetail"]["UnitPrice"]) == (qty, cents * CENT)
