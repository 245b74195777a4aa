"""The books part in the daemon: the fair value of the bitcoin held (docs/accounting.md "Fair value of the
bitcoin held"). Its service records each store's BTCPay rate every day (`books.rates` loop), and posts the
remeasurement JournalEntries on demand (`books.remeasure`) or after each month's end when
`[books] remeasure_month_end` is on (`books.month_end` loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from sovterm.books.service import BooksService, parse_day
from sovterm.btcpay import ledger as btcpay_ledger
from sovterm.btcpay.errors import BTCPayError
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.qbo.client import QBOClient
from sovterm.services import Services

MONTH_END_CHECK_S = 6 * 3600  # the month-end loop looks every six hours; posting is once per period


class StoreRates:
    """Each followed store's BTC rate from BTCPay (`GET /api/v1/stores/{id}/rates`, the store's rate rules)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def stores(self) -> list[str]:
        return await btcpay_ledger.selected_stores(self._services.require_db())

    async def rate(self, store_id: str, currency: str) -> tuple[Decimal, str]:
        btcpay = self._services.btcpay
        if btcpay is None:
            raise UserFacingError("BTCPay is not connected")
        pair = f"BTC_{currency.upper()}"
        try:
            rates = await btcpay.client_for_store(store_id).get_store_rates(store_id, [pair])
        except BTCPayError as exc:
            raise UserFacingError(f"BTCPay did not give the {pair} rate: {exc}") from exc
        found = next((r for r in rates if r.currency_pair.upper() == pair), None)
        if found is None or found.rate is None:
            why = "; ".join(found.errors or []) if found is not None else "not in the answer"
            raise UserFacingError(f"BTCPay has no {pair} rate for store {store_id}: {why}",
                                  fix="check the store's rate settings in BTCPay (Store > Rates)")
        return found.rate, f"BTCPay store {store_id} rate {pair}"


class QuickBooks:
    def __init__(self, services: Services) -> None:
        self._services = services

    def _qbo(self) -> Any:
        if self._services.qbo is None:
            raise UserFacingError("the QuickBooks part is not running")
        return self._services.qbo

    async def client(self) -> QBOClient:
        return await self._qbo().client()

    async def home_currency(self) -> str:
        return (await self._qbo().currency_context()).home


@asynccontextmanager
async def books_stage(services: Services) -> AsyncIterator[None]:
    services.books = BooksService(services.require_db(), StoreRates(services), QuickBooks(services))
    try:
        yield
    finally:
        services.books = None


def books_loops(services: Services) -> list[LoopSpec]:
    async def rates() -> dict[str, Any]:
        assert services.books is not None
        if services.btcpay is None or services.qbo is None or not (await services.qbo.can_sync())[0]:
            return {"skipped": "BTCPay and QuickBooks must both be connected"}
        return await services.books.record_rates()

    loops = [LoopSpec("books.rates", services.settings.books.rates_interval_s, rates, first_delay_s=5.0)]
    if services.settings.books.remeasure_month_end:
        async def month_end() -> dict[str, Any]:
            assert services.books is not None
            if services.qbo is None or not (await services.qbo.can_sync())[0]:
                return {"skipped": "QuickBooks cannot be written to"}
            done = await services.books.month_end()
            return {"as_of": done["as_of"], "posted": sum(e["state"] == "posted" for e in done["entries"])}

        loops.append(LoopSpec("books.month_end", MONTH_END_CHECK_S, month_end, first_delay_s=30.0))
    return loops


class AsOfParams(BaseModel):
    as_of: str | None = None  # YYYY-MM-DD; None: today (UTC)


class AccountParams(BaseModel):
    account: str = Field(min_length=1, max_length=100)


class Realized(Result):
    ref: str
    day: str
    sats: int
    proceeds: str
    cost: str
    gain: str
    uncovered_sats: int  # left with no lot to take them from (counted at cost 0)


class Holding(Result):
    """One bitcoin account on the date: exact decimals as strings, in the home currency."""

    account_id: str
    account: str | None
    stores: list[str]
    as_of: str
    currency: str
    sats: int
    cost: str  # FIFO cost of the satoshis still held
    rate: str
    rate_day: str
    rate_source: str
    fair_value: str
    unrealized: str  # fair value − cost
    carrying: str  # what the books hold in the account
    remeasurement: str  # fair value − carrying: what the period's JournalEntry moves
    remeasured: dict[str, Any] | None  # {"status", "qbo_id"} when the period's entry exists
    realized: list[Realized]
    notes: list[str]


class Entry(Result):
    account_id: str
    period: str
    state: str  # posted | already posted | nothing to post | later period YYYY-MM-DD already remeasured
    qbo_id: str | None
    amount: str


class Remeasured(Result):
    as_of: str
    gain_account_id: str
    entries: list[Entry]


class GainAccount(Result):
    id: str
    name: str | None
    type: str | None
    by: str


def register(server: ControlServer, services: Services) -> None:
    def day(ctx: CallContext, as_of: str | None) -> Any:
        return parse_day(as_of) if as_of else ctx.part.today()

    @server.method("books.holdings", role=Role.VIEWER, params=AsOfParams, part="books")
    async def holdings(ctx: CallContext, as_of: str | None) -> list[Holding]:
        """Per bitcoin account on a date: sats, FIFO cost, fair value at the store's BTCPay rate, unrealized
        gain/loss, what the books carry, the remeasurement due, and the payouts' realized gains (FIFO)."""
        return [Holding.model_validate(h) for h in await ctx.part.holdings(day(ctx, as_of))]

    @server.method("books.remeasure", role=Role.ADMIN, params=AsOfParams, part="books", audit="books.remeasure")
    async def remeasure(ctx: CallContext, as_of: str | None) -> Remeasured:
        """Post one JournalEntry per bitcoin account for the period ending on the date, to the gain/loss
        account, once (a second call posts nothing)."""
        when = day(ctx, as_of)
        ctx.audit(subject=when.isoformat())
        result = await ctx.part.remeasure(when, ctx.peer.user)
        ctx.audit(subject=when.isoformat(), detail={"entries": [
            {k: e[k] for k in ("account_id", "state", "qbo_id", "amount")} for e in result["entries"]]})
        return Remeasured.model_validate(result)

    @server.method("books.account", role=Role.ADMIN, params=AccountParams, part="books", audit="books.account")
    async def account(ctx: CallContext, account: str) -> GainAccount:
        """Map the "unrealized gain/loss on bitcoin" account (an income or expense account, name or Id)."""
        ctx.audit(subject=account)
        return GainAccount.model_validate(await ctx.part.map_gain_account(account, ctx.peer.user))


PART = Part("books", stage=books_stage, loops=books_loops, methods=register)
