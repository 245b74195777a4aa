"""A campaign's progress counted as BTCPay counts it (sovterm/analytics/crowdfund.py names the source):
soft and hard caps, marked invoices, payments after expiry, resets, contributors and perks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sovterm.analytics.crowdfund import Campaign, Contribution, ContributionPayment, progress, reset_window

D = Decimal


def ts(y: int, m: int, d: int, h: int = 0) -> int:
    return int(datetime(y, m, d, h, tzinfo=UTC).timestamp())


NOW = ts(2026, 12, 3, 12)
ROASTER = Campaign("app1", "S", "New roaster", "USD", D("1000"), perks=(("mug", "Mug"), ("bag", "1kg bag")))


def settled(iid: str, value: str, *, perk: str | None = None, created: int = NOW - 3600, currency: str = "USD",
            status: str = "Settled", pay: str = "Settled", late: bool = False) -> Contribution:
    expires = created + 900
    received = expires + 60 if late else created + 60
    return Contribution(iid, status, "PaidLate" if late else "None", currency, D(value), created, expires, perk,
                        D(value), (ContributionPayment(pay, received, D(value)),))


CONTRIBUTIONS = [
    settled("a", "25.00", perk="mug"),
    settled("b", "40.00", perk="bag"),
    settled("c", "10.00", status="Processing", pay="Processing"),
    settled("late", "15.00", late=True),  # paid after it expired: BTCPay leaves it out of the total
    settled("eur", "99.00", currency="EUR", perk="mug"),  # another currency: a contributor, not toward the goal
    Contribution("cash", "Settled", "Marked", "USD", D("50.00"), NOW - 7200, NOW - 6300, None, D("0")),
    Contribution("void", "Invalid", "Marked", "USD", D("70.00"), NOW - 7200, NOW - 6300, None, D("70.00"),
                 (ContributionPayment("Settled", NOW - 7100, D("70.00")),)),
    Contribution("open", "New", "None", "USD", D("30.00"), NOW - 60, NOW + 840, None, None),
]


def test_a_soft_cap_counts_payments_made_in_time_and_marked_invoices_at_their_price() -> None:
    p = progress(ROASTER, CONTRIBUTIONS, NOW)
    assert p.raised == D("115.00")  # a 25 + b 40 + cash 50 (marked settled, no payment)
    assert p.pending == D("10.00")  # c, processing; the New invoice counts nothing under a soft cap
    assert p.percent(ROASTER.target_amount, p.raised) == D("11.50")
    assert p.contributors == 6  # a, b, c, late, eur, cash: every Processing or Settled invoice
    assert p.perks == {"mug": 2, "bag": 1}


def test_a_hard_cap_reserves_the_price_of_open_invoices() -> None:
    hard = Campaign("app1", "S", "New roaster", "USD", D("1000"), enforce_target_amount=True)
    p = progress(hard, CONTRIBUTIONS, NOW)
    assert (p.raised, p.pending) == (D("115.00"), D("40.00"))  # pending: c 10 + the New invoice's 30


def test_a_campaign_that_resets_counts_only_since_the_last_reset() -> None:
    monthly = Campaign("m", "S", "Monthly", "USD", D("100"), start_date=ts(2026, 1, 31), reset_every="Month")
    assert reset_window(monthly, NOW) == (ts(2026, 11, 28), ts(2026, 12, 28))  # 31 Jan + n months, day clamped
    before = settled("nov", "20.00", created=ts(2026, 11, 20))
    after = settled("dec", "30.00", created=ts(2026, 12, 1))
    assert progress(monthly, [before, after], NOW).raised == D("30.00")
    assert reset_window(Campaign("n", "S", "t", "USD", None), NOW) == (None, None)


def test_contributions_per_day_and_no_goal() -> None:
    open_ended = Campaign("o", "S", "Tips", "USD", None)
    p = progress(open_ended, [settled("x", "5.00", created=ts(2026, 12, 1, 9)),
                              settled("y", "7.50", created=ts(2026, 12, 1, 18))], NOW)
    assert p.daily == {"2026-12-01": (2, D("12.50"))}
    assert p.percent(open_ended.target_amount, p.raised) is None
