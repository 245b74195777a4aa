"""Fair value of the bitcoin held (US GAAP ASU 2023-08): pure rules, worked through in docs/accounting.md
"Fair value of the bitcoin held" with the same numbers as tests/books/test_rules.py.

Since fiscal years from 2025, crypto held is measured at fair value at each reporting date and the change
goes through net income. sovterm knows from its own ledger, per bitcoin asset account, which satoshis came
in and what fiat was booked for them (the *lots*), and which left and at what book value (the
*disposals*). From those and the store's BTCPay rate on the reporting date:

- **FIFO**: a disposal takes the oldest satoshis first; its cost is the cost of the satoshis it took (a
  part of a lot carries its share of the lot's cost, rounded to the cent, the rest staying with the lot,
  so cost is conserved to the cent); its realized gain is its proceeds less that cost;
- **fair value** = satoshis × rate, to the cent; **unrealized gain** = fair value − cost of what is left;
- **remeasurement** = fair value − carrying amount, where the carrying amount is what the books hold in
  the account (fiat booked in, less fiat booked out, plus earlier remeasurements). Posting it brings the
  account to fair value; the next one starts from there.

Money is `Decimal` fiat and `int` satoshis; never a float.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
SATS_PER_BTC = 100_000_000


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Lot:
    """Satoshis that came into the account together, and the fiat booked for them."""

    day: date
    sats: int
    cost: Decimal
    ref: str  # the invoice (or wallet transaction) they came from


@dataclass(frozen=True)
class Disposal:
    """Satoshis that left the account, and the fiat booked for them leaving (the proceeds)."""

    day: date
    sats: int
    proceeds: Decimal
    ref: str  # the payout, refund or wallet transaction


@dataclass(frozen=True)
class Realized:
    ref: str
    day: date
    sats: int
    proceeds: Decimal
    cost: Decimal
    uncovered_sats: int = 0  # satoshis that left with no lot left to take them from (cost 0)

    @property
    def gain(self) -> Decimal:
        return self.proceeds - self.cost


@dataclass(frozen=True)
class FifoResult:
    remaining: tuple[Lot, ...]
    realized: tuple[Realized, ...]

    @property
    def sats(self) -> int:
        return sum(lot.sats for lot in self.remaining)

    @property
    def cost(self) -> Decimal:
        return sum((lot.cost for lot in self.remaining), Decimal(0))


def share_of_cost(lot: Lot, sats: int) -> Decimal:
    """The cost of `sats` of a lot: its share, to the cent (all of it when the whole lot goes)."""
    if sats >= lot.sats:
        return lot.cost
    return cents(lot.cost * sats / lot.sats)


def fifo(lots: list[Lot] | tuple[Lot, ...], disposals: list[Disposal] | tuple[Disposal, ...]) -> FifoResult:
    """Match disposals to lots first in, first out, both in date order. A disposal takes only from lots
    that came in by its day (a lot and a disposal of the same day: the lot first, the satoshis had to come
    in to leave); what it cannot cover is `uncovered_sats` at cost 0."""
    queue: deque[Lot] = deque(sorted(lots, key=lambda lot: (lot.day, lot.ref)))
    realized: list[Realized] = []
    for d in sorted(disposals, key=lambda d: (d.day, d.ref)):
        need, cost = d.sats, Decimal(0)
        while need > 0 and queue and queue[0].day <= d.day:
            lot = queue[0]
            take = min(need, lot.sats)
            part = share_of_cost(lot, take)
            cost += part
            need -= take
            if take == lot.sats:
                queue.popleft()
            else:
                queue[0] = replace(lot, sats=lot.sats - take, cost=lot.cost - part)
        realized.append(Realized(d.ref, d.day, d.sats, d.proceeds, cost, uncovered_sats=need))
    return FifoResult(tuple(queue), tuple(realized))


def fair_value(sats: int, rate: Decimal) -> Decimal:
    """Satoshis at `rate` (fiat per BTC), to the cent."""
    return cents(Decimal(sats) * rate / SATS_PER_BTC)


@dataclass(frozen=True)
class Holding:
    """One bitcoin account on a reporting date."""

    account_id: str
    as_of: date
    sats: int
    cost: Decimal  # FIFO cost of the satoshis still held
    rate: Decimal
    rate_source: str
    carrying: Decimal  # what the books hold in the account (booked in − booked out + remeasurements)
    realized: tuple[Realized, ...]

    @property
    def fair_value(self) -> Decimal:
        return fair_value(self.sats, self.rate)

    @property
    def unrealized(self) -> Decimal:
        """Gain (+) or loss (−) against cost."""
        return self.fair_value - self.cost

    @property
    def remeasurement(self) -> Decimal:
        """What a JournalEntry must move for the books to show fair value: + debit the account."""
        return self.fair_value - self.carrying


def holding(account_id: str, as_of: date, lots: list[Lot], disposals: list[Disposal], rate: Decimal,
            rate_source: str, carrying: Decimal) -> Holding:
    """The account on `as_of` from what came in and left by then."""
    result = fifo([lot for lot in lots if lot.day <= as_of], [d for d in disposals if d.day <= as_of])
    return Holding(account_id, as_of, result.sats, result.cost, rate, rate_source, carrying, result.realized)


def remeasurement_lines(amount: Decimal, asset_account: str, gain_account: str) -> list[tuple[str, str, Decimal]]:
    """The JournalEntry's two lines (posting type, account, amount): a gain debits the bitcoin account and
    credits the gain/loss account; a loss the other way round. Debits equal credits."""
    if amount == 0:
        return []
    value = abs(amount)
    if amount > 0:
        return [("Debit", asset_account, value), ("Credit", gain_account, value)]
    return [("Debit", gain_account, value), ("Credit", asset_account, value)]
