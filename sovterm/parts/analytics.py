"""Control methods `analytics.*` and `crowdfund.*`, and the analytics part: how the business is doing and how
its Crowdfund campaigns stand, from the ledger (the campaigns' settings and invoice lists re-read from BTCPay
by the `analytics.crowdfund` loop)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from sovterm.analytics import aggregates, campaign_books
from sovterm.analytics.campaigns import Campaigns
from sovterm.analytics.crowdfund import Campaign, Progress
from sovterm.analytics.report import Report
from sovterm.analytics.service import Analytics
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.store.db import Database
from sovterm.tasks import Background

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366  # a report reads every invoice of its range: bound what one call may ask for


class ReportParams(BaseModel):
    model_config = {"extra": "forbid"}

    store_id: str | None = Field(default=None, max_length=64)
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    by: Literal["day", "week", "month"] = "day"
    tz: str | None = Field(default=None, max_length=64)  # default: the `analytics.timezone` setting
    currency: str | None = Field(default=None, min_length=3, max_length=12)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'") from None
        return value

    @model_validator(mode="after")
    def _range(self) -> Self:
        to = self.date_to or date.today()
        start = self.date_from or to - timedelta(days=DEFAULT_DAYS - 1)
        if start > to:
            raise ValueError(f"'from' ({start}) is after 'to' ({to})")
        if (to - start).days >= MAX_DAYS:
            raise ValueError(f"a report covers at most {MAX_DAYS} days; narrow 'from' and 'to'")
        self.date_from, self.date_to = start, to
        return self


class Kpis(Result):
    created: int
    settled: int
    conversion: str  # settled / created, to four places
    expired: int
    expired_rate: str
    invalid: int
    partial: int
    partial_rate: str
    overpaid: int
    overpaid_rate: str
    volume: str  # exact decimal in `currency`
    volume_sats: int
    average_ticket: str
    volume_by_currency: dict[str, str]  # every currency settled in the period
    refunds: int
    refunded: dict[str, str]  # currency -> exact decimal
    payouts: int
    paid_out_sats: int


class MethodRow(Result):
    method: str
    payments: int
    invoices: int
    sats: int
    volume: str


class TopItem(Result):
    item: str
    invoices: int
    volume: str


class SeriesRow(Result):
    period: str
    created: int
    settled: int
    volume: str
    sats: int


class AnalyticsReport(Result):
    model_config = {"serialize_by_alias": True, "validate_by_name": True}

    date_from: str = Field(alias="from")
    date_to: str = Field(alias="to")
    by: str
    tz: str
    store_id: str | None
    currency: str
    kpis: Kpis
    statuses: dict[str, int]
    methods: list[MethodRow]
    items: list[TopItem]
    series: list[SeriesRow]


def _money(value: object) -> str:
    return f"{value:.2f}"


def answer(report: Report, store_id: str | None) -> AnalyticsReport:
    return AnalyticsReport(
        date_from=report.date_from.isoformat(), date_to=report.date_to.isoformat(), by=report.by, tz=report.tz,
        store_id=store_id, currency=report.currency,
        kpis=Kpis(
            created=report.created, settled=report.settled, conversion=str(report.rate(report.converted)),
            expired=report.expired, expired_rate=str(report.rate(report.expired)), invalid=report.invalid,
            partial=report.partial, partial_rate=str(report.rate(report.partial)),
            overpaid=report.overpaid, overpaid_rate=str(report.rate(report.overpaid)),
            volume=_money(report.volume), volume_sats=report.volume_sats,
            average_ticket=_money(report.average_ticket),
            volume_by_currency={c: str(v) for c, v in sorted(report.volume_by_currency.items())},
            refunds=report.refunds, refunded={c: str(v) for c, v in sorted(report.refunded.items())},
            payouts=report.payouts, paid_out_sats=report.paid_out_sats,
        ),
        statuses=dict(sorted(report.statuses.items())),
        methods=[MethodRow(method=m.method, payments=m.payments, invoices=m.invoices, sats=m.sats,
                           volume=_money(m.volume)) for m in report.methods],
        items=[TopItem(item=i.item, invoices=i.invoices, volume=_money(i.volume)) for i in report.items],
        series=[SeriesRow(period=b.period, created=b.created, settled=b.settled, volume=_money(b.volume),
                          sats=b.sats) for b in report.series],
    )


class StoreChoice(Result):
    store_id: str
    name: str


class AppParams(BaseModel):
    model_config = {"extra": "forbid"}

    app_id: str = Field(min_length=1, max_length=64)


class PerkSold(Result):
    perk: str
    title: str
    sold: int


class DayContributions(Result):
    day: str
    contributions: int
    amount: str


class CampaignSummary(Result):
    """A Crowdfund campaign as BTCPay counts it: raised (settled payments), pending (processing ones, and
    New invoices under a hard cap), in the target currency."""

    app_id: str
    store_id: str
    title: str
    target_currency: str
    target_amount: str | None
    raised: str
    pending: str
    percent: str | None  # raised / target, to two places
    pending_percent: str | None
    contributors: int
    start_date: str | None
    end_date: str | None
    reset_every: str
    last_reset: str | None
    next_reset: str | None


class CampaignDetail(CampaignSummary):
    perks: list[PerkSold]
    daily: list[DayContributions]
    books: dict[str, str] | None = None  # its own income account, item and class; None: the store's mapping


class BooksParams(AppParams):
    income: str | None = Field(default=None, min_length=1, max_length=100)  # NAME|ID; required unless clear
    class_name: str | None = Field(default=None, min_length=1, max_length=100)
    item: str | None = Field(default=None, min_length=1, max_length=100)
    clear: bool = False

    @model_validator(mode="after")
    def _income_or_clear(self) -> Self:
        if self.clear == (self.income is not None):
            raise ValueError("give the income account (--income NAME|ID), or --clear to follow the store's mapping")
        return self


class CrowdfundBooks(Result):
    app_id: str
    store_id: str | None
    income_account_id: str | None  # None: the store's mapping
    item_id: str | None
    class_id: str | None
    names: dict[str, str]


class CrowdfundRefresh(Result):
    apps: int
    new_invoices: int
    errors: dict[str, str]


def _day(at: int | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _summary(campaign: Campaign, p: Progress) -> dict[str, object]:
    target = campaign.target_amount
    return dict(
        app_id=campaign.app_id, store_id=campaign.store_id, title=campaign.title,
        target_currency=campaign.target_currency, target_amount=None if target is None else _money(target),
        raised=_money(p.raised), pending=_money(p.pending),
        percent=None if target is None else str(p.percent(target, p.raised)),
        pending_percent=None if target is None else str(p.percent(target, p.pending)),
        contributors=p.contributors, start_date=_day(campaign.start_date), end_date=_day(campaign.end_date),
        reset_every=campaign.reset_every, last_reset=_day(p.last_reset), next_reset=_day(p.next_reset),
    )


def detail(campaign: Campaign, p: Progress) -> CampaignDetail:
    titles = dict(campaign.perks)
    return CampaignDetail(
        **_summary(campaign, p),
        perks=[PerkSold(perk=code, title=titles.get(code, code), sold=n) for code, n in p.perks.items()],
        daily=[DayContributions(day=d, contributions=n, amount=_money(a)) for d, (n, a) in p.daily.items()],
    )


def register(server: ControlServer, services: Services) -> None:
    @server.method("analytics.report", role=Role.VIEWER, params=ReportParams, part="analytics")
    async def report(ctx: CallContext, store_id: str | None, date_from: date, date_to: date, by: str,
                     tz: str | None, currency: str | None) -> AnalyticsReport:
        """How one store or all did in a period (default: the last 30 days): KPIs and a series.

        Counts and rates follow the invoices created in the period; money follows those settled in it."""
        found = await ctx.part.report(date_from, date_to, store_id=store_id, by=by, tz=tz, currency=currency)
        return answer(found, store_id)

    @server.method("analytics.stores", role=Role.VIEWER, part="analytics")
    async def stores(ctx: CallContext) -> list[StoreChoice]:
        """The followed stores a report can be limited to."""
        return [StoreChoice.model_validate(s) for s in await ctx.part.stores()]

    @server.method("crowdfund.list", role=Role.VIEWER, part="crowdfund")
    async def crowdfund_list(ctx: CallContext) -> list[CampaignSummary]:
        """The followed stores' Crowdfund campaigns: goal, raised, pending, contributors, dates."""
        return [CampaignSummary.model_validate(_summary(c, p)) for c, p in await ctx.part.campaigns()]

    @server.method("crowdfund.show", role=Role.VIEWER, params=AppParams, part="crowdfund")
    async def crowdfund_show(ctx: CallContext, app_id: str) -> CampaignDetail:
        """One campaign with its perks sold, contributions per day and where its contributions are booked."""
        shown = detail(*await ctx.part.campaign(app_id))
        shown.books = await campaign_books.books_names(services.require_db(), app_id)
        return shown

    @server.method("crowdfund.books", role=Role.ADMIN, params=BooksParams, part="qbo", audit="crowdfund.books")
    async def crowdfund_books(ctx: CallContext, app_id: str, income: str | None, class_name: str | None,
                              item: str | None, clear: bool) -> CrowdfundBooks:
        """The income account (and class) one Crowdfund app's contributions post to, over the store's mapping;
        checked like an account mapping. `clear`: back to the store's."""
        ctx.audit(subject=app_id, detail={"income": income, "class": class_name, "item": item, "clear": clear})
        db = services.require_db()
        if clear:
            await campaign_books.clear_books(db, app_id)
            return CrowdfundBooks(app_id=app_id, store_id=None, income_account_id=None, item_id=None, class_id=None,
                                  names={})
        assert income is not None
        books = await campaign_books.set_books(db, ctx.part, app_id, income=income, class_name=class_name, item=item)
        return CrowdfundBooks(app_id=app_id, store_id=books.store_id, income_account_id=books.income_account_id,
                              item_id=books.item_id, class_id=books.class_id, names=books.names)

    @server.method("crowdfund.refresh", role=Role.ADMIN, part="crowdfund")
    async def crowdfund_refresh(ctx: CallContext) -> CrowdfundRefresh:
        """Re-read the Crowdfund apps and their invoice lists from BTCPay now."""
        return CrowdfundRefresh.model_validate(await ctx.part.refresh())


