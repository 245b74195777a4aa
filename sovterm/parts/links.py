"""Control methods `links.*` and the links part (service and pay-page stage, reaper loop, pay-page routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from sovterm.btcpay.webhooks import prune_webhooks
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.links.pay import PayPage
from sovterm.links.reaper import reap
from sovterm.links.service import LinkService
from sovterm.links.tokens import SigningKeys
from sovterm.loops import LoopSpec
from sovterm.parts.base import CaseResult, Part, audit_recorder
from sovterm.services import Services
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


class Reservation(Result):
    """The BTCPay invoice a link's last click reserved, while it can still be paid."""

    btcpay_invoice_id: str
    state: str
    expires_at: int
    amount: str
    currency: str


class PayLink(CaseResult):
    """A pay link: for a QuickBooks invoice (`qbo_*`) or a fixed amount (`amount`, `currency`, `memo`)."""

    link_id: str
    kind: Literal["qbo", "fixed"]
    store_id: str
    kid: str
    state: str
    created_at: int
    created_by: str
    expires_at: int
    qbo_invoice_id: str | None = None
    qbo_doc_number: str | None = None
    amount: str | None = None
    currency: str | None = None
    memo: str | None = None
    ended_at: int | None = None
    url: str | None = None  # None once its signing key is retired
    balance: str | None = None  # a new QuickBooks link: the invoice's open balance
    memo_written: str | None = None  # a new QuickBooks link: what became of its customer memo


class ListedLink(PayLink):
    reservation: Reservation | None = None


class OpenInvoice(Result):
    id: str
    doc_number: str | None
    customer: str
    balance: str
    currency: str | None
    txn_date: str | None
    due_date: str | None
    link_id: str | None  # its active pay link


class BulkLink(Result):
    link_id: str
    qbo_doc_number: str
    balance: str
    url: str
    memo_written: str | None


class BulkFailure(Result):
    qbo_doc_number: str | None
    error: str


class BulkCandidate(Result):
    qbo_doc_number: str | None
    balance: str


class BulkCreated(CaseResult):
    dry_run: bool
    open_invoices: int
    already_linked: int
    created: list[BulkLink]
    failed: list[BulkFailure]
    would_create: list[BulkCandidate] | None = None  # a dry run's list


class SigningKey(Result):
    kid: str
    created_at: int
    retired_at: int | None
    active: bool


class KeyRotated(Result):
    active: str


class KeyRetired(Result):
    retired: str


def register_methods(server: ControlServer, services: Services) -> None:
    @server.method("qbo.invoices.search", role=Role.VIEWER, params=SearchParams, part="links")
    async def search_invoices(ctx: CallContext, query: str | None, limit: int) -> list[OpenInvoice]:
        """Open QuickBooks invoices by number or customer, with their active pay link if any."""
        return [OpenInvoice.model_validate(i) for i in await ctx.part.search_invoices(query, limit=limit)]

    @server.method("links.list", role=Role.VIEWER, part="links")
    async def links_list(ctx: CallContext) -> list[ListedLink]:
        """Every pay link with its state, URL and open reservation."""
        return [ListedLink.model_validate(link) for link in await ctx.part.list()]

    @server.method("links.create", role=Role.ADMIN, params=CreateParams, part="links", audit="link.create")
    async def links_create(ctx: CallContext, qbo_invoice: str | None, amount: str | None, currency: str | None,
                           memo: str | None, expires_days: int | None, store_id: str | None) -> PayLink:
        """Create a pay link for a QuickBooks invoice (by number) or for a fixed amount."""
        if qbo_invoice is not None:
            link = await ctx.part.create_qbo(qbo_invoice, actor=ctx.peer.user, audit=audit_recorder(ctx),
                                             expires_days=expires_days, store_id=store_id)
        else:
            assert amount is not None and currency is not None
            link = await ctx.part.create_fixed(amount, currency, memo, actor=ctx.peer.user, audit=audit_recorder(ctx),
                                               expires_days=expires_days, store_id=store_id)
        return PayLink.model_validate(link)

    @server.method("links.bulk_create", role=Role.ADMIN, params=BulkParams, part="links", audit="link.create")
    async def links_bulk(ctx: CallContext, dry_run: bool, expires_days: int | None,
                         store_id: str | None) -> BulkCreated:
        """Create links for every open QuickBooks invoice that has none (dry_run: only list them)."""
        result = await ctx.part.bulk_create(actor=ctx.peer.user, audit=audit_recorder(ctx), dry_run=dry_run,
                                            expires_days=expires_days, store_id=store_id)
        ctx.skip_audit()  # each link created wrote its own row; a dry run, or nothing to link, none
        return BulkCreated.model_validate(result)

    @server.method("links.expire", role=Role.ADMIN, params=LinkIdParams, part="links", audit="link.expire")
    async def links_expire(ctx: CallContext, link_id: str) -> PayLink:
        """End a pay link now; its token stops working."""
        ctx.audit(subject=link_id)
        return PayLink.model_validate(await ctx.part.expire(link_id, audit=audit_recorder(ctx)))

    @server.method("links.get", role=Role.VIEWER, params=LinkIdParams, part="links")
    async def links_get(ctx: CallContext, link_id: str) -> PayLink:
        """One pay link with its URL (for `sovterm link qr`)."""
        link = await ctx.part.link(link_id)
        if link is None:
            raise UserFacingError(f"no pay link {link_id}", fix="see `sovterm link list`")
        return PayLink.model_validate({**link, "url": await ctx.part.url_of(link)})

    @server.method("links.keys.list", role=Role.VIEWER, part="links")
    async def keys_list(ctx: CallContext) -> list[SigningKey]:
        """The link-signing keys: which is active, which are retired."""
        return [SigningKey.model_validate(k.__dict__) for k in await ctx.part.keys.list()]

    @server.method("links.keys.rotate", role=Role.ADMIN, part="links", audit="link.keys.rotate")
    async def keys_rotate(ctx: CallContext) -> KeyRotated:
        """New links get a new signing key; links signed before keep working until their key is retired."""
        kid = await ctx.part.keys.rotate()
        ctx.audit(subject=kid, outcome="rotated")
        return KeyRotated(active=kid)

    @server.method("links.keys.retire", role=Role.ADMIN, params=KidParams, part="links", audit="link.keys.retire")
    async def keys_retire(ctx: CallContext, kid: str) -> KeyRetired:
        """Destroy a signing key: every link it signed stops working."""
        ctx.audit(subject=kid)
        await ctx.part.keys.retire(kid)
        ctx.audit(subject=kid, outcome="retired")
        return KeyRetired(retired=kid)


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
