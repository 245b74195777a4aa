"""The QuickBooks simulator computes sales tax as QuickBooks does (sources in `sim/qbo_books._sales_lines`):
what sovterm's tax split protects against is tax added on top of what the customer paid."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sovterm.sim.qbo import QBOSimState, seed_company
from sovterm.sim.qbo_books import SimFault

D = Decimal


def receipt(books: Any, line: dict[str, Any], **header: Any) -> dict[str, Any]:
    item = next(iter(books.table("Item")))
    account = next(a["Id"] for a in books.table("Account").values() if a["Name"] == "Undeposited Funds")
    detail = {"ItemRef": {"value": item}, **line.pop("detail", {})}
    return books.create("SalesReceipt", {"DepositToAccountRef": {"value": account}, **header,
                                         "Line": [{"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail,
                                                   **line}]})


def test_us_automated_sales_tax_adds_tax_unless_the_document_carries_it() -> None:
    books = seed_company(QBOSimState(), "1")
    assert books.preferences()["TaxPrefs"]["PartnerTaxEnabled"] is True
    added = receipt(books, {"Amount": D("20.00"), "detail": {"TaxCodeRef": {"value": "TAX"}}})
    assert added["TotalAmt"] == D("21.65") and added["TxnTaxDetail"]["TotalTax"] == D("1.65")  # 8.25 % on top
    honoured = receipt(books, {"Amount": D("20.00"), "detail": {"TaxCodeRef": {"value": "TAX"}}},
                       TxnTaxDetail={"TotalTax": D("1.60")})
    assert honoured["TotalAmt"] == D("21.60")


def test_non_us_tax_codes_exclusive_on_top_inclusive_inside() -> None:
    books = seed_company(QBOSimState(), "2", home_currency="GBP", country="GB")
    assert books.preferences()["TaxPrefs"]["PartnerTaxEnabled"] is False
    code = next(c["Id"] for c in books.table("TaxCode").values() if c["Name"] == "20.0% S")
    on_top = receipt(books, {"Amount": D("10.00"), "detail": {"TaxCodeRef": {"value": code}}})
    assert on_top["TotalAmt"] == D("12.00")
    inside = receipt(books, {"Amount": D("12.00"), "detail": {"TaxCodeRef": {"value": code}}},
                     GlobalTaxCalculation="TaxInclusive")
    assert inside["TotalAmt"] == D("12.00") and inside["TxnTaxDetail"]["TotalTax"] == D("2.00")
    assert inside["Line"][0]["Amount"] == D("10.00")  # QuickBooks keeps the net in Amount
    with pytest.raises(SimFault) as refused:
        receipt(books, {"Amount": D("9.00"), "detail": {"TaxCodeRef": {"value": code}, "TaxInclusiveAmt": D("12.00")}},
                GlobalTaxCalculation="TaxInclusive", TxnTaxDetail={"TotalTax": D("2.00")})
    assert "do not make the tax-inclusive total" in refused.value.detail
