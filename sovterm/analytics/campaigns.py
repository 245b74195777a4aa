"""The followed stores' BTCPay Crowdfund apps: their settings and invoices read from BTCPay, their progress
worked out from sovterm's ledger by `crowdfund.progress`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

from sovterm.analytics.crowdfund import Campaign, Contribution, ContributionPayment, Progress, progress
from sovterm.btcpay.models import CrowdfundApp
from sovterm.errors import UserFacingError
from sovterm.store.db import Database

log = logging.getLogger(__name__)
PAGE = 500  # invoices per textSearch page
CROWDFUND = "Crowdfund"


class AppReader(Protocol):
    async def list_apps(self, store_id: str) -> list[Any]: ...

    async def get_crowdfund_app(self, app_id: str) -> CrowdfundApp: ...

    async def list_invoices(self, store_id: str, *, skip: int | None = None, take: int | None = None,
                            text_search: str | None = None) -> list[Any]: ...


def campaign_of(app_id: str, store_id: str, title: str, settings: dict[str, Any]) -> Campaign:
    target = settings.get("target_amount")
    return Campaign(
        app_id=app_id, store_id=store_id, title=title, target_currency=settings.get("target_currency") or "USD",
        target_amount=None if target is None else Decimal(target),
        enforce_target_amount=bool(settings.get("enforce_target_amount")),
        start_date=settings.get("start_date"), end_date=settings.get("end_date"),
        reset_every=settings.get("reset_every") or "Never",
        reset_every_amount=int(settings.get("reset_every_amount") or 1),
        perks=tuple((str(p.get("id")), str(p.get("title") or p.get("id"))) for p in settings.get("perks", [])),
    )


def _settings(app: CrowdfundApp) -> dict[str, Any]:
    return {
        "target_currency": app.target_currency, "enforce_target_amount": app.enforce_target_amount,
        "target_amount": None if app.target_amount is None else str(app.target_amount),
        "start_date": app.start_date, "end_date": app.end_date, "reset_every": app.reset_every,
        "reset_every_amount": app.reset_every_amount, "enabled": app.enabled,
        "perks": [{"id": p.get("id"), "title": p.get("title")} for p in app.perks if isinstance(p, dict)],
    }


class Campaigns:
    def __init__(self, db: Database, btcpay_for: Callable[[str], Awaitable[AppReader]],
                 stores: Callable[[], Awaitable[list[str]]], clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.btcpay_for = btcpay_for
        self.stores = stores
        self.clock = clock

    async def refresh(self) -> dict[str, Any]:
        """Read every followed store's Crowdfund apps and their invoice ids from BTCPay."""
        apps = members = 0
        errors: dict[str, str] = {}
        for store_id in await self.stores():
            try:
                found, added = await self._refresh_store(store_id)
            except UserFacingError as exc:
                errors[store_id] = str(exc)
                continue
            apps += found
            members += added
        return {"apps": apps, "new_invoices": members, "errors": errors}

    async def _refresh_store(self, store_id: str) -> tuple[int, int]:
        client = await self.btcpay_for(store_id)
        seen: list[str] = []
        added = 0
        now = int(self.clock())
        for base in await client.list_apps(store_id):
            if base.app_type != CROWDFUND or base.archived:
                continue
            app = await client.get_crowdfund_app(base.id)
            ids = await self._invoice_ids(client, store_id, f"crowdfund-app_{app.id}")
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO crowdfund_apps(app_id, store_id, title, settings, refreshed_at) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(app_id) DO UPDATE SET title = excluded.title, settings = excluded.settings, "
                    "refreshed_at = excluded.refreshed_at",
                    (app.id, store_id, app.title or app.app_name or app.id, json.dumps(_settings(app)), now))
                before = conn.total_changes
                await conn.executemany(
                    "INSERT OR IGNORE INTO crowdfund_invoices(app_id, store_id, invoice_id) VALUES (?,?,?)",
                    [(app.id, store_id, i) for i in ids])
                added += conn.total_changes - before
            seen.append(app.id)
        async with self.db.transaction() as conn:  # an app deleted or archived at BTCPay is no longer shown
            marks = ",".join("?" * len(seen))
            await conn.execute(
                f"DELETE FROM crowdfund_apps WHERE store_id = ? AND app_id NOT IN ({marks or 'NULL'})",
                (store_id, *seen))
        return len(seen), added

    @staticmethod
    async def _invoice_ids(client: AppReader, store_id: str, term: str) -> list[str]:
        ids: list[str] = []
        while True:
            page = await client.list_invoices(store_id, skip=len(ids), take=PAGE, text_search=term)
            ids += [i.id for i in page]
            if len(page) < PAGE:
                return ids

    async def campaigns(self) -> list[tuple[Campaign, Progress]]:
        rows = await self.db.fetchall("SELECT app_id, store_id, title, settings FROM crowdfund_apps ORDER BY title")
        now = int(self.clock())
        out = []
        for app_id, store_id, title, settings in rows:
            campaign = campaign_of(app_id, store_id, title, json.loads(settings))
            out.append((campaign, progress(campaign, await self._contributions(campaign), now)))
        return out

    async def campaign(self, app_id: str) -> tuple[Campaign, Progress]:
        row = await self.db.fetchone(
            "SELECT app_id, store_id, title, settings FROM crowdfund_apps WHERE app_id = ?", (app_id,))
        if row is None:
            raise UserFacingError(f"no Crowdfund app {app_id} in the followed stores",
                                  fix="`sovterm crowdfund list` shows them (after `sovterm crowdfund refresh`)")
        campaign = campaign_of(row[0], row[1], row[2], json.loads(row[3]))
        return campaign, progress(campaign, await self._contributions(campaign), int(self.clock()))

    async def _contributions(self, campaign: Campaign) -> list[Contribution]:
        """The app's invoices in the ledger: those BTCPay listed for its search term, and newer ones whose
        `orderUrl` names the app (the Crowdfund page sets it), so a contribution shows before the next refresh.
        One query: the members (the `orderUrl` scan runs once), each with its payments."""
        rows = await self.db.fetchall(
            "WITH members AS (SELECT invoice_id, status, additional_status, COALESCE(currency, '') AS currency, "
            " amount, created_at, expires_at, json_extract(metadata, '$.itemCode') AS item, paid_amount "
            " FROM invoices WHERE store_id = ? AND ("
            "  invoice_id IN (SELECT invoice_id FROM crowdfund_invoices WHERE app_id = ?)"
            "  OR json_extract(metadata, '$.orderUrl') LIKE ?)) "
            "SELECT members.*, p.status, p.received_at, p.amount, p.fee, m.rate FROM members "
            "LEFT JOIN invoice_payments p ON p.store_id = ? AND p.invoice_id = members.invoice_id "
            "LEFT JOIN invoice_payment_methods m ON m.store_id = p.store_id AND m.invoice_id = p.invoice_id "
            " AND m.payment_method_raw = p.payment_method_raw "
            "ORDER BY members.created_at, members.invoice_id",
            (campaign.store_id, campaign.app_id, f"%/apps/{campaign.app_id}/%", campaign.store_id))
        invoices: dict[str, tuple[Any, ...]] = {}
        payments: dict[str, list[ContributionPayment]] = {}
        for r in rows:
            invoices.setdefault(r[0], tuple(r[:9]))
            status, received_at, amount, fee, rate = r[9:14]
            if status is not None:  # a payment (the LEFT JOIN gives an unpaid invoice one row of NULLs)
                value = (Decimal(amount) - Decimal(fee or "0")) * (Decimal(rate) if rate is not None else Decimal(1))
                payments.setdefault(r[0], []).append(ContributionPayment(status, received_at, value))
        return [
            Contribution(r[0], r[1], r[2], r[3], None if r[4] is None else Decimal(r[4]), r[5], r[6], r[7],
                         None if r[8] is None else Decimal(r[8]), tuple(payments.get(r[0], ())))
            for r in invoices.values()
        ]
