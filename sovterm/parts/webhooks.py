"""Control methods `webhooks.*`: what BTCPay sent to our webhook and what became of it, and BTCPay's
redeliver. A part with no stage of its own: it reads through the BTCPay connection."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from sovterm.btcpay import deliveries as webhook_deliveries
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.parts.base import Part
from sovterm.parts.btcpay import resolve_store
from sovterm.services import Services


class DeliveriesParams(BaseModel):
    model_config = {"extra": "forbid"}

    store_id: str | None = Field(default=None, max_length=64)
    count: int = Field(default=webhook_deliveries.DEFAULT_COUNT, ge=1, le=500)


class RedeliverParams(BaseModel):
    model_config = {"extra": "forbid"}

    delivery_id: str = Field(min_length=1, max_length=64)
    store_id: str | None = Field(default=None, max_length=64)


class Delivery(Result):
    store_id: str
    webhook_id: str
    delivery_id: str
    at: int | None
    http_code: int | None
    btcpay_status: str | None  # HttpSuccess, HttpError, Failed
    outcome: Literal["verified", "deduplicated", "refused", "not delivered"]
    reason: str
    event_type: str | None
    invoice_id: str | None
    payout_id: str | None


class Redelivered(Result):
    store_id: str
    delivery_id: str
    new_delivery_id: str


def register(server: ControlServer, services: Services) -> None:
    @server.method("webhooks.deliveries", role=Role.VIEWER, params=DeliveriesParams, part="btcpay")
    async def deliveries(ctx: CallContext, store_id: str | None, count: int) -> list[Delivery]:
        """BTCPay's latest deliveries to our webhook, each verified, deduplicated, refused (and why) or not
        delivered."""
        store = await resolve_store(services, store_id)
        found = await webhook_deliveries.deliveries(ctx.part.db, ctx.part.client_for_store(store), store, count)
        return [Delivery.model_validate(d) for d in found]

    @server.method("webhooks.redeliver", role=Role.ADMIN, params=RedeliverParams, part="btcpay",
                   audit="webhooks.redeliver")
    async def redeliver(ctx: CallContext, delivery_id: str, store_id: str | None) -> Redelivered:
        """Ask BTCPay to send a delivery again (it arrives as a new delivery with the same event)."""
        store = await resolve_store(services, store_id)
        ctx.audit(subject=delivery_id, detail={"store_id": store})
        done = await webhook_deliveries.redeliver(ctx.part.db, ctx.part.client_for_store(store), store, delivery_id)
        ctx.audit(subject=delivery_id, detail={"store_id": store, "new_delivery_id": done["new_delivery_id"]})
        return Redelivered.model_validate(done)


PART = Part("webhooks", methods=register)
