"""The sync part in the daemon: its stage (the engine and the service that BTCPay intake and the payout
mirror hand work to, see `parts/intake.py`), its loop, and the `sync.*`, `setup.mode` and `reconcile`
control methods."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from sovterm.btcpay import ledger
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayNotFound
from sovterm.btcpay.models import (
    PaymentMethodKind,
    btc_to_sats,
    payment_method_kind,
    payout_proof_reference,
)
from sovterm.parts.btcpay import require_followed
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.qbo.client import QBOClient
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.postings import CurrencyContext
from sovterm.services import Services
from sovterm.store import audit
from sovterm.sync import payouts, reconcile, records
from sovterm.sync.engine import EngineSettings, SyncEngine
from sovterm.sync.service import SyncService


class QBOBooks:
    """The engine's `Books` over the QuickBooks service."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def _qbo(self) -> Any:
        if self._services.qbo is None:
            raise UserFacingError("the QuickBooks part is not running")
        return self._services.qbo

    async def can_sync(self) -> tuple[bool, str]:
        if self._services.qbo is None:
            return False, "the QuickBooks part is not running"
        return await self._services.qbo.can_sync()

    async def mapping(self, store_id: str) -> StoreMapping | None:
        return await self._qbo().mapping_for(store_id)

    async def currency(self) -> CurrencyContext:
        return await self._qbo().currency_context()

    async def client(self) -> QBOClient:
        return await self._qbo().client()


class BTCPayRefunds:
    """Refund amounts from the pull payment BTCPay created for the refund."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def pull_payment(self, store_id: str, pull_payment_id: str) -> tuple[str, Decimal]:
        assert self._services.btcpay is not None
        pp = await self._services.btcpay.client_for_store(store_id).get_pull_payment(pull_payment_id)
        if pp.amount is None or not pp.currency:
            raise UserFacingError(f"BTCPay pull payment {pull_payment_id} has no amount")
        return pp.currency.upper(), pp.amount


class BTCPayWallet:
    """A payout's network fee, read from the store's wallet: the on-chain transaction its proof names
    (what left the wallet beyond the payouts it paid), or the Lightning payment's `feeAmount`."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def payout_fee(self, store_id: str, payout_id: str) -> payouts.FeeLookup:
        assert self._services.btcpay is not None
        client = self._services.btcpay.client_for_store(store_id)
        payout = await client.get_payout(store_id, payout_id)
        reference = payout_proof_reference(payout.payment_proof)
        if reference is None:
            return payouts.FeeLookup(None, None, reason="BTCPay shows no payment proof for it (marked paid by hand?)")
        lightning = payment_method_kind(payout.payout_method_id or "BTC-CHAIN") is not PaymentMethodKind.ONCHAIN
        try:
            if lightning:
                payment = await client.get_lightning_payment(store_id, reference)
                if payment.fee_amount is None:
                    return payouts.FeeLookup(reference, None, (payout_id,), "the Lightning node did not say")
                return payouts.FeeLookup(reference, payment.fee_amount, (payout_id,))
            tx = await client.get_onchain_transaction(store_id, reference)
            batch = [p for p in await client.list_payouts(store_id)
                     if p.state == "Completed" and payout_proof_reference(p.payment_proof) == reference]
            msats, why = payouts.onchain_fee_msats(
                tx.sats, [btc_to_sats(p.payout_amount) if p.payout_amount is not None and
                          (p.payout_currency or "BTC").upper() == "BTC" else None for p in batch])
            return payouts.FeeLookup(reference, msats, tuple(sorted(p.id for p in batch)), why)
        except BTCPayAuthError as exc:
            need = exc.missing_permission or ("btcpay.store.canuselightningnode" if lightning
                                              else "btcpay.store.canviewwallet")
            return payouts.FeeLookup(reference, None, (payout_id,), f"the BTCPay API key cannot read the wallet "
                                     f"(needs {need})")
        except BTCPayNotFound:
            return payouts.FeeLookup(reference, None, (payout_id,),
                                     f"the store's wallet does not know {reference}")


@asynccontextmanager
async def sync_stage(services: Services) -> AsyncIterator[None]:
    settings = services.settings.sync
    btcpay = services.btcpay
    engine = SyncEngine(services.require_db(), QBOBooks(services), EngineSettings.from_settings(settings),
                        bus=services.bus, refunds=BTCPayRefunds(services) if btcpay else None,
                        wallet=BTCPayWallet(services) if btcpay else None,
                        commit=btcpay.commit if btcpay else None)

    async def import_history(since_s: int) -> int:
        """BTCPay's invoices since then into the ledger (the intake's invoice ports queue each new one).

        The one call from sync back up to BTCPay intake, which is built after sync (it hands work to
        sync): looked up when the backfill runs, from the sync loop, once every stage is up."""
        intake = services.intake
        if intake is None:
            return 0
        listed = 0
        for store_id in await ledger.selected_stores(services.require_db()):
            listed += (await intake.poller.import_history(store_id, since_s, time.time())).listed
        return listed

    sync = SyncService(engine, import_history)
    services.sync = sync
    await sync.start(settings.interval_s)
    try:
        yield
    finally:
        await sync.stop()
        services.sync = None


