"""The sale lines of docs/accounting.md ("Items", "Sales tax"): BTCPay's PoS metadata in its real shapes,
the adjustment line, and the tax split for each kind of company."""

from __future__ import annotations

import json
from decimal import Decimal

from sovterm.sync.lines import ADJUSTMENT, CUSTOM, DISCOUNT, SALE, TIP, SoldLine, document_lines, sale_detail

D = Decimal


def test_pos_data_as_object_as_legacy_string_and_prices_in_every_form() -> None:
    pos = {"cart": [{"id": "a", "title": "A", "price": 4.5, "count": 2},  # a JSON number
                    {"id": "b", "title": "B", "price": "3.25", "count": 1},  # a string
                    {"id": "c", "title": "C", "price": {"value": 1, "formatted": "$1.00"}, "count": 3}],
           "amounts": [2.5], "discountAmount": 0.5, "tip": 1}
    expected = (SoldLine("a", "A", 2, D("4.5")), SoldLine("b", "B", 1, D("3.25")), SoldLine("c", "C", 3, D("1")),
                SoldLine(CUSTOM, "Custom Amount 1", 1, D("2.5")), SoldLine(DISCOUNT, "Discount", 1, D("-0.5")),
                SoldLine(TIP, "Tip", 1, D("1")))
    for metadata in ({"posData": pos}, {"posData": json.dumps(pos)}):
        detail = sale_detail({**metadata, "taxIncluded": 1.2, "taxOnTip": "0.08"})
        assert detail.lines == expected and detail.tax == D("1.28") and detail.codes == ("a", "b", "c")
    assert sale_detail({"itemCode": "X1", "itemDesc": "Thing"}).lines == (SoldLine("X1", "Thing", 1, None),)
    assert sale_detail({"posData": "not json", "orderId": "1"}).lines == ()


def test_lines_add_up_to_what_was_received_with_an_adjustment_line() -> None:
    detail = sale_detail({"posData": {"cart": [{"id": "a", "title": "A", "price": "3.33", "count": 3}]}})
    lines, tax = document_lines(detail, D("10.00"), "none")
    assert [(x.code, x.net) for x in lines] == [("a", D("9.99")), (ADJUSTMENT, D("0.01"))] and tax == 0
    lines, _ = document_lines(detail, D("9.99"), "none")
    assert [(x.code, x.net) for x in lines] == [("a", D("9.99"))]


def test_tax_split_for_each_kind_and_a_partial_payment_carries_its_part() -> None:
    on_top = sale_detail({"posData": {"cart": [{"id": "a", "title": "A", "price": "10", "count": 2}]},
                          "taxIncluded": "1.65"})
    lines, tax = document_lines(on_top, D("21.65"), "us")
    assert tax == D("1.65") and [(x.net, x.tax) for x in lines] == [(D("20"), D("1.65"))]
    lines, tax = document_lines(on_top, D("21.65"), "inclusive")
    assert [(x.net, x.gross) for x in lines] == [(D("20"), D("21.65"))]
    inside = sale_detail({"posData": {"cart": [{"id": "a", "title": "A", "price": "6", "count": 2}]},
                          "taxIncluded": "2"})
    lines, tax = document_lines(inside, D("12.00"), "inclusive")
    assert [(x.net, x.gross) for x in lines] == [(D("10"), D("12"))]
    plain = sale_detail({"taxIncluded": "8.00"})
    lines, tax = document_lines(plain, D("40.00"), "us", price=D("100.00"))  # 40 of 100 paid: 40 % of the tax
    assert tax == D("3.20") and [(x.code, x.net) for x in lines] == [(SALE, D("36.80"))]
    named = sale_detail({"itemCode": "X", "taxIncluded": "8.00"})  # the item alone: what was paid of it
    assert [(x.code, x.net) for x in document_lines(named, D("40.00"), "us", price=D("100.00"))[0]] == [
        ("X", D("36.80"))]
    lines, _ = document_lines(named, D("110.00"), "us", price=D("100.00"))  # overpaid: the excess adjusts
    assert [(x.code, x.net) for x in lines] == [("X", D("92.00")), (ADJUSTMENT, D("10.00"))]
    assert lines[1].title == "Rounding/adjustment: the cart adds up to 100.00, 110.00 was received"
