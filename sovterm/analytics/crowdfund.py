"""A BTCPay Crowdfund campaign's progress, counted the way BTCPay counts it, from sovterm's ledger.

BTCPay's own rules (BTCPayServer `CrowdfundAppType.GetInfo` and `InvoiceRepository.
GetContributionsByPaymentMethodId`, read in its public source; docs/analytics.md):
- the campaign's invoices are those created since the last reset (a campaign with a start date can reset
  every N hours, days, months or years), and only those in the target currency count toward the goal;
- with "enforce target amount" (a hard cap) a New invoice counts at its price, as pending;
- an invoice marked settled with no payment counts at its price; one marked invalid counts nothing;
- otherwise each payment counts its net value in the invoice currency, if it arrived before the invoice
  expired (or the invoice was marked settled): a Settled payment as raised, a Processing one as pending;
- contributors are the paid invoices (Processing or Settled); perks sold are those invoices by item code.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

ResetEvery = Literal["Never", "Hour", "Day", "Month", "Year"]
PAID = ("Processing", "Settled")


@dataclass(frozen=True)
class Campaign:
    app_id: str
    store_id: str
    title: str
    target_currency: str
    target_amount: Decimal | None
    enforce_target_amount: bool = False
    start_date: int | None = None
    end_date: int | None = None
    reset_every: ResetEvery = "Never"
    reset_every_amount: int = 1
    perks: tuple[tuple[str, str], ...] = ()  # (id, title)


@dataclass(frozen=True)
class ContributionPayment:
    status: str  # Settled, Processing, Invalid
    received_at: int | None
    value: Decimal  # net, in the invoice currency


@dataclass(frozen=True)
class Contribution:
    invoice_id: str
    status: str
    additional_status: str
    currency: str
    price: Decimal | None
    created_at: int
    expires_at: int | None
    item_code: str | None
    paid: Decimal | None  # BTCPay's net paid in the invoice currency
    payments: tuple[ContributionPayment, ...] = ()


@dataclass
class Progress:
    raised: Decimal = Decimal(0)
    pending: Decimal = Decimal(0)
    contributors: int = 0
    perks: dict[str, int] = field(default_factory=dict)
    daily: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # day -> (contributions, amount)
    last_reset: int | None = None
    next_reset: int | None = None

    def percent(self, target: Decimal | None, amount: Decimal) -> Decimal | None:
        if not target:
            return None
        return (amount / target * 100).quantize(Decimal("0.01"))


def _add(moment: datetime, every: ResetEvery, amount: int) -> datetime:
    if every == "Hour":
        return moment + timedelta(hours=amount)
    if every == "Day":
        return moment + timedelta(days=amount)
    months = amount if every == "Month" else 12 * amount
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])  # .NET AddMonths clamps the day the same way
    return moment.replace(year=year, month=month, day=day)


def reset_window(campaign: Campaign, now: int) -> tuple[int | None, int | None]:
    """(last reset, next reset) in unix seconds, or (None, None) for a campaign that never resets."""
    if campaign.reset_every == "Never" or campaign.start_date is None or campaign.reset_every_amount < 1:
        return None, None
    last = nxt = datetime.fromtimestamp(campaign.start_date, UTC)
    current = datetime.fromtimestamp(now, UTC)
    while current >= nxt:
        last, nxt = nxt, _add(nxt, campaign.reset_every, campaign.reset_every_amount)
    return int(last.timestamp()), int(nxt.timestamp())


def progress(campaign: Campaign, contributions: Sequence[Contribution], now: int) -> Progress:
    last_reset, next_reset = reset_window(campaign, now)
    out = Progress(last_reset=last_reset, next_reset=next_reset)
    perks: Counter[str] = Counter()
    softcap = not campaign.enforce_target_amount
    for c in contributions:
        if last_reset is not None and c.created_at < last_reset:
            continue
        if c.status in PAID:
            out.contributors += 1
            if c.item_code:
                perks[c.item_code] += 1
            day = datetime.fromtimestamp(c.created_at, UTC).date().isoformat()
            count, amount = out.daily.get(day, (0, Decimal(0)))
            out.daily[day] = (count + 1, amount + (c.paid or Decimal(0)))
        if c.currency.upper() != campaign.target_currency.upper():
            continue
        marked_settled = c.status == "Settled" and c.additional_status == "Marked"
        if not softcap and c.status == "New":
            out.pending += c.price or Decimal(0)
        elif not c.payments and marked_settled:
            out.raised += c.price or Decimal(0)
        elif c.status == "Invalid" and c.additional_status == "Marked":
            continue
        else:
            for p in c.payments:
                in_time = c.expires_at is None or p.received_at is None or p.received_at <= c.expires_at
                if not (in_time or marked_settled):
                    continue
                if p.status == "Settled":
                    out.raised += p.value
                elif p.status == "Processing":
                    out.pending += p.value
    out.perks = dict(sorted(perks.items(), key=lambda kv: (-kv[1], kv[0])))
    out.daily = dict(sorted(out.daily.items()))
    return out
