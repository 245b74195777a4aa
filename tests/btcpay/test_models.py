"""Model tolerance: 1.x and 2.x payment-method ids and field names, exact sats, unknown values kept."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from sovterm.btcpay.models import (
    Invoice,
    InvoicePaymentMethod,
    PaymentMethodKind,
    Payout,
    btc_to_sats,
    btc_to_sats_rounded,
    payment_method_kind,
    split_payment_method_id,
)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("BTC-CHAIN", PaymentMethodKind.ONCHAIN),
        ("BTC", PaymentMethodKind.ONCHAIN),
        ("BTC-LN", PaymentMethodKind.LIGHTNING),
        ("BTC-LightningNetwork", PaymentMethodKind.LIGHTNING),
        ("BTC_LightningLike", PaymentMethodKind.LIGHTNING),
        ("BTC-LNURL", PaymentMethodKind.LNURL),
        ("BTC-LNURLPAY", PaymentMethodKind.LNURL),
        ("BTC_LNURLPAY", PaymentMethodKind.LNURL),
        ("CASHU", PaymentMethodKind.CASHU),  # BTCNutServer plugin id: its own kind, not a chain
        ("BTC-SOMETHINGNEW", PaymentMethodKind.OTHER),
        ("USDT-TRON", PaymentMethodKind.OTHER),
    ],
)
def test_payment_method_ids_1x_and_2x(raw, kind):
    assert payment_method_kind(raw) == kind


def test_payment_method_currency():
    assert split_payment_method_id("btc-ln") == ("BTC", PaymentMethodKind.LIGHTNING)


def test_payment_method_1x_field_names():
    legacy = InvoicePaymentMethod.model_validate({
        "paymentMethod": "BTC-LightningNetwork", "cryptoCode": "BTC", "networkFee": "0.00000100",
        "rate": "64392.23", "amount": "0.00020000", "payments": [],
    })
    modern = InvoicePaymentMethod.model_validate({
        "paymentMethodId": "BTC-LN", "currency": "BTC", "paymentMethodFee": "0.00000100",
        "rate": "64392.23", "amount": "0.00020000", "payments": [],
    })
    assert legacy.kind == modern.kind == PaymentMethodKind.LIGHTNING
    assert legacy.payment_method_fee == modern.payment_method_fee == Decimal("0.000001")
    assert legacy.payment_method_id == "BTC-LightningNetwork"  # the raw id is kept


def test_btc_to_sats_is_exact():
    assert btc_to_sats(Decimal("0.00000001")) == 1
    assert btc_to_sats(Decimal("20999999.97690000")) == 2_099_999_997_690_000
    assert btc_to_sats(Decimal("1.1")) == 110_000_000
    with pytest.raises(ValueError):
        btc_to_sats(Decimal("0.000000015"))
    assert btc_to_sats_rounded(Decimal("0.00001234567")) == 1235


def test_amounts_are_decimals_never_floats():
    inv = Invoice.model_validate({"id": "i", "createdTime": 1, "status": "New", "amount": "0.1", "paidAmount": "0.2"})
    assert inv.amount + inv.paid_amount == Decimal("0.3")


def test_unknown_statuses_are_kept_and_logged(caplog):
    caplog.set_level(logging.WARNING)
    inv = Invoice.model_validate({
        "id": "i", "createdTime": 1, "status": "Refunded", "additionalStatus": "SomethingNew",
        "futureField": {"x": 1},
    })
    assert inv.status == "Refunded" and inv.additional_status == "SomethingNew"
    assert inv.model_extra == {"futureField": {"x": 1}}
    assert "unknown invoice status 'Refunded'" in caplog.text
    p = Payout.model_validate({"id": "p", "state": "Frozen"})
    assert p.state == "Frozen"


def test_known_statuses_are_normalised_case_insensitively():
    assert Invoice.model_validate({"id": "i", "createdTime": 1, "status": "settled"}).status == "Settled"


def test_payout_1x_and_2x_names_and_numeric_date():
    v1 = Payout.model_validate({
        "id": "p", "state": "AwaitingPayment", "amount": "10.00", "cryptoCode": "BTC",
        "paymentMethodAmount": "0.00015", "paymentMethod": "BTC", "date": "1700000000",
    })
    v2 = Payout.model_validate({
        "id": "p", "state": "AwaitingPayment", "originalAmount": "10.00", "payoutCurrency": "BTC",
        "payoutAmount": "0.00015", "payoutMethodId": "BTC-CHAIN", "date": 1700000000,
    })
    for p in (v1, v2):
        assert (p.original_amount, p.payout_currency, p.payout_amount, p.date) == (
            Decimal("10.00"), "BTC", Decimal("0.00015"), 1_700_000_000)
