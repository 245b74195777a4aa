"""The sync engine: claims jobs, asks the rules what is owed, has it written to QuickBooks exactly once
and records it.

The engine schedules and records; it never talks to QuickBooks itself. What the plan needs from the
books, the documents' bodies and the writes all go through `sync.documents` (`Documents`).

One job, step by step (each step survives a crash before or after it):
1. finish what a crashed run left: `pending` postings are looked up by marker and sent again only if
   absent (same body, same requestid); `voiding` ones are re-read and voided if still live;
2. read refund amounts BTCPay has not told us yet (the pull payment);
3. compute the plan (pure rules) from the ledger snapshot and the postings;
4. commit the intent: `pending` rows with their exact bodies (drafted by `Documents`), `voiding` marks;
5. call QuickBooks through `Documents` (`write` packs concurrent jobs' documents into batch requests and
   looks history up by marker first; `void` voids);
6. one transaction records the QuickBooks ids and completes the job.

Many jobs are in flight at once (one per invoice); the ledger writes of jobs finishing together share
one transaction (`GroupCommit`), and a burst of kicks wakes the dispatcher once.

Failures: throttling, 5xx, timeouts and network errors retry with exponential backoff and jitter up
to `max_attempts`; QuickBooks validation faults and refusals (currency) go straight to the dead-letter
list with QuickBooks' message; "reconnect required" (or `can_sync` false) holds the whole queue, and a
store without an account mapping holds its jobs, without burning attempts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import aiohttp

from sovterm.errors import UserFacingError
from sovterm.logs import correlation
from sovterm.qbo.client import MAX_BATCH_ITEMS, QBOClient
from sovterm.qbo.errors import (
    QBOAuthError,
    QBOError,
    QBOReconnectRequired,
    QBOServerError,
    QBOThrottled,
    QBOValidationError,
)
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.postings import CurrencyContext, PostResult
from sovterm.store.group_commit import GroupCommit
from sovterm.sync import items, payouts, queue, reconcile, records, rules, summary
from sovterm.sync.documents import Documents, ExchangeRates, Refused
from sovterm.sync.queue import Job
from sovterm.sync.summary_jobs import DaySummaries

log = logging.getLogger("sovterm.sync")

CONF_TTL_S = 2.0
MIN_RATE_WINDOW_S = 1.0  # progress events give a documents-per-minute rate only over at least this long
# a setup step still missing, not a fault of the job: held (no attempt burnt) until the next tick
NO_MAPPING = ("store {store} has no QuickBooks account mapping yet: run `sovterm setup accounts --auto` "
              "(or map accounts in the TUI)")
NO_FEE_ACCOUNT = ("store {store} has no QuickBooks account for network fees collected (a mapping made before "
                  "sovterm booked them): run `sovterm setup accounts --store {store} --auto`, or map one with "
                  "--fee-collected-account NAME|ID")
NO_CASHU_ACCOUNT = ("store {store} has no QuickBooks account for Cashu ecash (a mapping made before sovterm "
                    "recognised Cashu payments): run `sovterm setup accounts --store {store} --auto`, or map one "
                    "with --cashu-account NAME|ID")


class Books(Protocol):
    """What the engine needs from the QuickBooks side (the qbo service provides it in the daemon)."""

    async def can_sync(self) -> tuple[bool, str]: ...
    async def mapping(self, store_id: str) -> StoreMapping | None: ...
    async def currency(self) -> CurrencyContext: ...
    async def client(self) -> QBOClient: ...


class RefundSource(Protocol):
    async def pull_payment(self, store_id: str, pull_payment_id: str) -> tuple[str, Decimal]: ...


class WalletFees(Protocol):
    """Where a payout's network fee is read (BTCPay's wallet and Lightning node, in the daemon)."""

    async def payout_fee(self, store_id: str, payout_id: str) -> payouts.FeeLookup: ...


class Bus(Protocol):
    def publish(self, topic: str, **data: Any) -> None: ...


class Hold(Exception):
    """QuickBooks cannot be written to right now (reconnect required, sync switched off)."""


def _missing_setup(store_id: str, fee_account: bool) -> Hold:
    return Hold((NO_FEE_ACCOUNT if fee_account else NO_MAPPING).format(store=store_id))


class _NullBus:
    def publish(self, topic: str, **data: Any) -> None:
        pass


TRANSIENT = (QBOThrottled, QBOServerError, aiohttp.ClientError, TimeoutError, ConnectionError)


@dataclass
class EngineSettings:
    workers: int = 4  # jobs in flight: `workers` batches' worth (× 30), so a burst fills batches
    max_attempts: int = 8
    backoff_base_s: float = 5.0
    backoff_max_s: float = 3600.0
    lease_s: float = 60.0
    coalesce_s: float = 0.05  # a burst of kicks (webhooks) wakes the dispatcher once
    progress_every_s: float = 0.5

    @property
    def in_flight(self) -> int:
        return self.workers * MAX_BATCH_ITEMS

    @classmethod
    def from_settings(cls, sync: Any) -> EngineSettings:
        return cls(sync.workers, sync.max_attempts, sync.backoff_base_s, sync.backoff_max_s, float(sync.lease_s))


@dataclass
class JobOutcome:
    state: str  # posted | failed | dead | held | done
    docs: list[str] = field(default_factory=list)
    error: str | None = None


class SyncEngine:
    def __init__(
        self,
        db: Any,
        books: Books,
        settings: EngineSettings | None = None,
        *,
        bus: Bus | None = None,
        refunds: RefundSource | None = None,
        wallet: WalletFees | None = None,
        fx: ExchangeRates | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        fault: Callable[[str], None] | None = None,
        commit: GroupCommit | None = None,
    ) -> None:
        self.db = db
        self.commit = commit or GroupCommit(db)  # jobs finishing together share one transaction
        self.books = books
        self.documents = Documents(books.client, fx=fx, catalog=items.Catalog(db, books.client))
        self.settings = settings or EngineSettings()
        self.bus: Bus = bus or _NullBus()
        self.refunds = refunds
        self.wallet = wallet
        self.owner = owner or f"w-{uuid.uuid4().hex[:12]}"
        self.rng = rng or random.Random()
        self._fault = fault  # tests: raise at a named step to simulate a crash there
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self.paused = False
        self.drained_done = 0
        self._drain_started: float | None = None
        self._since: float | None = None
        self._conf: dict[tuple[str, str], tuple[float, Any]] = {}
        self._progress_at = 0.0
        self.days = DaySummaries(self, missing=_missing_setup)  # summary mode's invoices and days

    def _step(self, name: str) -> None:
        if self._fault is not None:
            self._fault(name)

    # -- dispatcher ---------------------------------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    def start(self, interval_s: float = 5.0) -> None:
        self._task = asyncio.create_task(self._dispatch_forever(interval_s), name="sync-dispatcher")

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)
            for t in self._running:
                t.cancel()
        await self.documents.close()
        await self.commit.close()

    async def _dispatch_forever(self, interval_s: float) -> None:
        while True:
            try:
                await asyncio.sleep(self.settings.coalesce_s)  # let the rest of a burst arrive
                self._wake.clear()
                if not self.paused:
                    await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync dispatcher failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), interval_s)
            except TimeoutError:
                pass

    async def drain(self, max_jobs: int | None = None) -> dict[str, Any]:
        """Run runnable jobs until none is runnable: up to `in_flight` invoices at once, claimed many
        per transaction (a new claim waits until a quarter of the room is free)."""
        done = 0
        started = time.time()
        self._drain_started = started
        limit = self.settings.in_flight
        while not self.paused and (max_jobs is None or done < max_jobs):
            room = limit - len(self._running)
            if max_jobs is not None:
                room = min(room, max_jobs - done - len(self._running))
            if room > 0 and (room >= limit // 4 or not self._running):
                ok, reason = await self.books.can_sync()
                if not ok:  # park the whole queue in one statement; nothing is claimed or tried
                    held = await queue.hold_queued(self.db, reason)
                    if held:
                        self.bus.publish("sync.job", state="held", jobs=held, error=reason, job_id=None,
                                         invoice_id=None, store_id=None, qbo_doc_ids=[])
                else:
                    jobs = await queue.claim(self.commit, self.owner, limit=room, lease_s=self.settings.lease_s)
                    for job in jobs:
                        task = asyncio.create_task(self.run_job(job))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
            if not self._running:
                break
            finished, _ = await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            done += len(finished)
            self.drained_done += len(finished)
            if time.monotonic() - self._progress_at >= self.settings.progress_every_s or not self._running:
                self._progress_at = time.monotonic()
                await self._progress(done, started)
        return {"jobs": done}

    async def _progress(self, done: int, started: float) -> None:
        counts = await queue.counts(self.db)
        left = counts["queued"] + counts["running"]
        elapsed = time.time() - started
        # a rate needs a second of work behind it: one job done in 5 ms is not "12,000 a minute"
        rate = done / elapsed * 60 if elapsed >= MIN_RATE_WINDOW_S else None
        eta = left / (rate / 60) if rate else None
        self.bus.publish("sync.progress", done=done, total=done + left, rate=None if rate is None else round(rate, 1),
                         eta_s=None if eta is None else round(eta, 1))

    async def tick(self) -> dict[str, Any]:
        """The periodic part (the daemon's `sync` loop): reap leases, release held jobs, wake workers."""
        requeued = await queue.requeue_expired(self.db)
        released = 0
        counts = await queue.counts(self.db)
        if counts["held"]:
            ok, _ = await self.books.can_sync()
            if ok:
                released = await queue.release_held(self.db, recheck=(items.HELD_PREFIX, items.LOOKUP_AGAIN_S))
        self.kick()
        return {"requeued": requeued, "released": released, **{k: counts[k] for k in ("queued", "dead", "held")}}

    # -- one job ------------------------------------------------------------------------------------

    async def run_job(self, job: Job) -> JobOutcome:
        with correlation(job.invoice_id):  # the invoice's story in the log: its webhooks, re-reads and jobs
            renew = asyncio.create_task(self._renew(job))
            try:
                outcome = await self._run(job)
            finally:
                renew.cancel()
            if outcome.state == "posted":
                log.info("job %s for invoice %s posted %s", job.id, job.invoice_id, ", ".join(outcome.docs or []))
            return outcome

    async def _renew(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            if not await queue.renew(self.commit, job.id, self.owner, self.settings.lease_s):
                log.warning("lost the lease on job %s", job.id)
                return

    def _publish(self, job: Job, state: str, docs: list[str] | None = None, error: str | None = None) -> None:
        data: dict[str, Any] = {"job_id": job.id, "state": state, "invoice_id": job.invoice_id,
                                "store_id": job.store_id, "qbo_doc_ids": docs or []}
        if error:
            data["error"] = error
        self.bus.publish("sync.job", **data)

    async def _run(self, job: Job) -> JobOutcome:
        try:
            ok, reason = await self.books.can_sync()
            if not ok:
                raise Hold(reason)
            docs = await self._settle(job)
        except (Hold, QBOReconnectRequired, items.Unmapped) as exc:
            reason = str(exc)
            await queue.hold(self.commit, job, self.owner, reason)
            self._publish(job, "held", error=reason)
            return JobOutcome("held", error=reason)
        except QBOAuthError as exc:
            await queue.hold(self.commit, job, self.owner, str(exc))
            self._publish(job, "held", error=str(exc))
            return JobOutcome("held", error=str(exc))
        except (QBOValidationError, Refused) as exc:
            return await self._dead(job, str(exc))
        except UserFacingError as exc:
            if isinstance(exc, QBOError) and not isinstance(exc, QBOValidationError):
                return await self._transient(job, exc)
            return await self._dead(job, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # transient or unexpected: retry, dead after max attempts
            if not isinstance(exc, TRANSIENT):
                log.exception("job %s (%s) failed unexpectedly", job.id, job.invoice_id)
            return await self._transient(job, exc)
        self._publish(job, "posted" if docs else "done", docs)
        return JobOutcome("posted" if docs else "done", docs)

    async def _dead(self, job: Job, error: str) -> JobOutcome:
        await queue.kill(self.commit, job, self.owner, error)
        log.error("job %s for invoice %s is dead: %s", job.id, job.invoice_id, error)
        self._publish(job, "dead", error=error)
        self.bus.publish("invoice.updated", store_id=job.store_id, invoice_id=job.invoice_id, sync="dead")
        return JobOutcome("dead", error=error)

    async def _transient(self, job: Job, exc: BaseException) -> JobOutcome:
        error = f"{type(exc).__name__}: {exc}"
        if job.attempts + 1 >= self.settings.max_attempts:
            return await self._dead(job, f"gave up after {job.attempts + 1} attempts: {error}")
        delay = queue.backoff_s(job.attempts + 1, self.settings.backoff_base_s, self.settings.backoff_max_s, self.rng)
        await queue.retry_later(self.commit, job, self.owner, error, delay)
        log.warning("job %s for invoice %s failed (%s); retry in %.1f s", job.id, job.invoice_id, error, delay)
        self._publish(job, "failed", error=error)
        return JobOutcome("failed", error=error)

    # -- the accounting --------------------------------------------------------------------------

    async def _settle(self, job: Job) -> list[str]:
        """Bring one invoice's documents in QuickBooks to what the rules say it owes now (a payout's or a
        booked wallet transaction's documents, for those jobs)."""
        if payouts.is_payout_key(job.invoice_id):
            return await self._payout(job)
        if job.invoice_id.startswith(reconcile.WALLET_PREFIX):
            return await self._wallet_booking(job)
        if summary.is_key(job.invoice_id):
            return await self.days.run_day(job)
        snap = await records.load_snapshot(self.db, job.store_id, job.invoice_id)
        if snap is None:
            await self.commit.run(lambda conn: queue.complete(conn, job, self.owner))
            return []
        rows = await records.load_postings(self.db, job.store_id, job.invoice_id)
        docs: list[str] = []
        # 1. finish what a crashed run left behind
        for row in rows:
            if row["status"] == "pending":
                docs.append(await self._send(row))
            elif row["status"] == "voiding":
                await self._void(row)
        # 2. refund amounts
        learnt = False
        if self.refunds is not None:
            for refund in snap.refunds:
                if refund.amount is None:
                    currency, amount = await self.refunds.pull_payment(job.store_id, refund.pull_payment_id)
                    await records.set_refund_amount(self.commit, job.store_id, job.invoice_id,
                                                  refund.pull_payment_id, currency, amount)
                    learnt = True
        if learnt:
            snap = await records.load_snapshot(self.db, job.store_id, job.invoice_id) or snap
        if any(r["status"] in ("pending", "voiding") for r in rows):
            rows = await records.load_postings(self.db, job.store_id, job.invoice_id)
        if await self.days.takes(snap, rows):  # summary mode: the day's document carries it
            return await self.days.record_invoice(job, snap)
        # 3. the plan
        mode = await self._cached(("mode", job.store_id), lambda: records.get_mode(self.db, job.store_id))
        ctx = await self.books.currency()
        per_transaction = "deposit" if mode["mode"] == "summary" else mode["mode"]  # before the cut-over
        policy = rules.StorePolicy(per_transaction, mode["deposit_as"], ctx.home, ctx.multicurrency)  # type: ignore[arg-type]
        resolution = await records.get_resolution(self.db, job.store_id, job.invoice_id)
        link = None
        # a pay link's invoice (qboInvoiceId) pays its QuickBooks invoice in every mode
        wants_link = (policy.mode == "invoicing" or bool(snap.qbo_ref)) and (
            resolution is None or resolution.kind == "qbo_invoice")
        if wants_link:
            link = await self.documents.find_invoice(snap, resolution)
        plan = rules.plan(snap, records.as_posted(rows), policy, qbo_invoice=link, resolution=resolution)
        if plan.refuse:
            raise Refused(plan.refuse)
        mapping = None
        if plan.posts:
            mapping = await self._cached(("mapping", job.store_id), lambda: self.books.mapping(job.store_id))
            if mapping is None:
                raise Hold(NO_MAPPING.format(store=job.store_id))
        fee_posts = any(p.kind == rules.FEE for p in plan.posts)
        if mapping is not None and fee_posts and not mapping.fee_collected_account_id:
            raise Hold(NO_FEE_ACCOUNT.format(store=job.store_id))
        if mapping is not None and any(p.cashu for p in plan.posts) and not mapping.cashu_account_id:
            raise Hold(NO_CASHU_ACCOUNT.format(store=job.store_id))
        new_rows: list[dict[str, Any]] = []
        voided = {(v.kind, v.seq) for v in plan.voids}
        staying = [r for r in rows if (r["kind"], r["seq"]) not in voided]
        if mapping is not None:  # a refund reads the tax of the sales booked (or planned) before it
            for p in plan.posts:
                new_rows.append(await self.documents.for_invoice(snap, p, mapping, ctx, booked=staying + new_rows))
        # 4. the intent
        self._step("before_intent")
        if new_rows or plan.voids:
            async def intent(conn: Any) -> None:
                for v in plan.voids:
                    await records.mark_voiding(conn, job.store_id, job.invoice_id, v.kind, v.seq, v.reason)
                for r in new_rows:
                    if not await records.insert_pending(conn, r):
                        raise RuntimeError(f"posting {r['kind']}#{r['seq']} of {job.invoice_id} appeared meanwhile")

            await self.commit.run(intent)
        self._step("after_intent")
        # history (paid before sovterm first synced, or a backfill) may be in QuickBooks already
        lookup = job.kind == queue.BACKFILL or await self._is_history(snap)
        # 5. QuickBooks
        voided_tokens: dict[tuple[str, int], str | None] = {}
        if plan.voids:
            by_key = {(r["kind"], r["seq"]): r for r in await records.load_postings(self.db, job.store_id, job.invoice_id)}
            for v in plan.voids:
                voided_tokens[(v.kind, v.seq)] = await self.documents.void(by_key[(v.kind, v.seq)])
        results = []
        for r in new_rows:
            results.append((r, await self._post(r, lookup_first=lookup)))
            self._step("after_qbo")
        # 6. record and complete together
        self._step("before_complete")

        async def record(conn: Any) -> None:
            for (kind, seq), token in voided_tokens.items():
                await records.mark_voided(conn, job.store_id, job.invoice_id, kind, seq, token)
            for r, res in results:
                await records.mark_posted(conn, job.store_id, job.invoice_id, r["kind"], r["seq"], res.id, res.sync_token)
            await records.set_unmatched(conn, job.store_id, job.invoice_id, plan.unmatched, plan.recognised, snap.currency)
            await queue.complete(conn, job, self.owner)

        await self.commit.run(record)
        docs += [f"{r['entity']}:{res.id}" for r, res in results]
        if results or voided_tokens or plan.unmatched:
            self.bus.publish("invoice.updated", store_id=job.store_id, invoice_id=job.invoice_id,
                             sync=plan.label, unmatched=plan.unmatched, qbo_doc_ids=docs)
        return docs

    async def _payout(self, job: Job) -> list[str]:
        """A completed payout: one Transfer out of the bitcoin account (none for a refund's payout) and one
        Purchase for its network fee (once per transaction), through the same ledger."""
        rows = await records.load_postings(self.db, job.store_id, job.invoice_id)
        docs = [await self._send(r) for r in rows if r["status"] == "pending"]
        payout = await payouts.load(self.db, job.store_id, job.invoice_id.removeprefix(payouts.PREFIX))
        kinds = _due_again(rows, first=(payouts.TRANSFER, payouts.FEE))
        new_rows: list[dict[str, Any]] = []
        if payout is not None and payout.state == "Completed" and kinds:
            new_rows = await self._payout_rows(job, payout, kinds)
        results = []
        for r in new_rows:
            results.append((r, await self._post(r, lookup_first=False)))
            self._step("after_qbo")

        async def record(conn: Any) -> None:
            for r, res in results:
                await records.mark_posted(conn, job.store_id, job.invoice_id, r["kind"], r["seq"], res.id, res.sync_token)
            await queue.complete(conn, job, self.owner)

        await self.commit.run(record)
        return docs + [f"{r['entity']}:{res.id}" for r, res in results]

    async def _payout_rows(self, job: Job, payout: payouts.PayoutSnap, kinds: dict[str, int]) -> list[dict[str, Any]]:
        """Work out the payout's documents of `kinds` ({kind: seq}) and commit their intent (and the fee's
        wallet entry) at once."""
        mapping = await self._cached(("mapping", job.store_id), lambda: self.books.mapping(job.store_id))
        if mapping is None:
            raise Hold(NO_MAPPING.format(store=job.store_id))
        ctx = await self.books.currency()
        amount, note, review = await self._payout_value(payout, ctx.home)
        fee = (await self.wallet.payout_fee(job.store_id, payout.payout_id) if self.wallet is not None
               else payouts.FeeLookup(None, None, reason="BTCPay is not connected"))
        day = rules.day_of(payout.completed_at or int(time.time()))
        refund = await payouts.is_refund(self.db, job.store_id, payout.pull_payment_id)
        if fee.msats is None:
            review = "; ".join(x for x in (review, f"network fee not booked: {fee.reason}") if x)
        rows = []
        if not refund and payouts.TRANSFER in kinds:
            rows.append(await self.documents.payout_transfer(job.invoice_id, payout, mapping, ctx.home, amount, note,
                                                             review or None, day, kinds[payouts.TRANSFER]))
        fee_value = payouts.fee_value(fee, payout, amount)
        if fee_value is not None and fee_value > 0 and payouts.FEE in kinds:
            rows.append(self.documents.network_fee(job.invoice_id, payout, fee, fee_value, mapping, ctx, day,
                                                   kinds[payouts.FEE]))

        kept: list[dict[str, Any]] = []

        async def intent(conn: Any) -> None:
            kept.clear()
            await payouts.record_fee(conn, job.store_id, fee, payout.payout_id)
            for r in rows:
                if await records.insert_pending(conn, r):
                    kept.append(r)
                elif r["kind"] != payouts.FEE:  # a fee's marker is its transaction's: another payout took it
                    raise RuntimeError(f"the {r['kind']} of {job.invoice_id} appeared meanwhile")

        await self.commit.run(intent)
        self._step("after_intent")
        return kept

    async def _wallet_booking(self, job: Job) -> list[str]:
        """A wallet transaction the operator booked (`reconcile book`): one Transfer between the bitcoin
        account and the account they chose, valued like a BTC payout (P3) and flagged for review."""
        rows = await records.load_postings(self.db, job.store_id, job.invoice_id)
        docs = [await self._send(r) for r in rows if r["status"] == "pending"]
        txid = job.invoice_id.removeprefix(reconcile.WALLET_PREFIX)
        entry = await self.db.fetchone(
            "SELECT sats, account_id, note, happened_at, created_by FROM wallet_entries WHERE store_id = ? "
            "AND reference = ? AND kind = 'booked'", (job.store_id, txid))
        row = None
        due = _due_again(rows, first=("booked",))
        if due and entry is not None:
            sats, account_id, note, happened_at, actor = entry
            mapping = await self._cached(("mapping", job.store_id), lambda: self.books.mapping(job.store_id))
            if mapping is None:
                raise Hold(NO_MAPPING.format(store=job.store_id))
            ctx = await self.books.currency()
            found = await payouts.store_btc_rate(self.db, job.store_id, ctx.home, happened_at)
            if found is None:
                raise Refused(f"wallet transaction {txid} has no {ctx.home} value: no settled invoice gives a BTC rate",
                              fix="book it by hand in QuickBooks, or settle an invoice first so a rate is known")
            rate, invoice_id = found
            btc = Decimal(abs(sats)) / payouts.SATS_PER_BTC
            amount = rules.cents(btc * rate)
            outgoing = sats < 0
            day = rules.day_of(happened_at or int(time.time()))
            valued = f"valued at {rate} {ctx.home}/BTC, the rate of invoice {invoice_id}"
            text = (f"BTCPay wallet transaction {txid} (store {job.store_id}): {'-' if outgoing else '+'}{btc:.8f} BTC "
                    f"{note}, booked by {actor}; {valued}")
            row = self.documents.wallet_transfer(
                job.invoice_id, job.store_id, txid, amount=amount, home=ctx.home, outgoing=outgoing,
                account_id=account_id, mapping=mapping, note=text, day=day,
                review=f"wallet transaction booked by hand, {valued}: check against the day's rate", seq=due["booked"])
            await self.commit.run(lambda conn: records.insert_pending(conn, row))
            self._step("after_intent")
        result = await self._post(row, lookup_first=False) if row is not None else None

        async def record(conn: Any) -> None:
            if result is not None:
                await records.mark_posted(conn, job.store_id, job.invoice_id, "booked", row["seq"], result.id,
                                          result.sync_token)
            await queue.complete(conn, job, self.owner)

        await self.commit.run(record)
        return docs + ([f"Transfer:{result.id}"] if result is not None else [])

    async def _payout_value(self, p: payouts.PayoutSnap, home: str) -> tuple[Decimal, str, str | None]:
        """(fiat amount in the home currency, memo note, review note) of a payout."""
        if p.original_currency and p.original_currency != "BTC" and p.original_amount is not None:
            if p.original_currency == home.upper():
                return rules.cents(p.original_amount), f"{p.original_amount} {home} as requested", None
            day = rules.day_of(p.completed_at or int(time.time())).isoformat()
            rate = await self.documents.exchange_rate(p.original_currency, home, day)
            if rate is None:
                raise Refused(f"no {p.original_currency}→{home} exchange rate for {day}")
            amount = rules.cents(p.original_amount * rate)
            return amount, f"{p.original_amount} {p.original_currency} at {rate} {home}/{p.original_currency}", None
        btc = p.payout_amount if p.payout_currency == "BTC" else p.original_amount
        found = await payouts.store_btc_rate(self.db, p.store_id, home, p.completed_at) if btc is not None else None
        if btc is None or found is None:
            raise Refused(f"payout {p.payout_id} is in BTC and no {home} value is known for it",
                          fix="book it by hand in QuickBooks, or settle an invoice first so a rate is known")
        rate, invoice_id = found
        note = f"valued at {rate} {home}/BTC, the rate of invoice {invoice_id}"
        return rules.cents(btc * rate), note, f"BTC payout {note}: check against the day's rate"

    def forget_store_settings(self) -> None:
        """The operator changed a mode or mapping: read them afresh for the next job."""
        self._conf.clear()

    async def _cached(self, key: tuple[str, str], read: Callable[[], Awaitable[Any]]) -> Any:
        """A store's mode and mapping, read at most every `CONF_TTL_S` (a burst of jobs reads them once;
        a change by the operator applies within that time)."""
        now = time.monotonic()
        hit = self._conf.get(key)
        if hit is None or now - hit[0] > CONF_TTL_S or hit[1] is None:
            hit = (now, await read())
            self._conf[key] = hit
        return hit[1]

    async def _is_history(self, snap: rules.InvoiceSnap) -> bool:
        if self._since is None:
            self._since = float(await records.kv_get(self.db, records.SINCE_KEY) or 0)
        return (snap.paid_at or snap.created_at) < self._since

    async def _post(self, row: dict[str, Any], *, lookup_first: bool) -> PostResult:
        try:
            return await self.documents.write(row, lookup_first=lookup_first)
        except QBOValidationError:
            # refused outright: no document exists; drop the intent so a retry builds it afresh
            async def drop(conn: Any) -> None:
                await records.drop_pending(conn, row["store_id"], row["invoice_id"], row["kind"], row["seq"])

            await self.commit.run(drop)
            raise

    async def _send(self, row: dict[str, Any]) -> str:
        """Finish a pending posting from a crashed run (looked up first) and record it at once."""
        res = await self._post(row, lookup_first=True)

        async def record(conn: Any) -> None:
            await records.mark_posted(conn, row["store_id"], row["invoice_id"], row["kind"], row["seq"], res.id,
                                    res.sync_token)

        await self.commit.run(record)
        return f"{row['entity']}:{res.id}"

    async def _void(self, row: dict[str, Any]) -> None:
        """Finish a `voiding` posting from a crashed run and record it at once."""
        token = await self.documents.void(row)
        await self.commit.run(lambda conn: records.mark_voided(conn, row["store_id"], row["invoice_id"], row["kind"],
                                                               row["seq"], token))


def _due_again(rows: list[dict[str, Any]], *, first: tuple[str, ...]) -> dict[str, int]:
    """{kind: seq} of a payout's or booked wallet transaction's documents to write: every kind of `first` when
    nothing was ever written; after a rollback, each kind whose documents are all voided, under the next
    sequence number (a new marker). A kind still in the books (or being written or voided) is never written
    again, nor one never written at all once others were (a fee booked with another payout of its
    transaction, or none to book)."""
    if not rows:
        return dict.fromkeys(first, 0)
    out: dict[str, int] = {}
    for r in rows:
        out[r["kind"]] = max(out.get(r["kind"], -1), r["seq"] + 1)
    live = {r["kind"] for r in rows if r["status"] != "voided"}
    return {kind: seq for kind, seq in out.items() if kind not in live}
