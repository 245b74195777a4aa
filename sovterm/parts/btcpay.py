"""The BTCPay part: the connection's stage and the control methods (setup, status, polls on demand).

The poll loop and the webhook route belong to the intake part (`parts/intake.py`), started later.

Methods never return the API key or a webhook secret. Changes made by an operator are audited with
their Unix user; the TUI wizard resumes from `kv` `setup:btcpay` (shown in `btcpay.status`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from sovterm.btcpay import ledger
from sovterm.btcpay import setup as btcpay_setup
from sovterm.btcpay import status as btcpay_status
from sovterm.btcpay.service import BTCPayService
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.store.secrets import Secret
from sovterm.sync import records


@asynccontextmanager
async def btcpay_stage(services: Services) -> AsyncIterator[None]:
    assert services.http is not None, "http stage has not started"
    service = BTCPayService(
        db=services.require_db(), secrets=services.require_secrets(), http=services.http,
        connectors=services.connectors, settings=services.settings, environ=services.environ, bus=services.bus,
    )
    await service.start()
    services.btcpay = service
    try:
        yield
    finally:
        services.btcpay = None
        await service.stop()


class ConnectParams(BaseModel):
    url: str = Field(min_length=1)
    api_key: Secret
    features: list[str] | None = None


class SelectParams(BaseModel):
    store_ids: list[str] = Field(min_length=1)
    keep_others: bool = False  # add to the followed stores (the CLI) rather than replace them (the wizard)
    api_key: Secret | None = None  # the one store's own key


class StoreParams(BaseModel):
    store_id: str = Field(min_length=1)


class HistoryParams(BaseModel):
    since: date


async def require_followed(services: Services, store_id: str) -> str:
    """`store_id`, unless stores are followed and it is not one of them: then a clear refusal naming them
    (a typo must not save a mode or a mapping nothing will ever use). Before any store is followed a store
    may be prepared (e.g. its accounts mapped before BTCPay is connected)."""
    followed = await ledger.selected_stores(services.require_db())
    if followed and store_id not in followed:
        raise UserFacingError(f"store {store_id} is not followed",
                              fix=f"followed stores: {', '.join(followed) or 'none yet'} (`sovterm btcpay stores`)")
    return store_id


async def resolve_store(services: Services, store_id: str | None) -> str:
    """The given store (checked by `require_followed`), else the only followed store: a command about one
    store needs no `--store` until a second store is followed."""
    if store_id:
        return await require_followed(services, store_id)
    followed = await ledger.selected_stores(services.require_db())
    if len(followed) == 1:
        return followed[0]
    raise UserFacingError("which BTCPay store?" if followed else "no BTCPay store is followed",
                          fix=f"pass --store with one of: {', '.join(followed)}" if followed
                          else "run `sovterm setup btcpay` and follow a store")


async def followed_stores(services: Services) -> list[dict[str, Any]]:
    """Each followed store as the operator configured it, read locally (no BTCPay call): its mode, its
    QuickBooks mapping (accounts and class, by name), its key (own or server-wide), webhook and last error."""
    db = services.require_db()
    btcpay = services.btcpay
    out = []
    for store_id in await ledger.selected_stores(db):
        row = await ledger.store_row(db, store_id)
        assert row is not None
        mode = await records.get_mode(db, store_id)
        own_mode = await records.kv_get(db, records.MODE_KEY + store_id) is not None
        mapping = await services.qbo.mapping_for(store_id) if services.qbo is not None else None
        own_key = btcpay is not None and btcpay.has_own_key(store_id)
        out.append({
            "id": store_id, "name": row["name"], "mode": mode["mode"], "deposit_as": mode["deposit_as"],
            "mode_source": "store" if own_mode else "default",
            "mapping": None if mapping is None else {
                "deposit_account": mapping.names.get("deposit_account_id"),
                "income_account": mapping.names.get("income_account_id"),
                "class": mapping.names.get("class_id"),
            },
            "api_key": "own" if own_key else "server",
            "webhook": bool(row["webhook_id"]),
            "error": None if btcpay is None else btcpay.store_error(store_id),
        })
    return out


class MissingPermission(Result):
    """A permission the key lacks for a store: the features needing it and the string to grant."""

    permission: str
    features: list[str]
    grant: str


class PermissionWarning(MissingPermission):
    """A permission for optional work (pay links) the key lacks, and what that stops."""

    consequence: str


class StoreAccess(Result):
    """A store the key sees, and what the key lacks there."""

    id: str
    name: str
    missing: list[MissingPermission]
    ready: bool
    api_key: str  # "server" or "own"
    warnings: list[PermissionWarning]


class StoreAccessProblem(Result):
    """A store with its own key that could not be read with it."""

    id: str
    name: str
    ready: bool
    api_key: str
    missing: list[MissingPermission]
    problem: str


class Connected(Result):
    url: str
    server_version: str | None
    key_label: str | None
    granted: list[str]
    features: list[str]
    stores: list[StoreAccess]
    selected: list[str]


class VisibleStores(Result):
    url: str | None
    features: list[str]
    stores: list[StoreAccess | StoreAccessProblem]
    selected: list[str]


class Webhook(Result):
    id: str
    url: str
    events: list[str]


class FollowedStore(Result):
    id: str
    name: str
    webhook: Webhook | None  # None without the webhooks feature
    api_key: str
    api_key_label: str | None


class Followed(Result):
    stores: list[FollowedStore]
    removed: list[str]


class Unfollowed(Result):
    store_id: str
    webhook_deleted: bool


class LastDelivery(Result):
    at: int | None
    status: str | None
    http_code: int | None
    ok: bool
    error: str | None


class WebhookHealth(Result):
    """Our webhook at a store, and BTCPay's own view of it."""

    id: str
    url: str
    health: str


