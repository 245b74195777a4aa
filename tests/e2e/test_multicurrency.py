"""A store pricing in EUR, a QuickBooks company keeping USD books with multicurrency on: the receipt is
in EUR at the amount BTCPay locked, with QuickBooks' own EUR→USD rate for the day (ExchangeRate entity)."""

from __future__ import annotations

from decimal import Decimal

from .conftest import docs_about, settle


def test_foreign_currency_invoice_is_booked_at_quickbooks_own_rate(system_factory) -> None:
    s = system_factory(mode="deposit", store_currency="EUR", home_currency="USD", multicurrency=True)
    inv = settle(s, "80.00", currency="EUR")
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="receipt")[0]
    day = doc["TxnDate"]
    rate = s.qbo.call(lambda: s.qbo.state.books[s.realm].exchange_rate("EUR", day)["Rate"])
    assert doc["CurrencyRef"] == {"value": "EUR"}
    assert Decimal(doc["TotalAmt"]) == Decimal("80.00")  # the document is in the invoice's currency
    assert Decimal(str(doc["ExchangeRate"])) == rate == Decimal("1.0825")
    assert "EUR/BTC" in doc["PrivateNote"]
    asked = s.qbo.call(lambda: [e for e in s.qbo.state.request_log if e[3] == "exchangerate"])
    assert len(asked) == 1 and asked[0][4] == 200
    # the same day again: the rate is not asked twice
    second = settle(s, "20.00", currency="EUR")
    s.wait_for(lambda: docs_about(s, "SalesReceipt", second.id), what="second receipt")
    assert len(s.qbo.call(lambda: [e for e in s.qbo.state.request_log if e[3] == "exchangerate"])) == 1
