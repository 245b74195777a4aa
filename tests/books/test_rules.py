"""The fair-value rules with the worked examples of docs/accounting.md "Fair value of the bitcoin held"
(same numbers), and FIFO's conservation of satoshis and cost as properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sovterm.books.rules import Disposal, Lot, fair_value, fifo, holding, remeasurement_lines, share_of_cost

A = Lot(date(2026, 1, 5), 200_000, Decimal("100.00"), "invoice A")  # at 50,000 USD/BTC
B = Lot(date(2026, 1, 20), 100_000, Decimal("60.00"), "invoice B")  # at 60,000
P = Disposal(date(2026, 2, 10), 250_000, Decimal("175.00"), "payout P")  # at 70,000


def test_fv1_a_payout_takes_the_oldest_sats_first() -> None:
    result = fifo([B, A], [P])
    (r,) = result.realized
    assert (r.sats, r.cost, r.proceeds, r.gain, r.uncovered_sats) == (250_000, Decimal("130.00"),
                                                                      Decimal("175.00"), Decimal("45.00"), 0)
    assert result.remaining == (Lot(date(2026, 1, 20), 50_000, Decimal("30.00"), "invoice B"),)


def test_fv2_january_end_remeasures_to_fair_value() -> None:
    h = holding("92", date(2026, 1, 31), [A, B], [P], Decimal("55000"), "BTCPay store S rate BTC_USD",
                carrying=Decimal("160.00"))
    assert (h.sats, h.cost, h.fair_value, h.unrealized, h.remeasurement) == (
        300_000, Decimal("160.00"), Decimal("165.00"), Decimal("5.00"), Decimal("5.00"))
    assert h.realized == ()  # the payout is in February
    assert remeasurement_lines(h.remeasurement, "92", "95") == [("Debit", "92", Decimal("5.00")),
                                                               ("Credit", "95", Decimal("5.00"))]


def test_fv3_february_end_after_the_payout() -> None:
    carrying = Decimal("160.00") - Decimal("175.00") + Decimal("5.00")  # in − out + January's entry
    h = holding("92", date(2026, 2, 28), [A, B], [P], Decimal("64000"), "BTCPay", carrying=carrying)
    assert (h.sats, h.cost, h.fair_value, h.unrealized) == (50_000, Decimal("30.00"), Decimal("32.00"),
                                                          Decimal("2.00"))
    assert h.remeasurement == Decimal("42.00")
    # January's 5.00 + February's 42.00 = the payout's realized 45.00 + the unrealized 2.00 still held
    assert Decimal("5.00") + h.remeasurement == h.realized[0].gain + h.unrealized


def test_fv4_a_loss_credits_the_bitcoin_account() -> None:
    h = holding("92", date(2026, 1, 31), [A], [], Decimal("40000"), "BTCPay", carrying=Decimal("100.00"))
    assert (h.fair_value, h.unrealized, h.remeasurement) == (Decimal("80.00"), Decimal("-20.00"), Decimal("-20.00"))
    assert remeasurement_lines(h.remeasurement, "92", "95") == [("Debit", "95", Decimal("20.00")),
                                                               ("Credit", "92", Decimal("20.00"))]
    assert remeasurement_lines(Decimal(0), "92", "95") == []


def test_fv5_a_part_of_a_lot_carries_its_share_of_cost_to_the_cent_and_the_rest_stays() -> None:
    lot = Lot(date(2026, 1, 1), 3, Decimal("0.10"), "tiny")
    assert share_of_cost(lot, 1) == Decimal("0.03")
    result = fifo([lot], [Disposal(date(2026, 1, 2), 1, Decimal("0.04"), "out")])
    assert result.remaining[0].cost == Decimal("0.07") and result.realized[0].gain == Decimal("0.01")


def test_fv6_sats_out_before_any_came_in_are_uncovered_at_cost_zero() -> None:
    early = Disposal(date(2026, 1, 1), 1_000, Decimal("0.60"), "payout before the books")
    result = fifo([A], [early])
    assert result.realized[0].uncovered_sats == 1_000 and result.realized[0].cost == 0
    assert result.remaining == (A,)  # A came in later: the payout could not have spent it


def test_fair_value_rounds_half_even_to_the_cent() -> None:
    assert fair_value(1_234, Decimal("50000")) == Decimal("0.62")  # 0.617
    assert fair_value(1, Decimal("50000")) == Decimal("0.00")  # 0.0005
    assert fair_value(10, Decimal("50000")) == Decimal("0.00")  # 0.005: half to the even cent
    assert fair_value(30, Decimal("50000")) == Decimal("0.02")  # 0.015: half to the even cent
    assert fair_value(300, Decimal("50000")) == Decimal("0.15")


_days = st.integers(min_value=0, max_value=60).map(lambda n: date(2026, 1, 1) + timedelta(days=n))
_lots = st.lists(st.builds(Lot, _days, st.integers(1, 10**8),
                           st.integers(0, 10**7).map(lambda c: Decimal(c) / 100), st.text(max_size=3)), max_size=12)
_outs = st.lists(st.builds(Disposal, _days, st.integers(1, 10**8),
                           st.integers(0, 10**7).map(lambda c: Decimal(c) / 100), st.text(max_size=3)), max_size=12)


@given(_lots, _outs)
def test_fifo_conserves_sats_and_cost(lots: list[Lot], outs: list[Disposal]) -> None:
    result = fifo(lots, outs)
    taken = sum(r.sats - r.uncovered_sats for r in result.realized)
    assert result.sats + taken == sum(lot.sats for lot in lots)
    assert result.cost + sum(r.cost for r in result.realized) == sum(lot.cost for lot in lots)
    assert all(lot.sats > 0 and lot.cost >= 0 for lot in result.remaining)
    assert [r.ref for r in result.realized] == [d.ref for d in sorted(outs, key=lambda d: (d.day, d.ref))]


@given(_lots, _outs, st.integers(1, 10**7).map(lambda r: Decimal(r)))
def test_remeasuring_from_cost_recognises_realized_plus_unrealized(lots: list[Lot], outs: list[Disposal],
                                                                   rate: Decimal) -> None:
    """Books carrying what came in less what went out: one remeasurement = every gain, realized or not
    (the uncovered satoshis' proceeds count as gain too, at cost 0)."""
    carrying = sum((lot.cost for lot in lots), Decimal(0)) - sum((d.proceeds for d in outs), Decimal(0))
    h = holding("92", date(2026, 12, 31), lots, outs, rate, "test", carrying)
    assert h.remeasurement == sum((r.gain for r in h.realized), Decimal(0)) + h.unrealized
