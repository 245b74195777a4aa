"""The notify part: its service (alerts → apprise destinations), the loop that works the alerts out on a
timer (else they are only worked out when someone reads the status), and the `notify.*` control methods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, Field

from sovterm import alerts
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.loops import LoopSpec
from sovterm.notify.service import NotifyService
from sovterm.parts.base import Part
from sovterm.services import Services
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
        found = await alerts.current(services.alerts, services.bus, ready, checks,
                                     await alerts.read_sync(services.sync))
        return {"alerts": len(found)}

    return [LoopSpec("alerts", services.settings.notify.check_interval_s, check)]


PART = Part("notify", stage=notify_stage, loops=_loops, methods=register)
