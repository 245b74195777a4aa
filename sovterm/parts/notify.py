"""The notify part: its service (alerts → apprise destinations), the loop that works the alerts out on a
timer (else they are only worked out when someone reads the status), the loop that runs the books-match
report in the background for the `books.differ` alert, and the `notify.*` control methods."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from sovterm import alerts
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.loops import LoopSpec
from sovterm.notify.service import NotifyService
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.store import kv
from sovterm.sync import reconcile
from sovterm.web.app import readiness


class AddParams(BaseModel):
    name: str
    url: str = Field(repr=False)  # carries tokens: never in a repr, a log line or the audit row
    min_severity: str = "warning"


class NameParams(BaseModel):
    name: str


class DestinationState(Result):
    """A destination as lists show it: never its URL."""

    name: str
    service: str
    min_severity: str
    state: str  # idle | ok | retrying | failing
    queued: int
    sent: int
    given_up: int
    held_back: int  # over the hourly limit
    dropped: int  # pushed out of a full queue
    last_sent_at: float | None
    last_error: str | None
    retry_at: float | None


class Removed(Result):
    removed: str


class TestResult(Result):
    name: str
    delivered: bool
    error: str | None


def register(server: ControlServer, services: Services) -> None:
    @server.method("notify.add", role=Role.ADMIN, params=AddParams, part="notify", audit="notify.add")
    async def notify_add(ctx: CallContext, name: str, url: str, min_severity: str) -> DestinationState:
        """Add (or replace) a notification destination: an apprise URL, stored encrypted."""
        ctx.audit(subject=name, detail={"min_severity": min_severity})
        return DestinationState.model_validate(await ctx.part.add(name, url, min_severity))

    @server.method("notify.list", role=Role.VIEWER, part="notify")
    async def notify_list(ctx: CallContext) -> list[DestinationState]:
        """The destinations, their service and how delivery goes (never their URLs)."""
        return [DestinationState.model_validate(row) for row in ctx.part.list()]

    @server.method("notify.remove", role=Role.ADMIN, params=NameParams, part="notify", audit="notify.remove")
    async def notify_remove(ctx: CallContext, name: str) -> Removed:
        """Remove a destination and its stored URL."""
        ctx.audit(subject=name)
        await ctx.part.remove(name)
        return Removed(removed=name)

    @server.method("notify.test", role=Role.ADMIN, params=NameParams, part="notify")
    async def notify_test(ctx: CallContext, name: str) -> TestResult:
        """Send a test message to one destination now and say whether it was taken."""
        return TestResult.model_validate(await ctx.part.test(name))


@asynccontextmanager
async def notify_stage(services: Services) -> AsyncIterator[None]:
    service = NotifyService(services.require_secrets(), services.settings.notify)
    await service.start()
    services.alerts.listeners.append(service.on_alert)
    services.notify = service
    try:
        yield
    finally:
        services.notify = None
        services.alerts.listeners.remove(service.on_alert)
        await service.close()


def _loops(services: Services) -> list[LoopSpec]:
    async def check() -> dict[str, Any]:
        """Work the alerts out now: a condition that starts or clears reaches the destinations even when
        nobody reads the status."""
        ready, checks = await readiness(services)
        found = await alerts.for_daemon(services, ready, checks)
        return {"alerts": len(found)}

    async def books() -> dict[str, Any]:
        return await check_books(services)

    return [LoopSpec("alerts", services.settings.notify.check_interval_s, check),
            LoopSpec("books.match", services.settings.alerts.books_check_interval_s, books, first_delay_s=60.0)]


BooksReport = Callable[..., Awaitable[reconcile.Report]]


async def check_books(services: Services, report: BooksReport = reconcile.check) -> dict[str, Any]:
    """Run the books-match report over the last closed days and keep its verdict, in counts only, for the
    `books.differ` alert: the report asks QuickBooks and BTCPay, too costly for every status read. Today is
    left out (its payments may still be on their way to QuickBooks). Skipped while nothing can be posted:
    other alerts say why."""
    qbo, btcpay = services.qbo, services.btcpay
    if qbo is None or btcpay is None:
        return {"skipped": "BTCPay and QuickBooks must both be connected"}
    can, why = await qbo.can_sync()
    if not can:
        return {"skipped": why}
    today = datetime.now(UTC).date()
    date_from = (today - timedelta(days=services.settings.alerts.books_check_days)).isoformat()
    date_to = (today - timedelta(days=1)).isoformat()
    found = await report(services.require_db(), await qbo.client(), date_from, date_to,
                         (await qbo.currency_context()).home, btcpay.client_for_store)
    verdict = {"at": time.time(), "from": date_from, "to": date_to, "ok": found.ok,
               "differences": len(found.differences), "wallets_off": sum(not w["ok"] for w in found.wallets)}
    await kv.put(services.require_db(), alerts.BOOKS_CHECK_KEY, verdict)
    return verdict


PART = Part("notify", stage=notify_stage, loops=_loops, methods=register)
