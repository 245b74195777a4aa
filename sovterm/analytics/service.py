"""Reads a period's figures: invoices from the per-day aggregates when they cover the report's days
(`aggregates.py`), else from the raw ledger rows through `report.summarize`; refunds and payouts from
their own (small) tables either way."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sovterm.analytics import aggregates
from sovterm.analytics.aggregates import INVOICE_COLUMNS, PAYMENT_COLUMNS, PAYMENT_JOIN, invoice_of, payment_of
from sovterm.analytics.report import Payout, Period, Refund, Report, bounds, summarize
from sovterm.store.db import Database

# Settled invoices are read by when the money came; a settlement can follow creation by days
# (on-chain confirmations, a late payment), so the raw read also takes invoices created this long before
# the period. (The aggregates count a settlement whenever the invoice was created.) Their settled
# invoices also pick the report currency when nothing settled in the period, in both reads.
SETTLE_LOOKBACK = timedelta(days=60)


class Analytics:
    def __init__(self, db: Database, zone: str = "UTC") -> None:
        self.db = db
        self.zone = zone  # the `analytics.timezone` setting: the aggregates' days, and a report's by default
        self._shared: tuple[tuple[date, date], float, asyncio.Future[Report]] | None = None

    async def shared_report(self, date_from: date, date_to: date, *, max_age_s: float) -> Report:
        """The all-stores report for the public status page: computed at most once per `max_age_s` whatever
        the number of requests (those arriving meanwhile share the one being computed, and a caller that
        gives up does not cancel it), so an unauthenticated flood costs one report a minute, not one each."""
        now = time.monotonic()
        if self._shared is None or self._shared[0] != (date_from, date_to) or now - self._shared[1] >= max_age_s:
            self._shared = ((date_from, date_to), now, asyncio.ensure_future(self.report(date_from, date_to)))
        return await asyncio.shield(self._shared[2])

    async def report(
        self, date_from: date, date_to: date, *, store_id: str | None = None, by: Period = "day",
        tz: str | None = None, currency: str | None = None,
    ) -> Report:
        tz = tz or self.zone
        zone, ready = await aggregates.state(self.db)
        if ready and zone == tz:
            report = await aggregates.aggregated_report(
                self.db, date_from, date_to, store_id=store_id, by=by, tz=tz, currency=currency,
                fallback_from=date_from - SETTLE_LOOKBACK)
        else:
            report = await self.report_from_rows(date_from, date_to, store_id=store_id, by=by, tz=tz,
                                                 currency=currency, with_money_movements=False)
        await self._money_movements(report, store_id, currency)
        return report

    async def report_from_rows(
        self, date_from: date, date_to: date, *, store_id: str | None = None, by: Period = "day",
        tz: str = "UTC", currency: str | None = None, with_money_movements: bool = True,
    ) -> Report:
        """The report from every raw invoice row of the range (and the lookback): for a zone the aggregates
        are not kept in, while they are being built, and as the reference they are tested against."""
        zone = ZoneInfo(tz)
        _, end = bounds(date_from, date_to, zone)
        read_from, _ = bounds(date_from - SETTLE_LOOKBACK, date_from, zone)
        args: list[Any] = [read_from, end] + ([store_id] if store_id is not None else [])

        def created_between(table: str) -> str:
            store = f" AND {table}.store_id = ?" if store_id is not None else ""
            return f"{table}.created_at >= ? AND {table}.created_at < ?{store}"

        rows = await self.db.fetchall(f"SELECT {INVOICE_COLUMNS} FROM invoices WHERE {created_between('invoices')}",
                                      args)
        invoices = [invoice_of(r) for r in rows]
        payments = [
            payment_of(r) for r in await self.db.fetchall(
                f"SELECT {PAYMENT_COLUMNS} {PAYMENT_JOIN} JOIN invoices i USING (store_id, invoice_id) "
                f"WHERE p.status != 'Invalid' AND {created_between('i')}", args)
        ]
        report = summarize(invoices, payments, [], [], date_from=date_from, date_to=date_to, by=by, tz=tz,
                           currency=currency)
        if with_money_movements:
            await self._money_movements(report, store_id, currency)
        return report

    async def _money_movements(self, report: Report, store_id: str | None, currency: str | None) -> None:
        """Refunds and completed payouts of the period, into `report` (as `summarize` counts them)."""
        start, end = bounds(report.date_from, report.date_to, ZoneInfo(report.tz))
        store_clause, store_args = ("AND store_id = ?", [store_id]) if store_id is not None else ("", [])
        refunds = [
            Refund(r[0] or "", Decimal(r[1] or "0"), r[2])
            for r in await self.db.fetchall(
                f"SELECT currency, amount, created_at FROM sync_refunds WHERE created_at >= ? AND created_at < ? "
                f"{store_clause}", [start, end, *store_args])
        ]
        payouts = [
            Payout(r[0], r[1])
            for r in await self.db.fetchall(
                "SELECT amount_sats, COALESCE(completed_at, created_at) FROM payouts WHERE state = 'Completed' "
                f"AND COALESCE(completed_at, created_at) >= ? AND COALESCE(completed_at, created_at) < ? "
                f"{store_clause}", [start, end, *store_args])
        ]
        moved = summarize([], [], refunds, payouts, date_from=report.date_from, date_to=report.date_to,
                          by=report.by, tz=report.tz, currency=currency)
        report.refunds, report.refunded = moved.refunds, moved.refunded
        report.payouts, report.paid_out_sats = moved.payouts, moved.paid_out_sats

    async def stores(self) -> list[dict[str, Any]]:
        """The followed stores, for a store picker."""
        rows = await self.db.fetchall("SELECT store_id, name FROM btcpay_stores WHERE selected = 1 ORDER BY name")
        return [{"store_id": r[0], "name": r[1]} for r in rows]