class WebhookDeliveries(WebhookHealth):
    """BTCPay answered: its last delivery to us (None: disabled, or none yet)."""

    last_delivery: LastDelivery | None


class StoreStatus(Result):
    """A followed store: its key, webhook health, deliveries, ledger and its local settings."""

    id: str
    name: str
    api_key: str
    api_key_label: str | None
    error: str | None
    webhook: WebhookHealth | WebhookDeliveries | None
    deliveries_received: int
    last_delivery_received_at: int | None
    refused_last_24h: int
    invoices: int
    polled_until: int | None
    permission_warnings: list[PermissionWarning]
    mode: str | None
    deposit_as: str | None
    mode_source: str | None
    mapping: dict[str, str | None] | None


class RecentRefusal(Result):
    """One refused webhook as recorded: the store id and client are clipped, never trusted."""

    at: int
    reason: str
    http_status: int
    store_id: str | None
    client: str | None


class WebhookRefusals(Result):
    """Refused webhooks: the last 24 h by reason (all stores, followed or not) and the most recent few."""

    last_24h: dict[str, int]
    recent: list[RecentRefusal]


class BTCPayStatus(Result):
    url: str | None
    features: list[str]
    key_label: str | None
    server_version: str | None
    synchronized: bool | None
    setup: dict[str, Any] | None
    stores: list[StoreStatus]
    refusals: WebhookRefusals
    state: str
    detail: str


class BTCPayNotConfigured(Result):
    state: str
    detail: str
    proposed_url: str | None
    proposed_source: str | None
    setup: dict[str, Any] | None
    stores: list[StoreStatus]  # none
    refusals: WebhookRefusals  # deliveries for stores we do not follow are refused even before setup


class SecretRotated(Result):
    store_id: str
    webhook_id: str
    rotated_at: int


class Disconnected(Result):
    disconnected: bool  # True
    url: str | None
    webhooks_left: list[str]  # stores whose webhook could not be deleted


class NotDisconnected(Result):
    disconnected: bool  # False: there was nothing to disconnect
    detail: str
    webhooks_left: list[str]


class StorePolled(Result):
    listed: int
    reread: int
    changed: int


class StoreRefused(Result):
    error: str


class Polled(Result):
    stores: dict[str, StorePolled | StoreRefused]
    state: str


class PollFailed(Polled):
    error: str  # BTCPay down or the server-wide key refused: the run stopped here


class NothingPolled(Result):
    state: str
    stores: int  # 0: no store followed


class PollNotConfigured(Result):
    state: str


PollSummary = Polled | PollFailed | NothingPolled | PollNotConfigured


class StoreImported(Result):
    listed: int
    changed: int


class HistoryImported(Result):
    since: str
    stores: dict[str, StoreImported]


