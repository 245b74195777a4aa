"""Control methods `payouts.*` and the payouts part (mirror service, poll loop, webhook handler)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, Field

from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.payouts.service import PayoutService
from sovterm.services import Services


class ListParams(BaseModel):
    include_final: bool = True


class PayoutIdParams(BaseModel):
    payout_id: str = Field(min_length=1, max_length=64)


def register_methods(server: ControlServer, services: Services) -> None:
    def payouts() -> PayoutService:
        service = services.payouts
        if service is None:
            raise UserFacingError("the payout mirror is not running", fix="check the daemon log")
        return service

    @server.method("payouts.list", role=Role.VIEWER, params=ListParams)
    async def payouts_list(ctx: CallContext, include_final: bool) -> list[dict[str, Any]]:
        """The mirrored payouts of the selected stores, newest first."""
        return await payouts().list(include_final=include_final)

    @server.method("payouts.refresh", role=Role.VIEWER)
    async def payouts_refresh(ctx: CallContext) -> dict[str, Any]:
        """Re-read every selected store's payouts from BTCPay now."""
        return await payouts().poll()

    @server.method("payouts.approve", role=Role.ADMIN, params=PayoutIdParams)
    async def payouts_approve(ctx: CallContext, payout_id: str) -> dict[str, Any]:
        """Approve a payout at the revision the mirror shows (above the four-eyes amount: two admins)."""
        return await payouts().approve(payout_id, actor=ctx.peer.user)

    @server.method("payouts.cancel", role=Role.ADMIN, params=PayoutIdParams)
    async def payouts_cancel(ctx: CallContext, payout_id: str) -> dict[str, Any]:
        """Cancel a payout that has not been paid."""
        return await payouts().cancel(payout_id, actor=ctx.peer.user)

    @server.method("payouts.mark_paid", role=Role.ADMIN, params=PayoutIdParams)
    async def payouts_mark_paid(ctx: CallContext, payout_id: str) -> dict[str, Any]:
        """Record an approved payout as paid (sent outside BTCPay's own processors)."""
        return await payouts().mark_paid(payout_id, actor=ctx.peer.user)


@asynccontextmanager
async def payouts_stage(services: Services) -> AsyncIterator[None]:
    """Build the mirror on the BTCPay connection, handing completed payouts to sync (its Transfer). Payout
    webhooks reach `PayoutService.on_event` through the BTCPay intake, built after this part."""
    db = services.require_db()

    async def btcpay_for(store_id: str) -> Any:
        btcpay = getattr(services, "btcpay", None)
        if btcpay is None:
            raise UserFacingError("BTCPay is not connected")
        return btcpay.client_for_store(store_id)

    async def stores() -> list[str]:
        return [r[0] for r in await db.fetchall("SELECT store_id FROM btcpay_stores WHERE selected = 1")]

    service = PayoutService(db, btcpay_for, stores, lambda: services.settings.payouts.four_eyes_above_sats,
                            completed=services.sync)
    services.payouts = service
    try:
        yield
    finally:
        services.payouts = None
        await service.close()


def _loops(services: Services) -> list[LoopSpec]:
    async def run() -> dict[str, Any]:
        assert services.payouts is not None
        return await services.payouts.poll()

    return [LoopSpec("payouts.poll", services.settings.payouts.poll_interval_s, run)]


PART = Part("payouts", stage=payouts_stage, loops=_loops, methods=register_methods)
