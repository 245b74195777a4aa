"""The BTCPay part: the connection's stage and the control methods (setup, status, polls on demand).

The poll loop and the webhook route belong to the intake part (`parts/intake.py`), started later.

Methods never return the API key or a webhook secret. Changes made by an operator are audited with
their Unix user; the TUI wizard resumes from `kv` `setup:btcpay` (shown in `btcpay.status`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timezone
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, Field

from sovterm.btcpay import ledger
from sovterm.btcpay import setup as btcpay_setup
from sovterm.btcpay import status as btcpay_status
from sovterm.btcpay.intake import BTCPayIntake
from sovterm.btcpay.service import BTCPayService
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.errors import UserFacingError
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.store import audit
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


def register_methods(server: ControlServer, services: Services) -> None:
    def service() -> BTCPayService:
        assert services.btcpay is not None, "btcpay stage has not started"
        return services.btcpay

    def intake() -> BTCPayIntake:
        assert services.intake is not None, "intake stage has not started"
        return services.intake

    @server.method("setup.btcpay.connect", role=Role.ADMIN, params=ConnectParams)
    async def connect(ctx: CallContext, url: str, api_key: Secret, features: list[str] | None) -> dict[str, Any]:
        """Check BTCPay and the API key; report missing permissions and the stores the key sees."""
        report = await btcpay_setup.connect(service(), url, api_key, features)
        await audit.record(
            services.require_db(), ctx.peer.user, "setup.btcpay.connect", url,
            {"features": report["features"], "stores_visible": len(report["stores"])}, "ok",
        )
        return report

    @server.method("setup.btcpay.select_stores", role=Role.ADMIN, params=SelectParams)
    async def select_stores(ctx: CallContext, store_ids: list[str], keep_others: bool,
                            api_key: Secret | None) -> dict[str, Any]:
        """Follow these stores: register our webhook at each (or adopt the existing one); with `api_key`,
        the one store gets its own key."""
        result = await btcpay_setup.select_stores(service(), store_ids, keep_others=keep_others, api_key=api_key)
        await audit.record(
            services.require_db(), ctx.peer.user, "setup.btcpay.select_stores", ",".join(store_ids),
            {"removed": result["removed"], "own_key": api_key is not None}, "ok",
        )
        return result

    @server.method("btcpay.unfollow", role=Role.ADMIN, params=StoreParams)
    async def unfollow(ctx: CallContext, store_id: str) -> dict[str, Any]:
        """Stop following one store: delete our webhook there and forget its own key; the others stay."""
        result = await btcpay_setup.unfollow_store(service(), store_id)
        await audit.record(services.require_db(), ctx.peer.user, "btcpay.unfollow", store_id,
                           {"webhook_deleted": result["webhook_deleted"]}, "ok")
        return result

    @server.method("btcpay.status", role=Role.VIEWER)
    async def status(ctx: CallContext) -> dict[str, Any]:
        """Reachability, followed stores (with mode and mapping), webhook health, or the proposed URL."""
        status = await btcpay_status.report(service())
        configured = {s["id"]: s for s in await followed_stores(services)}
        for entry in status["stores"]:
            settings = configured.get(entry["id"], {})
            entry.update({k: settings.get(k) for k in ("mode", "deposit_as", "mode_source", "mapping")})
        return status

    @server.method("btcpay.rotate_webhook_secret", role=Role.ADMIN, params=StoreParams)
    async def rotate(ctx: CallContext, store_id: str) -> dict[str, Any]:
        """Give a store's webhook a new secret (old signatures refused afterwards)."""
        try:
            result = await btcpay_setup.rotate_webhook_secret(service(), store_id)
        except Exception as exc:
            await audit.record(
                services.require_db(), ctx.peer.user, "btcpay.rotate_webhook_secret", store_id,
                {"error": type(exc).__name__}, "failed",
            )
            raise
        await audit.record(
            services.require_db(), ctx.peer.user, "btcpay.rotate_webhook_secret", store_id,
            {"webhook_id": result["webhook_id"]}, "ok",
        )
        return result

    @server.method("btcpay.disconnect", role=Role.ADMIN)
    async def disconnect(ctx: CallContext) -> dict[str, Any]:
        """Delete our webhooks at BTCPay (if reachable) and forget the API key; the ledger stays."""
        result = await btcpay_setup.disconnect(service())
        await audit.record(
            services.require_db(), ctx.peer.user, "btcpay.disconnect", result.get("url"),
            {"webhooks_left": result["webhooks_left"]}, "ok" if result["disconnected"] else "noop",
        )
        return result

    @server.method("btcpay.poll_now", role=Role.ADMIN)
    async def poll_now(ctx: CallContext) -> dict[str, Any]:
        """Poll every followed store now and return what changed."""
        return await intake().poll_all()

    @server.method("btcpay.stores", role=Role.VIEWER)
    async def stores(ctx: CallContext) -> dict[str, Any]:
        """The stores the stored API key can see, with missing permissions per store."""
        return await btcpay_setup.stores(service())

    @server.method("btcpay.import_history", role=Role.ADMIN, params=HistoryParams)
    async def import_history(ctx: CallContext, since: date) -> dict[str, Any]:
        """Read every invoice created since a date into the ledger (the sync part queues what is owed)."""
        start = int(datetime.combine(since, datetime.min.time(), tzinfo=timezone.utc).timestamp())
        result = await intake().import_history(start)
        await audit.record(services.require_db(), ctx.peer.user, "btcpay.import_history", None,
                           {"since": since.isoformat()}, "ok")
        return {"since": since.isoformat(), "stores": result}


PART = Part("btcpay", stage=btcpay_stage, methods=register_methods)
