"""How the business is doing, worked out from the invoice ledger: pure functions, exact money only.

Two clocks, on purpose (docs/analytics.md): counts and rates (created, conversion, expired, partial,
overpaid, the status distribution) follow the invoices *created* in the period, so a rate compares like
with like; money (volume, sats, average ticket, payment methods, items) follows the invoices *settled* in
the period, the day the money arrived, as the books see it. Days, weeks and months are those of the
report's time zone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]
RATE = Decimal("0.0001")
CENT = Decimal("0.01")
TOP_ITEMS = 10
NO_ITEM = "(no item)"
MARKED = "marked"  # settled by hand in BTCPay, with no payment recorded


@dataclass(frozen=True)
class Invoice:
    store_id: str
    invoice_id: str
    status: str  # BTCPay's: New, Processing, Settled, Expired, Invalid
    additional_status: str  # None, PaidPartial, PaidOver, PaidLate, Marked, Invalid
    currency: str
    amount: Decimal | None  # the price; None for a top-up
    paid: Decimal | None  # net paid in the invoice currency, when BTCPay says
    created_at: int
    settled_at: int | None  # when the money arrived (the last accounted payment)
    item: str | None = None


@dataclass(frozen=True)
class Payment:
    store_id: str
    invoice_id: str
    method: str  # onchain, lightning, lnurl, or BTCPay's own name for any other (CASHU, ...)
    sats: int | None  # BTC payments only
    value: Decimal | None  # in the invoice currency, at the payment method's rate


@dataclass(frozen=True)
class Refund:
    currency: str
    amount: Decimal
    at: int


@dataclass(frozen=True)
class Payout:
    sats: int | None
    at: int


@dataclass
class Bucket:
    period: str
    created: int = 0
    settled: int = 0
    volume: Decimal = Decimal(0)
    sats: int = 0


@dataclass
class MethodShare:
    method: str
    payments: int = 0
    invoices: int = 0
    sats: int = 0
    volume: Decimal = Decimal(0)


@dataclass
class ItemShare:
    item: str
    invoices: int = 0
    volume: Decimal = Decimal(0)


@dataclass
class Report:
    date_from: date
    date_to: date
    by: Period
    tz: str
    currency: str  # the currency volumes, the average ticket and the series are in
    created: int = 0
    converted: int = 0  # of those created, how many are settled now
    settled: int = 0
    expired: int = 0
    invalid: int = 0
    partial: int = 0
    overpaid: int = 0
    volume: Decimal = Decimal(0)
    volume_sats: int = 0
    volume_by_currency: dict[str, Decimal] = field(default_factory=dict)
    refunds: int = 0
    refunded: dict[str, Decimal] = field(default_factory=dict)
    payouts: int = 0
    paid_out_sats: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    methods: list[MethodShare] = field(default_factory=list)
    items: list[ItemShare] = field(default_factory=list)
    series: list[Bucket] = field(default_factory=list)

    @property
    def average_ticket(self) -> Decimal:
        return (self.volume / self.settled).quantize(CENT, ROUND_HALF_EVEN) if self.settled else Decimal(0)

    def rate(self, count: int) -> Decimal:
        """`count` over the invoices created in the period, to four places (0.1234 = 12.34 %)."""
        return (Decimal(count) / self.created).quantize(RATE, ROUND_HALF_EVEN) if self.created else Decimal(0)


def bounds(date_from: date, date_to: date, tz: ZoneInfo) -> tuple[int, int]:
    """Unix seconds [start, end) of the whole days from `date_from` to `date_to` in `tz`."""
    start = datetime.combine(date_from, datetime.min.time(), tz)
    end = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), tz)
    return int(start.timestamp()), int(end.timestamp())


def label(day: date, by: Period) -> str:
    """The bucket a day falls in: '2026-12-03', ISO week '2026-W49', or '2026-12'."""
    if by == "day":
        return day.isoformat()
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def period_of(at: int, by: Period, tz: ZoneInfo) -> str:
    return label(datetime.fromtimestamp(at, tz).date(), by)


def periods(date_from: date, date_to: date, by: Period) -> list[str]:
    """Every bucket of the range, in order, so empty days still appear in a chart."""
    days = (date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1))
    return list(dict.fromkeys(label(day, by) for day in days))


def main_currency(invoices: Iterable[Invoice]) -> str | None:
    """The currency most settled invoices are in (ties: alphabetical), None when nothing settled."""
    counts = Counter(i.currency for i in invoices if i.status == "Settled")
    if not counts:
        return None
    return min(counts, key=lambda c: (-counts[c], c))


def takings(invoice: Invoice) -> Decimal:
    """What a settled invoice brought in, in its currency: what was paid net, else its price."""
    if invoice.paid is not None and invoice.paid > 0:
        return invoice.paid
    return invoice.amount or Decimal(0)


def _bucket(series: dict[str, Bucket], period: str) -> Bucket:
    if period not in series:  # a moment outside the range's days (a time-zone edge): keep it visible
        series[period] = Bucket(period)
    return series[period]


def summarize(
    invoices: Sequence[Invoice],
    payments: Sequence[Payment],
    refunds: Sequence[Refund],
    payouts: Sequence[Payout],
    *,
    date_from: date,
    date_to: date,
    by: Period = "day",
    tz: str = "UTC",
    currency: str | None = None,
) -> Report:
    """The report for the period. `invoices` may include any invoice; each is counted by the clock its
    figure follows (see the module docstring). With `currency` given, only that currency's invoices count."""
    zone = ZoneInfo(tz)
    start, end = bounds(date_from, date_to, zone)
    if currency is not None:
        invoices = [i for i in invoices if i.currency == currency]
    in_range = [i for i in invoices if start <= i.created_at < end]
    settled = [i for i in invoices if i.status == "Settled" and start <= (i.settled_at or i.created_at) < end]
    main = currency or main_currency(settled) or main_currency(invoices) or "USD"
    report = Report(date_from, date_to, by, tz, main)
    series = {p: Bucket(p) for p in periods(date_from, date_to, by)}

    for inv in in_range:
        report.created += 1
        report.statuses[inv.status] = report.statuses.get(inv.status, 0) + 1
        report.converted += inv.status == "Settled"
        report.expired += inv.status == "Expired"
        report.invalid += inv.status == "Invalid"
        report.partial += inv.additional_status == "PaidPartial"
        report.overpaid += inv.additional_status == "PaidOver"
        _bucket(series, period_of(inv.created_at, by, zone)).created += 1

    by_invoice: dict[tuple[str, str], list[Payment]] = defaultdict(list)
    for p in payments:
        by_invoice[(p.store_id, p.invoice_id)].append(p)
    methods: dict[str, MethodShare] = {}
    items: dict[str, ItemShare] = {}
    for inv in settled:
        taken = takings(inv)
        report.volume_by_currency[inv.currency] = report.volume_by_currency.get(inv.currency, Decimal(0)) + taken
        paid_with = by_invoice.get((inv.store_id, inv.invoice_id), [])
        sats = sum(p.sats or 0 for p in paid_with)
        if inv.currency != main:
            continue
        bucket = _bucket(series, period_of(inv.settled_at or inv.created_at, by, zone))
        report.settled += 1
        report.volume += taken
        report.volume_sats += sats
        bucket.settled += 1
        bucket.volume += taken
        bucket.sats += sats
        if not paid_with:  # marked settled by the merchant (paid outside BTCPay): its own line, so the split adds up
            marked = methods.setdefault(MARKED, MethodShare(MARKED))
            marked.invoices += 1
            marked.volume += taken
        for name in sorted({p.method for p in paid_with}):
            methods.setdefault(name, MethodShare(name)).invoices += 1
        for p in paid_with:
            share = methods.setdefault(p.method, MethodShare(p.method))
            share.payments += 1
            share.sats += p.sats or 0
            share.volume += p.value or Decimal(0)
        item = items.setdefault(inv.item or NO_ITEM, ItemShare(inv.item or NO_ITEM))
        item.invoices += 1
        item.volume += taken

    for r in refunds:
        if start <= r.at < end and (currency is None or r.currency in (currency, "BTC")):
            report.refunds += 1
            report.refunded[r.currency] = report.refunded.get(r.currency, Decimal(0)) + r.amount
    for po in payouts:
        if start <= po.at < end:
            report.payouts += 1
            report.paid_out_sats += po.sats or 0

    report.methods = sorted(methods.values(), key=lambda m: (-m.volume, -m.payments, m.method))
    report.items = sorted(items.values(), key=lambda i: (-i.volume, -i.invoices, i.item))[:TOP_ITEMS]
    report.series = [series[p] for p in sorted(series)]
    return report