def sync_loops(services: Services) -> list[LoopSpec]:
    async def run() -> dict[str, Any]:
        assert services.sync is not None
        return await services.sync.loop_run()

    return [LoopSpec("sync", services.settings.sync.interval_s, run)]


class JobParams(BaseModel):
    job_id: int | None = None
    all: bool = False


class ResolveParams(BaseModel):
    invoice_id: str
    qbo_invoice: str | None = None
    as_deposit: bool = False
    ignore: str | None = None


class ReviewedParams(BaseModel):
    invoice_id: str | None = None
    all: bool = False


class BackfillParams(BaseModel):
    since: str


class LimitParams(BaseModel):
    limit: int = Field(50, ge=1, le=1000)


class ModeParams(BaseModel):
    mode: Literal["deposit", "invoicing"]
    store_id: str | None = None
    deposit_as: Literal["salesreceipt", "deposit"] | None = None


class RangeParams(BaseModel):
    date_from: str
    date_to: str
    store_id: str | None = None  # one store's books; None: every store together


class BookParams(BaseModel):
    txid: str = Field(min_length=1, max_length=100)
    account: str = Field(min_length=1, max_length=100)
    store_id: str | None = None


def register(server: ControlServer, services: Services) -> None:
    def svc() -> SyncService:
        if services.sync is None:
            raise UserFacingError("the sync part is not running")
        return services.sync

    @server.method("sync.status", role=Role.VIEWER)
    async def status(ctx: CallContext) -> dict[str, Any]:
        """Queue counts, dead/held/unmatched, ages of the last poll and posting, backfill progress."""
        return await svc().status()

    @server.method("sync.totals", role=Role.VIEWER)
    async def totals(ctx: CallContext) -> dict[str, Any]:
        """Settled fiat today, over 7 and 30 days, and per day for 30 days (oldest first)."""
        return await svc().totals()

    @server.method("sync.recent", role=Role.VIEWER, params=LimitParams)
    async def recent(ctx: CallContext, limit: int) -> list[dict[str, Any]]:
        """The latest postings with their QuickBooks ids."""
        return await svc().recent(limit)

    @server.method("sync.dead", role=Role.VIEWER)
    async def dead(ctx: CallContext) -> list[dict[str, Any]]:
        """Dead-lettered jobs and why each failed."""
        return await svc().dead()

    @server.method("sync.unmatched", role=Role.VIEWER)
    async def unmatched(ctx: CallContext) -> list[dict[str, Any]]:
        """Invoicing-mode invoices that match no QuickBooks invoice."""
        return await svc().unmatched()

    @server.method("sync.review", role=Role.VIEWER, params=LimitParams)
    async def review(ctx: CallContext, limit: int) -> list[dict[str, Any]]:
        """Posted documents flagged for review (an overpayment, a settlement below the price) that nobody has
        marked reviewed yet, by transaction date."""
        return await svc().to_review(limit)

    @server.method("sync.reviewed", role=Role.ADMIN, params=ReviewedParams)
    async def reviewed(ctx: CallContext, invoice_id: str | None, all: bool) -> dict[str, Any]:
        """Take one invoice's flagged postings, or all of them, off the review list (who and when are kept)."""
        if (invoice_id is None) == (not all):
            raise UserFacingError("give an invoice id or --all")
        result = await svc().mark_reviewed(None if all else invoice_id, actor=ctx.peer.user)
        await audit.record(services.require_db(), ctx.peer.user, "sync.reviewed", invoice_id or "all", result, "ok")
        return result

    @server.method("sync.retry", role=Role.ADMIN, params=JobParams)
    async def retry(ctx: CallContext, job_id: int | None, all: bool) -> dict[str, Any]:
        """Retry one dead job, or all of them."""
        if (job_id is None) == (not all):
            raise UserFacingError("give a job id or --all")
        result = await svc().retry(None if all else job_id)
        await audit.record(services.require_db(), ctx.peer.user, "sync.retry", str(job_id or "all"), result, "ok")
        return result

    @server.method("sync.resolve", role=Role.ADMIN, params=ResolveParams)
    async def resolve(ctx: CallContext, invoice_id: str, qbo_invoice: str | None, as_deposit: bool,
                      ignore: str | None) -> dict[str, Any]:
        """Decide what an unmatched invoice is: a QuickBooks invoice, a deposit, or nothing."""
        result = await svc().resolve(invoice_id, qbo_invoice=qbo_invoice, as_deposit=as_deposit, ignore=ignore,
                                     actor=ctx.peer.user)
        await audit.record(services.require_db(), ctx.peer.user, "sync.resolve", invoice_id, result["resolution"], "ok")
        return result

    @server.method("sync.now", role=Role.ADMIN)
    async def now(ctx: CallContext) -> dict[str, Any]:
        """Poll BTCPay now, then work the queue."""
        polled = await services.intake.poll_all() if services.intake is not None else {"skipped": "no BTCPay"}
        drained = await svc().engine.drain()
        return {"poll": polled, **drained, "status": await svc().status()}

    @server.method("sync.pause", role=Role.ADMIN)
    async def pause(ctx: CallContext) -> dict[str, Any]:
        """Stop posting (kept across restarts) until resumed."""
        await audit.record(services.require_db(), ctx.peer.user, "sync.pause", None, {}, "ok")
        return await svc().pause()

    @server.method("sync.resume", role=Role.ADMIN)
    async def resume(ctx: CallContext) -> dict[str, Any]:
        """Resume posting."""
        await audit.record(services.require_db(), ctx.peer.user, "sync.resume", None, {}, "ok")
        return await svc().resume()

    @server.method("sync.backfill", role=Role.ADMIN, params=BackfillParams)
    async def backfill(ctx: CallContext, since: str) -> dict[str, Any]:
        """Post historical settled invoices since a date (batched, resumable)."""
        result = await svc().start_backfill(since)
        await audit.record(services.require_db(), ctx.peer.user, "sync.backfill", since, {}, "ok")
        return result

    @server.method("setup.mode", role=Role.ADMIN, params=ModeParams)
    async def mode(ctx: CallContext, mode: str, store_id: str | None, deposit_as: str | None) -> dict[str, Any]:
        """Deposit or invoicing mode, for one store or as the default."""
        if store_id is not None:
            await require_followed(services, store_id)
        value = await records.set_mode(services.require_db(), mode, deposit_as, store_id)
        if services.sync is not None:
            services.sync.engine.forget_store_settings()
        await audit.record(services.require_db(), ctx.peer.user, "setup.mode", store_id or "default", value, "ok")
        return {"store_id": store_id or "default", **value}

    @server.method("reconcile", role=Role.VIEWER, params=RangeParams)
    async def reconcile_(ctx: CallContext, date_from: str, date_to: str, store_id: str | None) -> dict[str, Any]:
        """Compare what BTCPay settled with what QuickBooks holds, per day, currency and invoice; and per store
        the bitcoin the ledger says it holds with BTCPay's wallet, listing transactions no document explains
        (one store's, or all)."""
        if store_id is not None:
            await require_followed(services, store_id)
        if services.qbo is None:
            raise UserFacingError("QuickBooks is not connected")
        btcpay = services.btcpay
        if btcpay is not None:
            if services.intake is not None:
                await services.intake.poll_all()  # refresh the ledger first
            if services.payouts is not None:
                await services.payouts.poll()  # and the payouts the wallet paid
        client = await services.qbo.client()
        ctx_currency = await services.qbo.currency_context()
        report = await reconcile.check(services.require_db(), client, date_from, date_to, ctx_currency.home,
                                       btcpay.client_for_store if btcpay is not None else None, only_store=store_id)
        return {**report.as_dict(), "store_id": store_id}

    @server.method("reconcile.book", role=Role.ADMIN, params=BookParams)
    async def reconcile_book(ctx: CallContext, txid: str, account: str, store_id: str | None) -> dict[str, Any]:
        """Book a wallet transaction no document explains as a Transfer to (withdrawal) or from (deposit) a
        QuickBooks balance-sheet account; posted once by the sync, valued like a BTC payout."""
        if services.qbo is None or services.btcpay is None:
            raise UserFacingError("both BTCPay and QuickBooks must be connected")
        db = services.require_db()
        stores = await ledger.selected_stores(db)
        if store_id is None:
            if len(stores) != 1:
                raise UserFacingError("which store's wallet?", fix="give --store STORE_ID")
            store_id = stores[0]
        elif store_id not in stores:
            raise UserFacingError(f"store {store_id} is not followed", fix="see `sovterm status` for the stores")
        result = await reconcile.book(db, services.btcpay.client_for_store(store_id), await services.qbo.client(),
                                      store_id, txid, account, ctx.peer.user)
        await audit.record(db, ctx.peer.user, "reconcile.book", txid, result, "ok")
        svc().engine.kick()
        return result


PART = Part("sync", stage=sync_stage, loops=sync_loops, methods=register)
