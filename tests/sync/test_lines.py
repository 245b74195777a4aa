"""The sale lines of docs/accounting.md ("Items", "Sales tax"): BTCPay's PoS metadata in its real shapes,
the adjustment line, and the tax split for each kind of company."""

from __future__ import annotations

import json
from decimal import Decimal

from sovterm.sync.lines import (
    ADJUSTMENT,
    CUSTOM,
    DISCOUNT,
    SALE,
    TIP,
    SoldLine,
    document_lines,
    refund_tax,
    sale_detail,
)

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


def test_refund_tax_tr_rows_and_pieces_give_back_exactly_the_sales_tax() -> None:
    """docs/accounting.md TR1-TR5: a refund's tax is its part of the sale's, in cents, worked out on the
    refunds so far, so the pieces of a whole refund give back exactly the tax."""
    assert refund_tax(D("1.65"), D("21.65"), D(0), D(0), D("10.00")) == D("0.76")  # TR1: 0.762
    assert refund_tax(D("1.65"), D("21.65"), D("10.00"), D("0.76"), D("11.65")) == D("0.89")  # TR2: 1.65 - 0.76
    assert refund_tax(D("2.00"), D("12.00"), D(0), D(0), D("5.00")) == D("0.83")  # TR3: 0.833
    assert refund_tax(D("0.80"), D("10.80"), D(0), D(0), D("10.80")) == D("0.80")  # TR4: the whole sale back
    assert refund_tax(D("0.05"), D("2.00"), D(0), D(0), D("1.00")) == D("0.02")  # TR5: 0.025, half-even
    assert refund_tax(D("0.05"), D("2.00"), D("1.00"), D("0.02"), D("1.00")) == D("0.03")  # the rest
    assert refund_tax(D("1.65"), D("21.65"), D(0), D(0), D("30.00")) == D("1.65")  # beyond the booked: no more
    assert refund_tax(D(0), D("21.65"), D(0), D(0), D("10.00")) == 0
    # 21.65 back in ten refunds, seven of a cent (each keeps its cent of revenue: its tax waits for the next)
    pieces = [D("0.01")] * 7 + [D("3.33"), D("0.50"), D("17.74")]
    given: list[Decimal] = []
    for n, piece in enumerate(pieces):
        given.append(refund_tax(D("1.65"), D("21.65"), sum(pieces[:n], D(0)), sum(given, D(0)), piece))
    assert sum(given) == D("1.65") and given[:7] == [0] * 7 and all(t < p for t, p in zip(given, pieces, strict=True))