@asynccontextmanager
async def analytics_stage(services: Services) -> AsyncIterator[None]:
    db = services.require_db()

    async def btcpay_for(store_id: str) -> object:
        if services.btcpay is None:
            raise UserFacingError("BTCPay is not connected", fix="run `sovterm setup btcpay`")
        return services.btcpay.client_for_store(store_id)

    async def stores() -> list[str]:
        return [r[0] for r in await db.fetchall("SELECT store_id FROM btcpay_stores WHERE selected = 1")]

    zone = services.settings.analytics.timezone
    services.analytics = Analytics(db, zone)
    services.crowdfund = campaigns = Campaigns(db, btcpay_for, stores)  # type: ignore[arg-type]
    background = Background(log)
    background.spawn(_build_aggregates(db, zone))
    if services.btcpay is not None:
        background.spawn(_refresh_when_stores_selected(services.btcpay.stores_selected, campaigns))
    try:
        yield
    finally:
        services.analytics = services.crowdfund = None
        await background.cancel()


async def _build_aggregates(db: Database, zone: str) -> None:
    """Count the invoices the per-day aggregates do not hold yet (after the upgrade that added them, or a
    new `analytics.timezone`); reports read raw rows until this is done."""
    started = time.monotonic()
    added = await aggregates.rebuild(db, zone)
    if added:
        log.info("analytics aggregates: %d invoices counted in %.1f s", added, time.monotonic() - started)


async def _refresh_when_stores_selected(selected: asyncio.Event, campaigns: Campaigns) -> None:
    """Read the campaigns as soon as a store is followed, not at the loop's next turn minutes later."""
    await selected.wait()
    try:
        await campaigns.refresh()
    except UserFacingError as exc:  # BTCPay unreachable: the loop tries again
        log.warning("could not read the Crowdfund apps yet: %s", exc)


def loops(services: Services) -> list[LoopSpec]:
    async def refresh() -> dict[str, object]:
        campaigns = services.crowdfund
        if campaigns is None or services.btcpay is None or not services.btcpay.stores_selected.is_set():
            return {"skipped": "no BTCPay store followed"}
        result = await campaigns.refresh()
        if result["new_invoices"]:
            services.bus.publish("crowdfund.updated", apps=result["apps"], new_invoices=result["new_invoices"])
        return result

    return [LoopSpec("analytics.crowdfund", services.settings.analytics.crowdfund_refresh_s, refresh,
                     first_delay_s=5.0)]


PART = Part("analytics", stage=analytics_stage, loops=loops, methods=register)
