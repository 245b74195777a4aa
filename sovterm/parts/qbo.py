"""The QuickBooks part: its stage, its `qbo.tokens` loop, its callback route and its control methods
(`setup.qbo.*`, `setup.accounts.*`, `qbo.*`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sovterm.parts.btcpay import require_followed
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.qbo.oauth import STATE_TTL_S
from sovterm.qbo.service import TOKENS_LOOP_S, QBOService
from sovterm.qr import text_fitting
from sovterm.services import Services
from sovterm.store import audit
from sovterm.web.qbo import add_routes


@asynccontextmanager
async def qbo_stage(services: Services) -> AsyncIterator[None]:
    assert services.http is not None and services.db is not None
    service = QBOService(
        services.settings.qbo, services.settings.qbo_redirect_uri, services.require_db(),
        services.require_secrets(), services.http, bus=services.bus, connectors=services.connectors,
    )
    await service.refresh_state()
    services.qbo = service
    try:
        yield
    finally:
        services.qbo = None


def qbo_loops(services: Services) -> list[LoopSpec]:
    async def tokens() -> dict[str, Any]:
        return await require(services).tokens_tick()

    return [LoopSpec("qbo.tokens", TOKENS_LOOP_S, tokens)]


def require(services: Services) -> QBOService:
    if services.qbo is None:
        raise UserFacingError("the QuickBooks part is not running")
    return services.qbo


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompleteParams(_Params):
    redirected_url: str = Field(min_length=1, max_length=8192)


class WaitParams(_Params):
    timeout_s: float = Field(STATE_TTL_S, gt=0, le=3600)
    since: float | None = None  # a connection completed at or after this time counts (no lost race)


class StatusParams(_Params):
    check: bool = False


class AutoSyncParams(_Params):
    enabled: bool


class StoreParams(_Params):
    store_id: str | None = Field(None, min_length=1, max_length=200)


class ApplyParams(StoreParams):
    auto: bool = False
    overrides: dict[str, str] = {}


async def resolve_store(services: Services, store_id: str | None) -> str:
    """The given store, else the only BTCPay store selected for sync."""
    if store_id:
        return await require_followed(services, store_id)
    rows = await services.require_db().fetchall("SELECT store_id FROM btcpay_stores WHERE selected = 1")
    if len(rows) == 1:
        return str(rows[0][0])
    known = ", ".join(r[0] for r in rows) or "none selected yet"
    raise UserFacingError("which BTCPay store is this mapping for?",
                          fix=f"pass --store ID (selected stores: {known})")


def register(server: ControlServer, services: Services) -> None:
    db = services.require_db

    @server.method("setup.qbo.start", role=Role.ADMIN)
    async def setup_start(ctx: CallContext) -> dict[str, Any]:
        """Start connecting a QuickBooks company: the authorisation link (and its QR code)."""
        service = require(services)
        if service.problem is not None:
            raise UserFacingError(f"QuickBooks is not configured: {service.problem}",
                                  fix="create your own Intuit app:\n" + service.guide)
        started = await service.start()
        return {**started, "qr": text_fitting(started["authorization_url"], 80), "intuit_app_guide": service.guide}

    @server.method("setup.qbo.complete", role=Role.ADMIN, params=CompleteParams)
    async def setup_complete(ctx: CallContext, redirected_url: str) -> dict[str, Any]:
        """Finish connecting with the address the browser ended on (for boxes without a public name)."""
        connection = await require(services).complete(redirected_url)
        await audit.record(db(), ctx.peer.user, "qbo.connect", connection.realm_id,
                           {"environment": connection.environment, "via": "paste-back"}, "ok")
        return asdict(connection)

    @server.method("setup.qbo.wait", role=Role.VIEWER, params=WaitParams)
    async def setup_wait(ctx: CallContext, timeout_s: float, since: float | None) -> dict[str, Any]:
        """Wait until a company connects through the callback, or the timeout passes."""
        service = require(services)
        sub = services.bus.subscribe(["qbo.connected"], limit=10)
        try:
            current = await service.active_connection()
            if current is not None and since is not None and current.connected_at >= int(since):
                return {"connected": True, **asdict(current)}
            try:
                async with asyncio.timeout(timeout_s):
                    _, event = await sub.next()
            except TimeoutError:
                return {"connected": False, "timed_out": True}
            if event is None:
                return {"connected": False, "timed_out": False}
            connection = await service.active_connection()
            return {"connected": True, **(asdict(connection) if connection else event.data)}
        finally:
            services.bus.unsubscribe(sub)

    @server.method("qbo.status", role=Role.VIEWER, params=StatusParams)
    async def qbo_status(ctx: CallContext, check: bool) -> dict[str, Any]:
        """Connection, company, environment (sandbox labelled), auto-sync and token state."""
        return await require(services).status(check=check)

    @server.method("qbo.disconnect", role=Role.ADMIN)
    async def qbo_disconnect(ctx: CallContext) -> dict[str, Any]:
        """Revoke sovterm's access at Intuit and forget the tokens."""
        result = await require(services).disconnect()
        await audit.record(db(), ctx.peer.user, "qbo.disconnect", result["realm_id"],
                           {"revoked": result["revoked"]}, "ok" if result["revoked"] else "forgotten, revoke failed")
        return result

    @server.method("qbo.auto_sync", role=Role.ADMIN, params=AutoSyncParams)
    async def qbo_auto_sync(ctx: CallContext, enabled: bool) -> dict[str, Any]:
        """Switch automatic posting to QuickBooks on or off (sandbox companies start off)."""
        connection = await require(services).set_auto_sync(enabled)
        await audit.record(db(), ctx.peer.user, "qbo.auto_sync", connection.realm_id,
                           {"enabled": enabled, "sandbox": connection.sandbox}, "ok")
        return {"realm_id": connection.realm_id, "auto_sync": connection.auto_sync, "sandbox": connection.sandbox}

    @server.method("setup.accounts.list", role=Role.VIEWER)
    async def accounts_list(ctx: CallContext) -> dict[str, Any]:
        """The company's accounts, items, customers, payment methods, classes and tax codes."""
        service = require(services)
        return {"sandbox": await service.connected_sandbox(), **await service.list_entities()}

    @server.method("setup.accounts.propose", role=Role.VIEWER, params=StoreParams)
    async def accounts_propose(ctx: CallContext, store_id: str | None) -> dict[str, Any]:
        """The default accounts sovterm would use (found by name) or create, and the current mapping."""
        return await require(services).propose(await resolve_store(services, store_id))

    @server.method("setup.accounts.apply", role=Role.ADMIN, params=ApplyParams)
    async def accounts_apply(
        ctx: CallContext, store_id: str | None, auto: bool, overrides: dict[str, str]
    ) -> dict[str, Any]:
        """Save a store's mapping; `auto` creates the missing defaults (never duplicates)."""
        store = await resolve_store(services, store_id)
        service = require(services)
        try:
            mapping = await service.apply_mapping(store, auto=auto, overrides=overrides)
        except UserFacingError as exc:
            await audit.record(db(), ctx.peer.user, "setup.accounts.apply", store,
                               {"auto": auto, "overrides": overrides, "error": exc.message}, "refused")
            raise
        await audit.record(db(), ctx.peer.user, "setup.accounts.apply", store,
                           {"auto": auto, "overrides": overrides, "realm_id": mapping.realm_id,
                            "names": mapping.names}, "ok")
        return {"mapping": asdict(mapping), "sandbox": await service.connected_sandbox(),
                "applied_at": int(time.time())}


PART = Part("qbo", stage=qbo_stage, loops=qbo_loops, routes=add_routes, methods=register)
