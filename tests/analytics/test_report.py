"""The analytics rules on a worked example (docs/analytics.md): which clock each figure follows, exact money,
rates to four places, empty buckets kept, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sovterm.analytics.report import Invoice, Payment, Payout, Refund, periods, summarize

D = Decimal


def at(day: int, hour: int = 12) -> int:
    return int(datetime(2026, 11, day, hour, tzinfo=UTC).timestamp())


# Four invoices created on 1-3 November, one created in October and settled on 2 November.
INVOICES = [
    Invoice("S", "a", "Settled", "None", "USD", D("10.00"), D("10.00"), at(1), at(1), "COFFEE"),
    Invoice("S", "b", "Settled", "PaidOver", "USD", D("20.00"), D("20.50"), at(1), at(2), "CAKE"),
    Invoice("S", "c", "Expired", "PaidPartial", "USD", D("5.00"), D("2.00"), at(2), None, "COFFEE"),
    Invoice("S", "d", "New", "None", "EUR", D("7.00"), None, at(3), None, None),
    Invoice("S", "old", "Settled", "PaidLate", "USD", D("3.33"), D("3.33"), at(1) - 40 * 86400, at(2), "COFFEE"),
    Invoice("S", "cash", "Settled", "Marked", "USD", D("4.00"), D("0"), at(5), at(5), "CAKE"),
]
PAYMENTS = [
    Payment("S", "a", "lightning", 20_000, D("10.00")),
    Payment("S", "b", "onchain", 30_000, D("15.00")),
    Payment("S", "b", "lightning", 11_000, D("5.50")),
    Payment("S", "old", "CASHU", None, D("3.33")),
]


def test_counts_follow_creation_and_money_follows_settlement() -> None:
    r = summarize(INVOICES, PAYMENTS, [Refund("USD", D("4.00"), at(3))], [Payout(50_000, at(3)), Payout(1, at(20))],
                  date_from=date(2026, 11, 1), date_to=date(2026, 11, 3))
    # created in the period: a, b, c, d (not "old")
    assert (r.created, r.converted, r.expired, r.partial, r.overpaid) == (4, 2, 1, 1, 1)
    assert r.statuses == {"Settled": 2, "Expired": 1, "New": 1}
    assert (r.rate(r.converted), r.rate(r.expired)) == (D("0.5000"), D("0.2500"))
    # settled in the period, in the main currency: a, b and "old" (created in October, paid in November)
    assert r.currency == "USD"
    assert (r.settled, r.volume, r.volume_sats) == (3, D("33.83"), 61_000)
    assert r.average_ticket == D("11.28")  # 33.83 / 3 = 11.2766..., half-even to the cent
    assert [(m.method, m.payments, m.invoices, m.sats, m.volume) for m in r.methods] == [
        ("lightning", 2, 2, 31_000, D("15.50")),
        ("onchain", 1, 1, 30_000, D("15.00")),
        ("CASHU", 1, 1, 0, D("3.33")),
    ]
    assert [(i.item, i.invoices, i.volume) for i in r.items] == [("CAKE", 1, D("20.50")), ("COFFEE", 2, D("13.33"))]
    assert (r.refunds, r.refunded, r.payouts, r.paid_out_sats) == (1, {"USD": D("4.00")}, 1, 50_000)
    assert [(b.period, b.created, b.settled, b.volume) for b in r.series] == [
        ("2026-11-01", 2, 1, D("10.00")),
        ("2026-11-02", 1, 2, D("23.83")),
        ("2026-11-03", 1, 0, D("0")),
    ]


def test_an_invoice_marked_settled_is_volume_on_its_own_method_line() -> None:
    r = summarize(INVOICES, PAYMENTS, [], [], date_from=date(2026, 11, 5), date_to=date(2026, 11, 5))
    assert (r.settled, r.volume, r.volume_sats) == (1, D("4.00"), 0)  # its price: nothing was paid through BTCPay
    assert [(m.method, m.payments, m.invoices, m.volume) for m in r.methods] == [("marked", 0, 1, D("4.00"))]


def test_a_currency_filter_counts_only_that_currency() -> None:
    r = summarize(INVOICES, PAYMENTS, [], [], date_from=date(2026, 11, 1), date_to=date(2026, 11, 3), currency="EUR")
    assert (r.created, r.settled, r.volume, r.currency) == (1, 0, D("0"), "EUR")
    assert r.rate(r.converted) == D("0") and r.average_ticket == D("0")


def test_days_are_the_time_zone_s_days() -> None:
    late = Invoice("S", "late", "Settled", "None", "USD", D("1"), D("1"), at(1, 23), at(1, 23))
    utc = summarize([late], [], [], [], date_from=date(2026, 11, 1), date_to=date(2026, 11, 2))
    tokyo = summarize([late], [], [], [], date_from=date(2026, 11, 1), date_to=date(2026, 11, 2), tz="Asia/Tokyo")
    assert [b.settled for b in utc.series] == [1, 0]
    assert [b.settled for b in tokyo.series] == [0, 1]  # 23:00 UTC is 08:00 the next day in Tokyo


def test_weeks_and_months_cover_the_range_with_empty_buckets() -> None:
    assert periods(date(2026, 11, 28), date(2026, 12, 8), "week") == ["2026-W48", "2026-W49", "2026-W50"]
    assert periods(date(2026, 10, 31), date(2027, 1, 1), "month") == ["2026-10", "2026-11", "2026-12", "2027-01"]
    r = summarize([], [], [], [], date_from=date(2026, 11, 1), date_to=date(2026, 12, 31), by="month")
    assert [(b.period, b.created) for b in r.series] == [("2026-11", 0), ("2026-12", 0)]
    assert r.rate(r.converted) == D("0")
