"""BTC amounts as text: satoshis or plain decimals everywhere, never `1E-8`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sovterm.amounts import plain, sats_to_btc
from sovterm.control.protocol import encode
from sovterm.qbo.postings import BtcDetail


@pytest.mark.parametrize(("sats", "text"), [(1, "0.00000001"), (0, "0.00000000"), (99, "0.00000099"),
                                            (123_456_789, "1.23456789"), (-1, "-0.00000001")])
def test_sats_to_btc_has_eight_plain_decimals(sats: int, text: str) -> None:
    assert sats_to_btc(sats) == text


@pytest.mark.parametrize(("value", "text"), [("1E-8", "0.00000001"), ("0E-8", "0.00000000"),
                                             ("0.00030000", "0.00030000"), ("9.9E-7", "0.00000099"), ("1E+2", "100")])
def test_plain_keeps_the_digits_without_scientific_notation(value: str, text: str) -> None:
    assert plain(Decimal(value)) == text


def test_memo_and_control_api_json_show_one_satoshi_plainly() -> None:
    note = BtcDetail(1, Decimal(50000), "USD", "BTCPay invoice I (store S)").describe()
    assert note == "BTCPay invoice I (store S): 0.00000001 BTC at 50000 USD/BTC"
    wire = json.loads(encode({"result": {"amount": Decimal("1E-8"), "fee": Decimal("0E-8")}}))
    assert wire == {"result": {"amount": "0.00000001", "fee": "0.00000000"}}
