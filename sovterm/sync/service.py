"""The sync part as the daemon runs it: the ports BTCPay intake and the payout mirror hand work to (each
enqueues a job), the engine and backfill, and the read models the control socket serves (status,
totals, recent postings, dead letters, unmatched).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiosqlite

from sovterm.btcpay.models import Invoice
from sovterm.btcpay.webhooks import WebhookEvent
from sovterm.errors import UserFacingError
from sovterm.sync import backfill as backfill_mod
from sovterm.sync import payouts, queue, records
from sovterm.sync.backfill import Backfill, HistoryImport
from sovterm.sync.engine import SyncEngine
from sovterm.sync.rollback import Rollback
from sovterm.tasks import Background

PAUSED_KEY = "sync:paused"
#: Events whose accounting consequence is "look at this invoice again" (others carry none).
RECONCILE_EVENTS = {
    "InvoiceSettled", "InvoiceInvalid", "InvoiceExpired", "InvoicePaymentSettled", "InvoiceExpiredPaidPartial",
    "InvoicePaidAfterExpiration", "InvoiceRefund", "InvoiceProcessing",
}


_TO_REVIEW = "review IS NOT NULL AND status = 'posted' AND reviewed_at IS NULL"


class SyncService:
    def __init__(self, engine: SyncEngine, history: HistoryImport | None = None) -> None:
        self.engine = engine
        self.db = engine.db
        self.backfill = Backfill(engine, history)
        self.rollback = Rollback(engine.db, engine.commit, engine.documents.void, engine.kick)
        self._background = Background(logging.getLogger("sovterm.sync"))

    # -- ports: `btcpay.intake.EventPort`/`InvoicePort`, `payouts.service.CompletedPort` ---------------
    # (each runs inside the caller's recording transaction)

    async def on_event(self, conn: aiosqlite.Connection, event: WebhookEvent) -> None:
        """A webhook delivery was recorded: enqueue its consequence in the same transaction."""
        invoice_id = getattr(event, "invoice_id", None)
        if not invoice_id or not event.store_id or event.type not in RECONCILE_EVENTS:
            return
        if event.type == "InvoiceRefund" and getattr(event, "pull_payment_id", None):
            await records.record_refund(conn, event.store_id, invoice_id, event.pull_payment_id)  # type: ignore[attr-defined]
        if await queue.enqueue(conn, event.store_id, invoice_id, payload={"cause": event.type}):
            self.engine.kick()  # nothing new when the invoice's job was already waiting or held

    async def on_invoice(self, conn: aiosqlite.Connection, store_id: str, invoice: Invoice) -> None:
        """The ledger stored a changed snapshot (webhook fetch or poll): reconcile that invoice."""
        if await queue.enqueue(conn, store_id, invoice.id, payload={"cause": f"snapshot {invoice.status}"}):
            self.engine.kick()

    async def on_payout_completed(self, conn: aiosqlite.Connection, row: dict[str, Any]) -> None:
        """The payouts part recorded a payout as Completed: queue its Transfer in the same transaction."""
        if await payouts.on_completed(conn, row):
            self.engine.kick()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, interval_s: float) -> None:
        self.engine.paused = bool(await records.kv_get(self.db, PAUSED_KEY))
        await records.mark_first_run(self.db)
        self.engine.start(interval_s)

    async def stop(self) -> None:
        await self._background.cancel()
        await self.engine.stop()

    async def loop_run(self) -> dict[str, Any]:
        """The periodic `sync` loop: reap leases, release held jobs, advance the backfill."""
        summary = await self.engine.tick()
        if not self._background and await self.rollback.unfinished() is not None and (
                await self.engine.books.can_sync())[0]:
            self._background.spawn(self.rollback.resume())  # a crash (or QuickBooks) interrupted it: carry on
        if await payouts.catch_up(self.db):
            self.engine.kick()
        if not self.engine.paused:
            await self.backfill.maybe_autostart()
            st = await backfill_mod.state(self.db)
            if st and st["state"] == "running":
                ok, _ = await self.engine.books.can_sync()
                if ok:
                    st = await self.backfill.run(max_chunks=20)
                summary["backfill"] = {k: st.get(k) for k in ("state", "done", "total")}
        return summary

    async def pause(self) -> dict[str, Any]:
        await records.kv_put(self.db, PAUSED_KEY, True)
        self.engine.paused = True
        return {"paused": True}

    async def resume(self) -> dict[str, Any]:
        await records.kv_put(self.db, PAUSED_KEY, False)
        self.engine.paused = False
        self.engine.kick()
        return {"paused": False}

    async def start_backfill(self, since: str) -> dict[str, Any]:
        try:
            datetime.strptime(since, "%Y-%m-%d")
        except ValueError:
            raise UserFacingError(f"not a date: {since!r}", fix="use YYYY-MM-DD, e.g. 2026-01-01") from None
        st = await backfill_mod.start(self.db, since)
        self.engine.kick()
        return st

    # -- read models ----------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        counts = await queue.counts(self.db)
        now = time.time()
        unmatched = (await self.db.fetchone("SELECT COUNT(*) FROM sync_unmatched WHERE resolution IS NULL"))[0]
        poll = await self.db.fetchone("SELECT MAX(updated_at) FROM kv WHERE key LIKE 'btcpay:poll_cursor:%'")
        posted = await self.db.fetchone("SELECT MAX(posted_at) FROM sync_postings")
        review = (await self.db.fetchone(f"SELECT COUNT(*) FROM sync_postings WHERE {_TO_REVIEW}"))[0]
        bf = await backfill_mod.state(self.db) or {"state": "none"}
        return {
            "queued": counts["queued"], "running": counts["running"], "dead": counts["dead"], "held": counts["held"],
            "done": counts["done"], "unmatched": int(unmatched), "review": int(review),
            "paused": self.engine.paused,
            "last_poll_age_s": None if not poll or poll[0] is None else round(now - poll[0], 1),
            "last_posting_age_s": None if not posted or posted[0] is None else round(now - posted[0], 1),
            "backfill": bf,
            "held_reason": await self._held_reason(),
        }

    async def posting_counts(self) -> list[tuple[str, str, int]]:
        """(document type, status, count) over the postings ledger, for /metrics."""
        rows = await self.db.fetchall("SELECT entity, status, COUNT(*) FROM sync_postings GROUP BY entity, status")
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def _held_reason(self) -> str | None:
        row = await self.db.fetchone("SELECT last_error FROM sync_jobs WHERE state = 'held' ORDER BY updated_at DESC LIMIT 1")
        return None if row is None else row[0]

    async def totals(self, today: datetime | None = None) -> dict[str, Any]:
        """Settled fiat per day over the last 30 days (oldest first), in the most used currency."""
        today_d = (today or datetime.now(UTC)).date()
        first = today_d - timedelta(days=29)
        start_s = int(datetime.combine(first, datetime.min.time(), UTC).timestamp())
        rows = await self.db.fetchall(
            "SELECT currency, COALESCE(paid_at, created_at), amount, paid_amount FROM invoices WHERE status = 'Settled' "
            "AND COALESCE(paid_at, created_at) >= ?",
            (start_s,),
        )
        by_currency: dict[str, int] = {}
        for r in rows:
            by_currency[r[0] or "USD"] = by_currency.get(r[0] or "USD", 0) + 1
        currency = max(by_currency, key=lambda c: by_currency[c]) if by_currency else "USD"
        daily = [Decimal(0)] * 30
        for cur, at, amount, paid in rows:
            if (cur or "USD") != currency:
                continue
            idx = (datetime.fromtimestamp(at, UTC).date() - first).days
            if 0 <= idx < 30:
                daily[idx] += Decimal(amount or paid or "0")
        q = Decimal("0.01")
        return {"currency": currency, "today": str(daily[-1].quantize(q)), "d7": str(sum(daily[-7:]).quantize(q)),
                "d30": str(sum(daily).quantize(q)), "daily": [str(d.quantize(q)) for d in daily]}

    async def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT store_id, invoice_id, kind, seq, entity, amount, currency, status, qbo_id, txn_date, review, "
            "void_reason, posted_at FROM sync_postings ORDER BY COALESCE(posted_at, created_at) DESC LIMIT ?",
            (limit,),
        )
        keys = ("store_id", "invoice_id", "kind", "seq", "entity", "amount", "currency", "status", "qbo_id",
                "txn_date", "review", "void_reason", "posted_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def to_review(self, limit: int = 200) -> list[dict[str, Any]]:
        """Posted documents flagged for review that nobody has marked reviewed yet, by transaction date."""
        rows = await self.db.fetchall(
            "SELECT store_id, invoice_id, kind, seq, entity, amount, currency, qbo_id, txn_date, review "
            f"FROM sync_postings WHERE {_TO_REVIEW} ORDER BY txn_date, invoice_id, kind, seq LIMIT ?",
            (limit,),
        )
        keys = ("store_id", "invoice_id", "kind", "seq", "entity", "amount", "currency", "qbo_id", "txn_date", "review")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def mark_reviewed(self, invoice_id: str | None, *, actor: str) -> dict[str, Any]:
        """Take one invoice's flagged postings (or, with None, all of them) off the review list."""
        where, params = _TO_REVIEW, ()
        if invoice_id is not None:
            where, params = f"{_TO_REVIEW} AND invoice_id = ?", (invoice_id,)
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                f"UPDATE sync_postings SET reviewed_at = ?, reviewed_by = ? WHERE {where}",
                (int(time.time()), actor, *params),
            )
            n = cur.rowcount
        if invoice_id is not None and n == 0:
            raise UserFacingError(f"nothing of invoice {invoice_id} is waiting for review",
                                  fix="see `sovterm sync review` for what is")
        return {"reviewed": n}

    async def dead(self, limit: int = 200) -> list[dict[str, Any]]:
        return [{"job_id": j.id, "store_id": j.store_id, "invoice_id": j.invoice_id, "attempts": j.attempts,
                 "error": j.last_error, "since": j.updated_at} for j in await queue.jobs_in_state(self.db, "dead", limit)]

    async def unmatched(self) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT store_id, invoice_id, reason, amount, currency, created_at FROM sync_unmatched "
            "WHERE resolution IS NULL ORDER BY created_at",
        )
        return [dict(zip(("store_id", "invoice_id", "reason", "amount", "currency", "since"), r, strict=True))
                for r in rows]

    async def retry(self, job_id: int | None) -> dict[str, Any]:
        if job_id is not None and (job := await queue.get(self.db, job_id)) is None:
            raise UserFacingError(f"no job {job_id}", fix="see `sovterm sync dead` for the dead jobs' ids")
        if job_id is not None and job.state != "dead":  # type: ignore[union-attr]
            raise UserFacingError(f"job {job_id} is {job.state}, not dead")  # type: ignore[union-attr]
        n = await queue.retry_dead(self.db, job_id)
        self.engine.kick()
        return {"retried": n}

    async def resolve(self, invoice_id: str, *, qbo_invoice: str | None, as_deposit: bool, ignore: str | None,
                      actor: str) -> dict[str, Any]:
        chosen = [x for x in (qbo_invoice, as_deposit or None, ignore) if x]
        if len(chosen) != 1:
            raise UserFacingError("choose exactly one of --qbo-invoice, --as-deposit, --ignore")
        row = await self.db.fetchone("SELECT store_id FROM invoices WHERE invoice_id = ?", (invoice_id,))
        if row is None:
            raise UserFacingError(f"no BTCPay invoice {invoice_id} in the ledger", fix="see `sovterm sync unmatched`")
        if qbo_invoice:
            resolution: dict[str, Any] = {"qbo_invoice": qbo_invoice}
        elif as_deposit:
            resolution = {"as_deposit": True}
        else:
            resolution = {"ignore": ignore}
        async with self.db.transaction() as conn:
            await records.resolve(conn, row[0], invoice_id, resolution, actor)
            await queue.enqueue(conn, row[0], invoice_id, payload={"cause": "resolved", "by": actor})
        self.engine.kick()
        return {"invoice_id": invoice_id, "store_id": row[0], "resolution": resolution}
