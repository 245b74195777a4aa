"""Reads the invoice ledger, refunds and payouts for a period and hands them to `report.summarize`."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sovterm.analytics.report import Invoice, Payment, Payout, Period, Refund, Report, bounds, summarize
from sovterm.store.db import Database

# Settled invoices are read by when the money came; a settlement can follow creation by days
# (on-chain confirmations, a late payment), so invoices created this long before the period are read too.
SETTLE_LOOKBACK = timedelta(days=60)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class Analytics:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def report(
        self, date_from: date, date_to: date, *, store_id: str | None = None, by: Period = "day",
        tz: str = "UTC", currency: str | None = None,
    ) -> Report:
        zone = ZoneInfo(tz)
        start, end = bounds(date_from, date_to, zone)
        read_from, _ = bounds(date_from - SETTLE_LOOKBACK, date_from, zone)
        args: list[Any] = [read_from, end] + ([store_id] if store_id is not None else [])

        def created_between(table: str) -> str:
            store = f" AND {table}.store_id = ?" if store_id is not None else ""
            return f"{table}.created_at >= ? AND {table}.created_at < ?{store}"

        rows = await self.db.fetchall(
            "SELECT store_id, invoice_id, status, additional_status, COALESCE(currency, ''), amount, paid_amount, "
            "created_at, paid_at, status_changed_at, COALESCE(json_extract(metadata, '$.itemCode'), item_desc) "
            f"FROM invoices WHERE {created_between('invoices')}",
            args,
        )
        invoices = [
            Invoice(r[0], r[1], r[2], r[3], r[4], _decimal(r[5]), _decimal(r[6]), r[7],
                    r[8] if r[8] is not None else (r[9] // 1000 if r[2] == "Settled" else None), r[10])
            for r in rows
        ]
        payments = [
            Payment(r[0], r[1], r[2] if r[2] != "other" else r[3], r[4],
                    None if r[6] is None else Decimal(r[5]) * Decimal(r[6]))
            for r in await self.db.fetchall(
                "SELECT p.store_id, p.invoice_id, p.payment_method, p.payment_method_raw, p.amount_sats, p.amount, "
                "m.rate FROM invoice_payments p JOIN invoices i USING (store_id, invoice_id) "
                "LEFT JOIN invoice_payment_methods m USING (store_id, invoice_id, payment_method_raw) "
                f"WHERE p.status != 'Invalid' AND {created_between('i')}",
                args,
            )
        ]
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
        return summarize(invoices, payments, refunds, payouts, date_from=date_from, date_to=date_to, by=by,
                         tz=tz, currency=currency)

    async def stores(self) -> list[dict[str, Any]]:
        """The followed stores, for a store picker."""
        rows = await self.db.fetchall("SELECT store_id, name FROM btcpay_stores WHERE selected = 1 ORDER BY name")
        return [{"store_id": r[0], "name": r[1]} for r in rows]
