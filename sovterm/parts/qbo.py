"""The QuickBooks part: its stage, its `qbo.tokens` loop, its callback route and its control methods
(`setup.qbo.*`, `setup.accounts.*`, `qbo.*`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.parts.btcpay import resolve_store
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.oauth import STATE_TTL_S
from sovterm.qbo.service import TOKENS_LOOP_S, QBOService
from sovterm.qr import text_fitting
from sovterm.services import Services
from sovterm.web.qbo import add_routes


@asynccontextmanager
async def qbo_stage(services: Services) -> AsyncIterator[None]:
    assert services.http is not None and services.db is not None
    service = QBOService(
        services.settings.qbo, services.settings.qbo_redirect_uri, services.require_db(),
        services.require_secrets(), services.http, bus=services.bus, connectors=services.connectors,
        on_error=lambda error: services.metrics.count_qbo_error(error.fault_code or error.code),
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


class Started(Result):
    authorization_url: str
    expires_in: int
    redirect_uri: str
    environment: str
    sandbox: bool
    started_at: float
    qr: str | None  # None when the link is too wide for a terminal
    intuit_app_guide: str


class CompanyConnection(Result):
    """A connected QuickBooks company (its tokens are never shown)."""

    realm_id: str
    environment: str
    sandbox: bool
    auto_sync: bool
    status: str
    access_expires_at: int
    refresh_expires_at: int
    refresh_hard_expires_at: int | None
    connected_at: int


class ConnectedNow(CompanyConnection):
    connected: bool  # True


class ConnectedEvent(Result):
    """A company connected, as the `qbo.connected` event told it."""

    connected: bool  # True
    realm_id: str
    environment: str
    sandbox: bool
    connected_at: int


class NotConnectedYet(Result):
    connected: bool  # False
    timed_out: bool


class QBOStatus(Result):
    configured: bool
    problem: str | None
    environment: str
    sandbox: bool
    redirect_uri: str
    connected: bool
    state: str
    can_sync: bool
    sync_blocked: str  # why sync may not post now ("" when it may)


class CompanyStatus(QBOStatus):
    realm_id: str
    company_name: str | None
    auto_sync: bool
    token_state: str
    days_left: int | None
    reason: str | None
    connected_at: int


class CheckedStatus(CompanyStatus):
    check: str  # "ok", or why the live call failed


class QBODisconnected(Result):
    realm_id: str
    revoked: bool
    sandbox: bool


class AutoSync(Result):
    realm_id: str
    auto_sync: bool
    sandbox: bool


class EntityList(Result):
    count: int
    rows: list[dict[str, Any]]  # {id, Name or DisplayName, and the entity's type fields}


class Entities(Result):
    sandbox: bool
    accounts: EntityList
    items: EntityList
    customers: EntityList
    payment_methods: EntityList
    classes: EntityList
    tax_codes: EntityList
    locations: EntityList


class Proposed(Result):
    key: str
    entity: str
    name: str
    existing_id: str | None
    action: str  # "use existing" or "create"


class Proposal(Result):
    store_id: str
    realm_id: str
    sandbox: bool
    defaults: list[Proposed]
    current: StoreMapping | None


class Applied(Result):
    mapping: StoreMapping
    sandbox: bool
    applied_at: int


def register(server: ControlServer, services: Services) -> None:
    @server.method("setup.qbo.start", role=Role.ADMIN, part="qbo")
    async def setup_start(ctx: CallContext) -> Started:
        """Start connecting a QuickBooks company: the authorisation link (and its QR code)."""
        service: QBOService = ctx.part
        if service.problem is not None:
            raise UserFacingError(f"QuickBooks is not configured: {service.problem}",
                                  fix="create your own Intuit app:\n" + service.guide)
        started = await service.start()
        return Started(**started, qr=text_fitting(started["authorization_url"], 80), intuit_app_guide=service.guide)

    @server.method("setup.qbo.complete", role=Role.ADMIN, params=CompleteParams, part="qbo", audit="qbo.connect")
    async def setup_complete(ctx: CallContext, redirected_url: str) -> CompanyConnection:
        """Finish connecting with the address the browser ended on (for boxes without a public name)."""
        connection = await ctx.part.complete(redirected_url)
        ctx.audit(subject=connection.realm_id, detail={"environment": connection.environment, "via": "paste-back"})
        return CompanyConnection(**asdict(connection))

    @server.method("setup.qbo.wait", role=Role.VIEWER, params=WaitParams, part="qbo")
    async def setup_wait(
        ctx: CallContext, timeout_s: float, since: float | None
    ) -> ConnectedNow | ConnectedEvent | NotConnectedYet:
        """Wait until a company connects through the callback, or the timeout passes."""
        service: QBOService = ctx.part
        sub = services.bus.subscribe(["qbo.connected"], limit=10)
        try:
            current = await service.active_connection()
            if current is not None and since is not None and current.connected_at >= int(since):
                return ConnectedNow(connected=True, **asdict(current))
            try:
                async with asyncio.timeout(timeout_s):
                    _, event = await sub.next()
            except TimeoutError:
                return NotConnectedYet(connected=False, timed_out=True)
            if event is None:
                return NotConnectedYet(connected=False, timed_out=False)
            connection = await service.active_connection()
            if connection is None:
                return ConnectedEvent(connected=True, **event.data)
            return ConnectedNow(connected=True, **asdict(connection))
        finally:
            services.bus.unsubscribe(sub)

    @server.method("qbo.status", role=Role.VIEWER, params=StatusParams, part="qbo")
    async def qbo_status(ctx: CallContext, check: bool) -> QBOStatus | CompanyStatus | CheckedStatus:
        """Connection, company, environment (sandbox labelled), auto-sync and token state."""
        return TypeAdapter(QBOStatus | CompanyStatus | CheckedStatus).validate_python(
            await ctx.part.status(check=check)
        )

    @server.method("qbo.disconnect", role=Role.ADMIN, part="qbo", audit="qbo.disconnect")
    async def qbo_disconnect(ctx: CallContext) -> QBODisconnected:
        """Revoke sovterm's access at Intuit and forget the tokens."""
        result = QBODisconnected.model_validate(await ctx.part.disconnect())
        ctx.audit(subject=result.realm_id, detail={"revoked": result.revoked},
                  outcome="ok" if result.revoked else "forgotten, revoke failed")
        return result

    @server.method("qbo.auto_sync", role=Role.ADMIN, params=AutoSyncParams, part="qbo", audit="qbo.auto_sync")
    async def qbo_auto_sync(ctx: CallContext, enabled: bool) -> AutoSync:
        """Switch automatic posting to QuickBooks on or off (sandbox companies start off)."""
        connection = await ctx.part.set_auto_sync(enabled)
        ctx.audit(subject=connection.realm_id, detail={"enabled": enabled, "sandbox": connection.sandbox})
        return AutoSync(realm_id=connection.realm_id, auto_sync=connection.auto_sync, sandbox=connection.sandbox)

    @server.method("setup.accounts.list", role=Role.VIEWER, part="qbo")
    async def accounts_list(ctx: CallContext) -> Entities:
        """The company's accounts, items, customers, payment methods, classes, tax codes and locations."""
        service: QBOService = ctx.part
        return Entities(sandbox=await service.connected_sandbox(), **await service.list_entities())

    @server.method("setup.accounts.propose", role=Role.VIEWER, params=StoreParams, part="qbo")
    async def accounts_propose(ctx: CallContext, store_id: str | None) -> Proposal:
        """The default accounts sovterm would use (found by name) or create, and the current mapping."""
        return Proposal.model_validate(await ctx.part.propose(await resolve_store(services, store_id)))

    @server.method("setup.accounts.apply", role=Role.ADMIN, params=ApplyParams, part="qbo",
                   audit="setup.accounts.apply")
    async def accounts_apply(
        ctx: CallContext, store_id: str | None, auto: bool, overrides: dict[str, str]
    ) -> Applied:
        """Save a store's mapping; `auto` creates the missing defaults (never duplicates)."""
        ctx.audit(detail={"auto": auto, "overrides": overrides})
        store = await resolve_store(services, store_id)
        ctx.audit(subject=store, detail={"auto": auto, "overrides": overrides})
        service: QBOService = ctx.part
        mapping = await service.apply_mapping(store, auto=auto, overrides=overrides)
        ctx.audit(subject=store, detail={"auto": auto, "overrides": overrides, "realm_id": mapping.realm_id,
                                         "names": mapping.names})
        return Applied(mapping=mapping, sandbox=await service.connected_sandbox(), applied_at=int(time.time()))


PART = Part("qbo", stage=qbo_stage, loops=qbo_loops, routes=add_routes, methods=register)
