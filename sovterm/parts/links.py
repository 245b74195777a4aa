"""Control methods `links.*` and the links part (service and pay-page stage, reaper loop, pay-page routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, Field, model_validator

from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.btcpay.webhooks import prune_webhooks
from sovterm.errors import UserFacingError
from sovterm.links.pay import PayPage
from sovterm.links.reaper import reap
from sovterm.links.service import LinkService
from sovterm.links.tokens import SigningKeys
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.store import audit
from sovterm.web.app import SERVICES
from sovterm.web.links import add_routes


class CreateParams(BaseModel):
    qbo_invoice: str | None = Field(None, min_length=1, max_length=21)  # a QuickBooks DocNumber
    amount: str | None = None
    currency: str | None = None
    memo: str | None = None
    expires_days: int | None = Field(None, ge=1, le=3650)
    store_id: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CreateParams:
        if (self.qbo_invoice is None) == (self.amount is None):
            raise ValueError("give either qbo_invoice or amount (with currency)")
        if self.amount is not None and not self.currency:
            raise ValueError("a fixed-amount link needs a currency")
        return self


class LinkIdParams(BaseModel):
    link_id: str = Field(min_length=1, max_length=64)


class BulkParams(BaseModel):
    dry_run: bool = False
    expires_days: int | None = Field(None, ge=1, le=3650)
    store_id: str | None = None


class SearchParams(BaseModel):
    query: str | None = None
    limit: int = Field(50, ge=1, le=500)


class KidParams(BaseModel):
    kid: str = Field(min_length=8, max_length=8)


def register_methods(server: ControlServer, services: Services) -> None:
    def links() -> LinkService:
        service = services.links
        if service is None:
            raise UserFacingError("pay links are not running", fix="check the daemon log")
        return service

    @server.method("qbo.invoices.search", role=Role.VIEWER, params=SearchParams)
    async def search_invoices(ctx: CallContext, query: str | None, limit: int) -> list[dict[str, Any]]:
        """Open QuickBooks invoices by number or customer, with their active pay link if any."""
        return await links().search_invoices(query, limit=limit)

    @server.method("links.list", role=Role.VIEWER)
    async def links_list(ctx: CallContext) -> list[dict[str, Any]]:
        """Every pay link with its state, URL and open reservation."""
        return await links().list()

    @server.method("links.create", role=Role.ADMIN, params=CreateParams)
    async def links_create(ctx: CallContext, qbo_invoice: str | None, amount: str | None, currency: str | None,
                           memo: str | None, expires_days: int | None, store_id: str | None) -> dict[str, Any]:
        """Create a pay link for a QuickBooks invoice (by number) or for a fixed amount."""
        if qbo_invoice is not None:
            return await links().create_qbo(qbo_invoice, actor=ctx.peer.user, expires_days=expires_days,
                                            store_id=store_id)
        assert amount is not None and currency is not None
        return await links().create_fixed(amount, currency, memo, actor=ctx.peer.user, expires_days=expires_days,
                                          store_id=store_id)

    @server.method("links.bulk_create", role=Role.ADMIN, params=BulkParams)
    async def links_bulk(ctx: CallContext, dry_run: bool, expires_days: int | None, store_id: str | None) -> dict[str, Any]:
        """Create links for every open QuickBooks invoice that has none (dry_run: only list them)."""
        return await links().bulk_create(actor=ctx.peer.user, dry_run=dry_run, expires_days=expires_days,
                                         store_id=store_id)

    @server.method("links.expire", role=Role.ADMIN, params=LinkIdParams)
    async def links_expire(ctx: CallContext, link_id: str) -> dict[str, Any]:
        """End a pay link now; its token stops working."""
        return await links().expire(link_id, actor=ctx.peer.user)

    @server.method("links.get", role=Role.VIEWER, params=LinkIdParams)
    async def links_get(ctx: CallContext, link_id: str) -> dict[str, Any]:
        """One pay link with its URL (for `sovterm link qr`)."""
        link = await links().link(link_id)
        if link is None:
            raise UserFacingError(f"no pay link {link_id}", fix="see `sovterm link list`")
        return {**link, "url": await links().url_of(link)}

    @server.method("links.keys.list", role=Role.VIEWER)
    async def keys_list(ctx: CallContext) -> list[dict[str, Any]]:
        """The link-signing keys: which is active, which are retired."""
        return [k.__dict__ for k in await links().keys.list()]

    @server.method("links.keys.rotate", role=Role.ADMIN)
    async def keys_rotate(ctx: CallContext) -> dict[str, Any]:
        """New links get a new signing key; links signed before keep working until their key is retired."""
        kid = await links().keys.rotate()
        await audit.record(services.require_db(), ctx.peer.user, "link.keys.rotate", kid, {}, "rotated")
        return {"active": kid}

    @server.method("links.keys.retire", role=Role.ADMIN, params=KidParams)
    async def keys_retire(ctx: CallContext, kid: str) -> dict[str, Any]:
        """Destroy a signing key: every link it signed stops working."""
        await links().keys.retire(kid)
        await audit.record(services.require_db(), ctx.peer.user, "link.keys.retire", kid, {}, "retired")
        return {"retired": kid}


@asynccontextmanager
async def links_stage(services: Services) -> AsyncIterator[None]:
    """Build the link service and its pay page on the BTCPay and QuickBooks services started before it."""
    db = services.require_db()

    async def btcpay_for(store_id: str) -> Any:
        btcpay = getattr(services, "btcpay", None)
        if btcpay is None:
            raise UserFacingError("BTCPay is not connected")
        return btcpay.client_for_store(store_id)

    async def qbo() -> Any:
        service = getattr(services, "qbo", None)
        if service is None:
            raise UserFacingError("QuickBooks is not connected")
        return await service.client()

    links = LinkService(db, SigningKeys(db, services.require_secrets()), lambda: services.settings, btcpay_for, qbo)
    # a reservation closes when its invoice settles, expires or turns invalid: the BTCPay intake, built
    # after this part, hands changed snapshots to `links.on_invoice`
    services.links = links
    services.pay_page = PayPage(links)
    try:
        yield
    finally:
        services.links = services.pay_page = None


def _loops(services: Services) -> list[LoopSpec]:
    async def run() -> dict[str, Any]:
        """The links' reaping, then BTCPay's old webhook rows (one interval, one summary)."""
        links = services.links
        assert links is not None
        summary = await reap(links)
        summary.update(await prune_webhooks(links.db, services.settings.reaper.retention_days, now=links.clock()))
        return summary

    return [LoopSpec("links.reaper", services.settings.reaper.interval_s, run)]


PART = Part(
    "links",
    stage=links_stage,
    loops=_loops,
    routes=lambda app: add_routes(app, lambda request: request.app[SERVICES].pay_page),
    methods=register_methods,
)