def register_methods(server: ControlServer, services: Services) -> None:
    @server.method("setup.btcpay.connect", role=Role.ADMIN, params=ConnectParams, part="btcpay",
                   audit="setup.btcpay.connect")
    async def connect(ctx: CallContext, url: str, api_key: Secret, features: list[str] | None) -> Connected:
        """Check BTCPay and the API key; report missing permissions and the stores the key sees."""
        ctx.audit(subject=url)
        report = Connected.model_validate(await btcpay_setup.connect(ctx.part, url, api_key, features))
        ctx.audit(subject=url, detail={"features": report.features, "stores_visible": len(report.stores)})
        return report

    @server.method("setup.btcpay.select_stores", role=Role.ADMIN, params=SelectParams, part="btcpay",
                   audit="setup.btcpay.select_stores")
    async def select_stores(ctx: CallContext, store_ids: list[str], keep_others: bool,
                            api_key: Secret | None) -> Followed:
        """Follow these stores: register our webhook at each (or adopt the existing one); with `api_key`,
        the one store gets its own key."""
        ctx.audit(subject=",".join(store_ids))
        result = Followed.model_validate(
            await btcpay_setup.select_stores(ctx.part, store_ids, keep_others=keep_others, api_key=api_key)
        )
        ctx.audit(subject=",".join(store_ids), detail={"removed": result.removed, "own_key": api_key is not None})
        return result

    @server.method("btcpay.unfollow", role=Role.ADMIN, params=StoreParams, part="btcpay", audit="btcpay.unfollow")
    async def unfollow(ctx: CallContext, store_id: str) -> Unfollowed:
        """Stop following one store: delete our webhook there and forget its own key; the others stay."""
        ctx.audit(subject=store_id)
        result = Unfollowed.model_validate(await btcpay_setup.unfollow_store(ctx.part, store_id))
        ctx.audit(subject=store_id, detail={"webhook_deleted": result.webhook_deleted})
        return result

    @server.method("btcpay.status", role=Role.VIEWER, part="btcpay")
    async def status(ctx: CallContext) -> BTCPayStatus | BTCPayNotConfigured:
        """Reachability, followed stores (with mode and mapping), webhook health, or the proposed URL."""
        status = await btcpay_status.report(ctx.part)
        configured = {s["id"]: s for s in await followed_stores(services)}
        for entry in status["stores"]:
            settings = configured.get(entry["id"], {})
            entry.update({k: settings.get(k) for k in ("mode", "deposit_as", "mode_source", "mapping")})
        return TypeAdapter(BTCPayStatus | BTCPayNotConfigured).validate_python(status)

    @server.method("btcpay.rotate_webhook_secret", role=Role.ADMIN, params=StoreParams, part="btcpay",
                   audit="btcpay.rotate_webhook_secret")
    async def rotate(ctx: CallContext, store_id: str) -> SecretRotated:
        """Give a store's webhook a new secret (old signatures refused afterwards)."""
        ctx.audit(subject=store_id)
        result = SecretRotated.model_validate(await btcpay_setup.rotate_webhook_secret(ctx.part, store_id))
        ctx.audit(subject=store_id, detail={"webhook_id": result.webhook_id})
        return result

    @server.method("btcpay.disconnect", role=Role.ADMIN, part="btcpay", audit="btcpay.disconnect")
    async def disconnect(ctx: CallContext) -> Disconnected | NotDisconnected:
        """Delete our webhooks at BTCPay (if reachable) and forget the API key; the ledger stays."""
        result = await btcpay_setup.disconnect(ctx.part)
        ctx.audit(subject=result.get("url"), detail={"webhooks_left": result["webhooks_left"]},
                  outcome="ok" if result["disconnected"] else "noop")
        return TypeAdapter(Disconnected | NotDisconnected).validate_python(result)

    @server.method("btcpay.poll_now", role=Role.ADMIN, part="intake")
    async def poll_now(ctx: CallContext) -> PollSummary:
        """Poll every followed store now and return what changed."""
        return TypeAdapter(PollSummary).validate_python(await ctx.part.poll_all())

    @server.method("btcpay.stores", role=Role.VIEWER, part="btcpay")
    async def stores(ctx: CallContext) -> VisibleStores:
        """The stores the stored API key can see, with missing permissions per store."""
        return VisibleStores.model_validate(await btcpay_setup.stores(ctx.part))

    @server.method("btcpay.import_history", role=Role.ADMIN, params=HistoryParams, part="intake",
                   audit="btcpay.import_history")
    async def import_history(ctx: CallContext, since: date) -> HistoryImported:
        """Read every invoice created since a date into the ledger (the sync part queues what is owed)."""
        ctx.audit(detail={"since": since.isoformat()})
        start = int(datetime.combine(since, datetime.min.time(), tzinfo=UTC).timestamp())
        return HistoryImported(since=since.isoformat(), stores=await ctx.part.import_history(start))


PART = Part("btcpay", stage=btcpay_stage, methods=register_methods)
