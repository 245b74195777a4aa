"""The sync part in the daemon: its stage (the engine and the service that BTCPay intake and the payout
mirror hand work to, see `parts/intake.py`), its loop, and the `sync.*`, `setup.mode` and `reconcile`
control methods."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sovterm.btcpay import ledger
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayNotFound
from sovterm.btcpay.models import (
    PaymentMethodKind,
    btc_to_sats,
    payment_method_kind,
    payout_proof_reference,
)
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.parts.btcpay import require_followed, resolve_store
from sovterm.qbo.client import QBOClient
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.postings import CurrencyContext
from sovterm.services import Services
from sovterm.sync import payouts, reconcile, records, summary
from sovterm.sync.engine import EngineSettings, SyncEngine
from sovterm.sync.service import SyncService


class QBOBooks:
    """The sync engine's and the books service's view of QuickBooks, over the QuickBooks service."""

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

    async def home_currency(self) -> str:
        return (await self.currency()).home

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
        done = await services.sync.loop_run()
        # the tail of a rollback: remeasurements it took back are posted again once the sync has caught up
        if services.books is not None and services.qbo is not None and (await services.qbo.can_sync())[0]:
            done["remeasurements"] = await services.books.repost_rolled_back()
        return done

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
    mode: Literal["deposit", "invoicing", "summary"]
    store_id: str | None = None
    deposit_as: Literal["salesreceipt", "deposit"] | None = None
    # summary mode: the first store-local day summarised (default today), the store's time zone (IANA name,
    # default UTC or the one set before) and how long after local midnight a day closes for posting
    summary_from: str | None = None
    timezone: str | None = None
    close_after_min: int | None = Field(None, ge=0, le=24 * 60)


class DayParams(BaseModel):
    day: str
    store_id: str | None = None


class RangeParams(BaseModel):
    date_from: str
    date_to: str
    store_id: str | None = None  # one store's books; None: every store together


class BookParams(BaseModel):
    txid: str = Field(min_length=1, max_length=100)
    account: str = Field(min_length=1, max_length=100)
    store_id: str | None = None


class RollbackParams(BaseModel):
    date_from: str
    date_to: str
    store_id: str | None = None
    dry_run: bool = True  # safe by default: only a call that says so changes the books


class RollbackDoc(Result):
    store_id: str
    invoice_id: str
    kind: str
    seq: int
    entity: str
    qbo_id: str | None
    amount: str
    currency: str
    txn_date: str
    action: Literal["void", "delete", "refused"]  # refused: QuickBooks would not void it; it stays
    error: str | None = None  # refused: QuickBooks' words


class RollbackResult(Result):
    id: int | None  # the durable rollback's number; None for a dry run
    date_from: str
    date_to: str
    store_id: str | None
    dry_run: bool
    state: Literal["preview", "done"]
    documents: list[RollbackDoc]  # taken back (voided, or deleted where QuickBooks has no void), or refused
    busy: int  # documents in the range the sync is still writing (a rollback waits for them)
    done: int  # documents taken back
    unfinished: str | None = None  # a dry run: the interrupted rollback a call with its range would finish


class SyncStatus(Result):
    queued: int
    running: int
    dead: int
    held: int
    done: int
    unmatched: int
    review: int
    paused: bool
    last_poll_age_s: float | None
    last_posting_age_s: float | None
    backfill: dict[str, Any]  # the backfill's progress record ({"state": "none"} before the first)
    held_reason: str | None


class SyncTotals(Result):
    """Settled fiat in the most used currency: exact decimals as strings, `daily` oldest first."""

    currency: str
    today: str
    d7: str
    d30: str
    daily: list[str]


class ReviewPosting(Result):
    store_id: str
    invoice_id: str
    kind: str
    seq: int
    entity: str
    amount: str
    currency: str
    qbo_id: str | None
    txn_date: str
    review: str | None


class RecentPosting(ReviewPosting):
    status: str
    void_reason: str | None
    posted_at: int | None


class DeadJob(Result):
    job_id: int
    store_id: str
    invoice_id: str
    attempts: int
    error: str | None
    since: int


class Unmatched(Result):
    store_id: str
    invoice_id: str
    reason: str
    amount: str | None
    currency: str | None
    since: int


class Reviewed(Result):
    reviewed: int


class Retried(Result):
    retried: int


class Resolved(Result):
    invoice_id: str
    store_id: str
    resolution: dict[str, Any]  # {"qbo_invoice": doc} | {"as_deposit": true} | {"ignore": reason}


class SyncRun(Result):
    poll: dict[str, Any]  # what BTCPay's poll did (its own summary)
    jobs: int
    status: SyncStatus


class Paused(Result):
    paused: bool


class Backfill(Result):
    since: str
    state: str
    done: int
    total: int
    imported: bool
    started_at: int
    finished_at: int | None


class Mode(Result):
    store_id: str
    mode: str
    deposit_as: str | None
    summary_from: str | None = None  # summary mode: the cut-over day
    timezone: str | None = None
    close_after_s: int | None = None


class SummaryDocument(Result):
    store_id: str
    key: str  # summary:<CUR>:<YYYY-MM-DD>
    seq: int  # 0 the day's summary, 1… its adjustments
    entity: str
    amount: str
    currency: str
    status: str
    qbo_id: str | None
    review: str | None


class SummaryEntry(Result):
    store_id: str
    invoice_id: str
    currency: str
    category: str  # sale | fee | refund
    method: str
    ref: str
    amount: str  # signed
    sats: int
    doc_seq: int | None  # the document it is in; None: waiting for the day to close; -1: cancelled out


class DaySummary(Result):
    day: str
    store_id: str | None
    documents: list[SummaryDocument]
    invoices: list[SummaryEntry]


class Reconciliation(Result):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    date_from: str = Field(alias="from")
    date_to: str = Field(alias="to")
    ok: bool
    days: list[dict[str, Any]]
    differences: list[dict[str, Any]]
    wallets: list[dict[str, Any]]
    store_id: str | None


class Booked(Result):
    store_id: str
    txid: str
    sats: int
    account_id: str
    account: str | None
    direction: Literal["in", "out"]


def register(server: ControlServer, services: Services) -> None:
    @server.method("sync.status", role=Role.VIEWER, part="sync")
    async def status(ctx: CallContext) -> SyncStatus:
        """Queue counts, dead/held/unmatched, ages of the last poll and posting, backfill progress."""
        return SyncStatus.model_validate(await ctx.part.status())

    @server.method("sync.totals", role=Role.VIEWER, part="sync")
    async def totals(ctx: CallContext) -> SyncTotals:
        """Settled fiat today, over 7 and 30 days, and per day for 30 days (oldest first)."""
        return SyncTotals.model_validate(await ctx.part.totals())

    @server.method("sync.recent", role=Role.VIEWER, params=LimitParams, part="sync")
    async def recent(ctx: CallContext, limit: int) -> list[RecentPosting]:
        """The latest postings with their QuickBooks ids."""
        return [RecentPosting.model_validate(r) for r in await ctx.part.recent(limit)]

    @server.method("sync.dead", role=Role.VIEWER, part="sync")
    async def dead(ctx: CallContext) -> list[DeadJob]:
        """Dead-lettered jobs and why each failed."""
        return [DeadJob.model_validate(r) for r in await ctx.part.dead()]

    @server.method("sync.unmatched", role=Role.VIEWER, part="sync")
    async def unmatched(ctx: CallContext) -> list[Unmatched]:
        """Invoicing-mode invoices that match no QuickBooks invoice."""
        return [Unmatched.model_validate(r) for r in await ctx.part.unmatched()]

    @server.method("sync.review", role=Role.VIEWER, params=LimitParams, part="sync")
    async def review(ctx: CallContext, limit: int) -> list[ReviewPosting]:
        """Posted documents flagged for review (an overpayment, a settlement below the price) that nobody has
        marked reviewed yet, by transaction date."""
        return [ReviewPosting.model_validate(r) for r in await ctx.part.to_review(limit)]

    @server.method("sync.reviewed", role=Role.ADMIN, params=ReviewedParams, part="sync", audit="sync.reviewed")
    async def reviewed(ctx: CallContext, invoice_id: str | None, all: bool) -> Reviewed:
        """Take one invoice's flagged postings, or all of them, off the review list (who and when are kept)."""
        ctx.audit(subject=invoice_id or "all")
        if (invoice_id is None) == (not all):
            raise UserFacingError("give an invoice id or --all")
        result = await ctx.part.mark_reviewed(None if all else invoice_id, actor=ctx.peer.user)
        ctx.audit(subject=invoice_id or "all", detail=result)
        return Reviewed.model_validate(result)

    @server.method("sync.retry", role=Role.ADMIN, params=JobParams, part="sync", audit="sync.retry")
    async def retry(ctx: CallContext, job_id: int | None, all: bool) -> Retried:
        """Retry one dead job, or all of them."""
        ctx.audit(subject=str(job_id or "all"))
        if (job_id is None) == (not all):
            raise UserFacingError("give a job id or --all")
        result = await ctx.part.retry(None if all else job_id)
        ctx.audit(subject=str(job_id or "all"), detail=result)
        return Retried.model_validate(result)

    @server.method("sync.resolve", role=Role.ADMIN, params=ResolveParams, part="sync", audit="sync.resolve")
    async def resolve(ctx: CallContext, invoice_id: str, qbo_invoice: str | None, as_deposit: bool,
                      ignore: str | None) -> Resolved:
        """Decide what an unmatched invoice is: a QuickBooks invoice, a deposit, or nothing."""
        ctx.audit(subject=invoice_id)
        result = await ctx.part.resolve(invoice_id, qbo_invoice=qbo_invoice, as_deposit=as_deposit, ignore=ignore,
                                        actor=ctx.peer.user)
        ctx.audit(subject=invoice_id, detail=result["resolution"])
        return Resolved.model_validate(result)

    @server.method("sync.now", role=Role.ADMIN, part="sync")
    async def now(ctx: CallContext) -> SyncRun:
        """Poll BTCPay now, then work the queue."""
        polled = await services.intake.poll_all() if services.intake is not None else {"skipped": "no BTCPay"}
        drained = await ctx.part.engine.drain()
        return SyncRun(poll=polled, jobs=drained["jobs"], status=SyncStatus.model_validate(await ctx.part.status()))

    @server.method("sync.pause", role=Role.ADMIN, part="sync", audit="sync.pause")
    async def pause(ctx: CallContext) -> Paused:
        """Stop posting (kept across restarts) until resumed."""
        return Paused.model_validate(await ctx.part.pause())

    @server.method("sync.resume", role=Role.ADMIN, part="sync", audit="sync.resume")
    async def resume(ctx: CallContext) -> Paused:
        """Resume posting."""
        return Paused.model_validate(await ctx.part.resume())

    @server.method("sync.backfill", role=Role.ADMIN, params=BackfillParams, part="sync", audit="sync.backfill")
    async def backfill(ctx: CallContext, since: str) -> Backfill:
        """Post historical settled invoices since a date (batched, resumable)."""
        ctx.audit(subject=since)
        return Backfill.model_validate(await ctx.part.start_backfill(since))

    @server.method("sync.summary", role=Role.VIEWER, params=DayParams, part="sync")
    async def day_summary(ctx: CallContext, day: str, store_id: str | None) -> DaySummary:
        """Summary mode: one store-local day's documents and what each invoice put into them."""
        return DaySummary.model_validate(await summary.day_report(services.require_db(), day, store_id))

    @server.method("sync.rollback", role=Role.ADMIN, params=RollbackParams, part="sync", audit="sync.rollback")
    async def rollback(ctx: CallContext, date_from: str, date_to: str, store_id: str | None,
                       dry_run: bool) -> RollbackResult:
        """List every document sovterm posted dated in the range (invoices', payouts', booked wallet
        transactions', daily summaries'); unless a dry run, void them (delete where QuickBooks has no void) and
        queue their invoices, payouts and days so the next sync posts them again once.
        Durable: an interrupted rollback resumes at start or when called again with the same range."""
        subject = f"{date_from}..{date_to}" + (f" store {store_id}" if store_id else "")
        ctx.audit(subject=subject, detail={"dry_run": dry_run})
        if store_id is not None:
            await require_followed(services, store_id)
        if dry_run:
            result = await ctx.part.rollback.preview(date_from, date_to, store_id)
        else:
            result = await ctx.part.rollback.run(date_from, date_to, store_id, ctx.peer.user)
        ctx.audit(subject=subject, detail={"dry_run": dry_run, "rollback": result["id"],
                                           "documents": len(result["documents"])})
        return RollbackResult.model_validate(result)

    @server.method("setup.mode", role=Role.ADMIN, params=ModeParams, audit="setup.mode")
    async def mode(ctx: CallContext, mode: str, store_id: str | None, deposit_as: str | None,
                   summary_from: str | None, timezone: str | None, close_after_min: int | None) -> Mode:
        """Deposit, invoicing or daily summary mode (from a cut-over day), for one store or as the default.

        Summary mode: one document per currency and store-local day from `summary_from` (default today);
        invoices of earlier days keep one document each."""
        ctx.audit(subject=store_id or "default")
        if store_id is not None:
            await require_followed(services, store_id)
        db = services.require_db()
        settings = None
        if mode == "summary":
            settings = summary.settings(await records.get_mode(db, store_id or "default"), summary_from, timezone,
                                        close_after_min)
        elif summary_from or timezone or close_after_min is not None:
            raise UserFacingError("--from, --timezone and --close-after belong to summary mode",
                                  fix="leave them out, or run `sovterm setup mode summary`")
        value = await records.set_mode(db, mode, deposit_as, store_id, settings)
        if services.sync is not None:
            services.sync.engine.forget_store_settings()
        ctx.audit(subject=store_id or "default", detail=value)
        return Mode(store_id=store_id or "default", **value)

    @server.method("reconcile", role=Role.VIEWER, params=RangeParams, part="qbo")
    async def reconcile_(ctx: CallContext, date_from: str, date_to: str, store_id: str | None) -> Reconciliation:
        """Compare what BTCPay settled with what QuickBooks holds, per day, currency and invoice; and per store
        the bitcoin the ledger says it holds with BTCPay's wallet, listing transactions no document explains
        (one store's, or all)."""
        if store_id is not None:
            await require_followed(services, store_id)
        btcpay = services.btcpay
        if btcpay is not None:
            if services.intake is not None:
                await services.intake.poll_all()  # refresh the ledger first
            if services.payouts is not None:
                await services.payouts.poll()  # and the payouts the wallet paid
        client = await ctx.part.client()
        ctx_currency = await ctx.part.currency_context()
        report = await reconcile.check(services.require_db(), client, date_from, date_to, ctx_currency.home,
                                       btcpay.client_for_store if btcpay is not None else None, only_store=store_id)
        return Reconciliation.model_validate({**report.as_dict(), "store_id": store_id})

    @server.method("reconcile.book", role=Role.ADMIN, params=BookParams, part="sync", audit="reconcile.book")
    async def reconcile_book(ctx: CallContext, txid: str, account: str, store_id: str | None) -> Booked:
        """Book a wallet transaction no document explains as a Transfer to (withdrawal) or from (deposit) a
        QuickBooks balance-sheet account; posted once by the sync, valued like a BTC payout."""
        ctx.audit(subject=txid)
        if services.qbo is None or services.btcpay is None:
            raise UserFacingError("both BTCPay and QuickBooks must be connected")
        db = services.require_db()
        store_id = await resolve_store(services, store_id)
        result = await reconcile.book(db, services.btcpay.client_for_store(store_id), await services.qbo.client(),
                                      store_id, txid, account, ctx.peer.user)
        ctx.audit(subject=txid, detail=result)
        ctx.part.engine.kick()
        return Booked.model_validate(result)


PART = Part("sync", stage=sync_stage, loops=sync_loops, methods=register)
