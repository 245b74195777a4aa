"""Control methods `payouts.*` and the payouts part (mirror service, poll loop, webhook handler)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, Field

from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import CaseResult, Part, audit_recorder
from sovterm.payouts.service import PayoutService
from sovterm.services import Services


class ListParams(BaseModel):
    include_final: bool = True


class PayoutIdParams(BaseModel):
    payout_id: str = Field(min_length=1, max_length=64)


class Payout(Result):
    """A payout as the mirror holds it: exact decimals as strings, satoshis when known."""

    store_id: str
    payout_id: str
    state: str
    revision: int
    original_amount: str | None
    original_currency: str | None
    payout_amount: str | None
    payout_currency: str | None
    amount_sats: int | None
    payment_method: str | None
    destination: str | None
    pull_payment_id: str | None
    pull_payment_name: str | None
    metadata: dict[str, Any]
    created_at: int | None
    completed_at: int | None
    updated_at: int


class ListedPayout(Payout):
    pending_approval_by: str | None  # the first admin of a four-eyes approval, at this revision
    needs_four_eyes: bool


class PayoutAction(Payout, CaseResult):
    result: Literal["approved", "pending", "cancelled", "marked_paid"]
    message: str | None = None  # pending only: what the approval still needs


class PayoutPoll(Result):
    stores: int
    new: int
    changed: int
    failed_stores: int


def register_methods(server: ControlServer, services: Services) -> None:
    @server.method("payouts.list", role=Role.VIEWER, params=ListParams, part="payouts")
    async def payouts_list(ctx: CallContext, include_final: bool) -> list[ListedPayout]:
        """The mirrored payouts of the selected stores, newest first."""
        return [ListedPayout.model_validate(p) for p in await ctx.part.list(include_final=include_final)]

    @server.method("payouts.refresh", role=Role.VIEWER, part="payouts")
    async def payouts_refresh(ctx: CallContext) -> PayoutPoll:
        """Re-read every selected store's payouts from BTCPay now."""
        return PayoutPoll.model_validate(await ctx.part.poll())

    @server.method("payouts.approve", role=Role.ADMIN, params=PayoutIdParams, part="payouts", audit="payout.approve")
    async def payouts_approve(ctx: CallContext, payout_id: str) -> PayoutAction:
        """Approve a payout at the revision the mirror shows (above the four-eyes amount: two admins)."""
        done = await ctx.part.approve(payout_id, actor=ctx.peer.user, audit=audit_recorder(ctx))
        return PayoutAction.model_validate(done)

    @server.method("payouts.cancel", role=Role.ADMIN, params=PayoutIdParams, part="payouts", audit="payout.cancel")
    async def payouts_cancel(ctx: CallContext, payout_id: str) -> PayoutAction:
        """Cancel a payout that has not been paid."""
        return PayoutAction.model_validate(await ctx.part.cancel(payout_id, audit=audit_recorder(ctx)))

    @server.method("payouts.mark_paid", role=Role.ADMIN, params=PayoutIdParams, part="payouts",
                   audit="payout.mark_paid")
    async def payouts_mark_paid(ctx: CallContext, payout_id: str) -> PayoutAction:
        """Record an approved payout as paid (sent outside BTCPay's own processors)."""
        return PayoutAction.model_validate(await ctx.part.mark_paid(payout_id, audit=audit_recorder(ctx)))


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
