"""Sales tax end to end (#15 point 3): BTCPay's `taxIncluded` is tax, not revenue. A US company (automated
sales tax) gets net lines and the tax amount on the document; a non-US company gets tax-inclusive lines
with a tax code each; either way the document's total is what the customer paid and QuickBooks (simulated,
computing tax as QuickBooks does) adds nothing on top. Invoices carrying tax wait until the operator has
said which kind of company it is."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.support.system import System

from .conftest import docs_about
from .test_items import add_item, pay_cart

D = Decimal


def tax_of(doc: dict[str, Any]) -> Decimal:
    return D(str(doc["TxnTaxDetail"]["TotalTax"]))


def test_us_company_tax_on_the_document_total_is_what_was_paid(deposit_system: System) -> None:
    s = deposit_system
    add_item(s, "Sandwich", sku="sandwich")
    # tax on top of the prices (PoS default): 2 × 10.00 + 8.25 % = 21.65
    inv = pay_cart(s, [("sandwich", "Sandwich", D("10.00"), 2)], tax_rate=D("8.25"))
    assert inv.amount == D("21.65") and inv.metadata["taxIncluded"] == "1.65"
    # no tax setting yet: held with the fix, never booked as revenue
    s.wait_for(lambda: s.sql("SELECT last_error FROM sync_jobs WHERE invoice_id = ? AND state = 'held'", (inv.id,)),
               what="held for the tax setting")
    error = s.sql("SELECT last_error FROM sync_jobs WHERE invoice_id = ? AND state = 'held'", (inv.id,))[0][0]
    assert "no sales-tax setting" in error and "sovterm setup tax us" in error
    assert not docs_about(s, "SalesReceipt", inv.id)
    out = s.cli_ok("setup", "tax", "us")
    assert "US company" in out
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == D("21.65") and tax_of(doc) == D("1.65")
    assert [(D(str(ln["Amount"])), ln["SalesItemLineDetail"]["TaxCodeRef"]["value"]) for ln in doc["Line"]] == [
        (D("20.00"), "TAX")]
    # refunds give the tax back in proportion, in cents, cumulatively (docs/accounting.md TR1-TR2): 10.00 of
    # 21.65 carries 1.65 × 10.00 / 21.65 = 0.762 → 0.76; the other 11.65 the rest, 0.89; all of it back: 1.65
    for n, amount in enumerate(("10.00", "11.65"), start=1):
        s.btcpay.call(s.btcpay.state.refund, inv.id, "Custom", custom_amount=D(amount), custom_currency="USD")
        s.wait_for(lambda n=n: len(docs_about(s, "RefundReceipt", inv.id)) == n, what="the refund receipt")
    refunds = docs_about(s, "RefundReceipt", inv.id)
    assert [(D(str(r["TotalAmt"])), tax_of(r)) for r in sorted(refunds, key=lambda r: int(r["Id"]))] == [
        (D("10.00"), D("0.76")), (D("11.65"), D("0.89"))]
    assert [[(D(str(ln["Amount"])), ln["SalesItemLineDetail"]["TaxCodeRef"]["value"]) for ln in r["Line"]]
            for r in sorted(refunds, key=lambda r: int(r["Id"]))] == [[(D("9.24"), "TAX")], [(D("10.76"), "TAX")]]
    assert tax_of(doc) - sum(tax_of(r) for r in refunds) == 0  # the liability is back to nothing
    # tax included in the prices: 10.80 with 8 % inside is 0.80 of tax; revenue 10.00
    inv = pay_cart(s, [("sandwich", "Sandwich", D("10.80"), 1)], tax_rate=D("8"), tax_included_in_price=True)
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == D("10.80") and tax_of(doc) == D("0.80")
    assert sum(D(str(ln["Amount"])) for ln in doc["Line"]) == D("10.00")
    # an invoice without tax says so (0), so automated sales tax cannot add any
    inv = pay_cart(s, [("sandwich", "Sandwich", D("5.00"), 1)])
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == D("5.00") and tax_of(doc) == 0
    # a store booking sales as Deposits (no tax lines): the tax goes to the liability account the operator named
    s.cli_ok("setup", "mode", "deposit", "--deposit-as", "deposit")
    try:
        inv = pay_cart(s, [("sandwich", "Sandwich", D("10.00"), 2)], tax_rate=D("8.25"))
        s.wait_for(lambda: s.sql("SELECT 1 FROM sync_jobs WHERE invoice_id = ? AND state = 'held' AND last_error "
                                 "LIKE '%--tax-account%'", (inv.id,)), what="held for the tax account")
        bad = s.cli("setup", "tax", "us", "--tax-account", "Checking")
        assert bad.returncode == 1 and "liability" in bad.stderr
        s.cli_ok("setup", "tax", "us", "--tax-account", "Sales Tax Payable")
        deposit = s.wait_for(lambda: docs_about(s, "Deposit", inv.id), what="deposit")[0]
        payable = next(a["Id"] for a in s.qbo_docs("Account") if a["Name"] == "Sales Tax Payable")
        assert D(str(deposit["TotalAmt"])) == D("21.65")
        assert [(ln["DepositLineDetail"]["AccountRef"]["value"] == payable, D(str(ln["Amount"])))
                for ln in deposit["Line"]] == [(False, D("20.00")), (True, D("1.65"))]
    finally:
        s.cli_ok("setup", "mode", "deposit", "--deposit-as", "salesreceipt")


def test_non_us_company_tax_inclusive_lines_with_a_tax_code(system_factory: Callable[..., System]) -> None:
    s = system_factory(store_currency="GBP", home_currency="GBP", country="GB")
    standard = next(c["Id"] for c in s.qbo_docs("TaxCode") if c["Name"] == "20.0% S")
    bad = s.cli("setup", "tax", "inclusive")
    assert bad.returncode == 1 and "--tax-code" in bad.stderr
    s.cli_ok("setup", "tax", "inclusive", "--tax-code", "20.0% S")
    add_item(s, "Pint", sku="pint")
    # VAT inside the prices (UK PoS): 2 × 6.00 = 12.00 of which 2.00 VAT
    inv = pay_cart(s, [("pint", "Pint", D("6.00"), 2)], tax_rate=D("20"), tax_included_in_price=True)
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert doc["GlobalTaxCalculation"] == "TaxInclusive"
    assert D(str(doc["TotalAmt"])) == D("12.00") and tax_of(doc) == D("2.00")
    [line] = doc["Line"]
    detail = line["SalesItemLineDetail"]
    assert (detail["Qty"], D(str(detail["UnitPrice"])), D(str(detail["TaxInclusiveAmt"])), D(str(line["Amount"]))) == (
        2, D("6.00"), D("12.00"), D("10.00"))
    assert detail["TaxCodeRef"]["value"] == standard
    # a partial refund of 5.00 gives back 2.00 × 5.00 / 12.00 = 0.833 → 0.83 of VAT (TR3)
    s.btcpay.call(s.btcpay.state.refund, inv.id, "Custom", custom_amount=D("5.00"), custom_currency="GBP")
    [refund] = s.wait_for(lambda: docs_about(s, "RefundReceipt", inv.id), what="the refund receipt")
    assert refund["GlobalTaxCalculation"] == "TaxInclusive"
    assert D(str(refund["TotalAmt"])) == D("5.00") and tax_of(refund) == D("0.83")
    [line] = refund["Line"]
    assert (D(str(line["SalesItemLineDetail"]["TaxInclusiveAmt"])), D(str(line["Amount"])),
            line["SalesItemLineDetail"]["TaxCodeRef"]["value"]) == (D("5.00"), D("4.17"), standard)
    # VAT added on top of the prices: 10.00 + 20 % = 12.00 paid; the line's gross is what was paid
    inv = pay_cart(s, [("pint", "Pint", D("5.00"), 2)], tax_rate=D("20"))
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert D(str(doc["TotalAmt"])) == D("12.00") and tax_of(doc) == D("2.00")
    assert D(str(doc["Line"][0]["Amount"])) == D("10.00") and "2 × 5.00 as sold" in doc["Line"][0]["Description"]
    # an item with its own tax code (zero-rated), mapped by the operator: its lines carry that code
    zero = next(c["Id"] for c in s.qbo_docs("TaxCode") if c["Name"] == "0.0% Z")
    s.cli_ok("setup", "items", "map", "bread", "--item", "Pint", "--tax-code", "0.0% Z")
    inv = pay_cart(s, [("bread", "Bread", D("3.00"), 1), ("pint", "Pint", D("6.00"), 1)], tax_rate=D("20"),
                   tax_included_in_price=True)
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    assert [ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in doc["Line"]] == [zero, standard]
    assert D(str(doc["TotalAmt"])) == D("9.00")
