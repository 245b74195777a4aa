"""Backfill: historical settled invoices into QuickBooks with batch requests, resumable, never twice.

Per chunk of at most 30 invoices (Intuit's batch limit): the rules say what each invoice needs; one
transaction takes a lease on each invoice (a `backfill` job row in state running, so no worker runs the
same invoice meanwhile) and writes the `pending` postings; one query looks all their markers up in
QuickBooks (`DocNumber IN (...)`); one batch creates the ones not found; one transaction records the
ids and completes the jobs. A crash anywhere leaves `pending` rows and expired leases: the reaper
requeues the jobs and the worker finishes them by marker lookup. Progress lives in `kv` so a restart
resumes where it stopped; `pause` stops between chunks.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timezone
from typing import Any

from sovterm.qbo.client import MAX_BATCH_ITEMS, quote_literal, request_id
from sovterm.qbo.errors import QBOValidationError
from sovterm.qbo.models import BatchItem, loads
from sovterm.sync import queue, rules, store
from sovterm.sync.engine import SyncEngine

log = logging.getLogger("sovterm.sync.backfill")

STATE_KEY = "sync:backfill"
SETUP_SINCE_KEY = "setup:backfill_since"
CANDIDATES = (
    "SELECT i.store_id, i.invoice_id FROM invoices i WHERE "
    "(i.status = 'Settled' OR (i.status = 'Expired' AND i.additional_status IN ('PaidLate', 'PaidPartial'))) "
    "AND COALESCE(i.paid_at, i.created_at) >= ? "
    "AND NOT EXISTS (SELECT 1 FROM sync_postings p WHERE p.store_id = i.store_id AND p.invoice_id = i.invoice_id) "
    "AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.store_id = i.store_id AND j.invoice_id = i.invoice_id "
    "AND j.state IN ('queued', 'running', 'held', 'dead')) "
    "ORDER BY COALESCE(i.paid_at, i.created_at), i.invoice_id LIMIT ?"
)


def day_start(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), timezone.utc).timestamp())


async def state(db: Any) -> dict[str, Any] | None:
    return await store.kv_get(db, STATE_KEY)


async def start(db: Any, since: str) -> dict[str, Any]:
    """Begin (or restart) a backfill of everything settled since `since` (YYYY-MM-DD)."""
    since_s = day_start(since)
    row = await db.fetchone(
        "SELECT COUNT(*) FROM invoices i WHERE (i.status = 'Settled' OR (i.status = 'Expired' AND "
        "i.additional_status IN ('PaidLate', 'PaidPartial'))) AND COALESCE(i.paid_at, i.created_at) >= ? AND NOT EXISTS "
        "(SELECT 1 FROM sync_postings p WHERE p.store_id = i.store_id AND p.invoice_id = i.invoice_id)",
        (since_s,),
    )
    value = {"since": since, "state": "running", "done": 0, "total": int(row[0]), "started_at": int(time.time()),
             "finished_at": None}
    await store.kv_put(db, STATE_KEY, value)
    return value


class Backfill:
    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def maybe_autostart(self) -> bool:
        """First connection: the wizard stored a start date and no backfill ran yet."""
        since = await store.kv_get(self.db, SETUP_SINCE_KEY)
        if since and await state(self.db) is None:
            await start(self.db, str(since))
            return True
        return False

    async def run(self, max_chunks: int | None = None) -> dict[str, Any]:
        """Work through the backfill until done, paused, or `max_chunks` chunks."""
        st = await state(self.db)
        chunks = 0
        while st is not None and st["state"] == "running" and not self.engine.paused:
            if max_chunks is not None and chunks >= max_chunks:
                break
            rows = await self.db.fetchall(CANDIDATES, (day_start(st["since"]), MAX_BATCH_ITEMS))
            if not rows:
                st = {**st, "state": "done", "finished_at": int(time.time())}
                await store.kv_put(self.db, STATE_KEY, st)
                break
            posted = await self.chunk([(r[0], r[1]) for r in rows])
            chunks += 1
            st = await state(self.db) or st
            st = {**st, "done": int(st.get("done", 0)) + posted}
            await store.kv_put(self.db, STATE_KEY, st)
            elapsed = max(time.time() - st["started_at"], 1e-6)
            rate = st["done"] / elapsed * 60
            left = max(int(st["total"]) - st["done"], 0)
            self.engine.bus.publish("sync.progress", done=st["done"], total=st["total"], rate=round(rate, 1),
                                    eta_s=round(left / (rate / 60), 1) if rate > 0 else None, backfill=True)
        return st or {}

    async def chunk(self, invoices: list[tuple[str, str]]) -> int:
        """One chunk of at most 30 invoices; returns how many documents it recorded."""
        eng = self.engine
        ctx = await eng.books.currency()
        planned: list[tuple[str, str, dict[str, Any]]] = []
        enqueue_instead: list[tuple[str, str]] = []
        for store_id, invoice_id in invoices:
            snap = await store.load_snapshot(self.db, store_id, invoice_id)
            mode = await store.get_mode(self.db, store_id)
            mapping = await eng.books.mapping(store_id)
            if snap is None:
                continue
            policy = rules.StorePolicy(mode["mode"], mode["deposit_as"], ctx.home, ctx.multicurrency)  # type: ignore[arg-type]
            plan = rules.plan(snap, [], policy)
            simple = (mode["mode"] == "deposit" and mapping is not None and not plan.refuse and len(plan.posts) == 1
                      and plan.posts[0].kind == rules.SALE
                      and snap.currency.upper() == ctx.home.upper())
            if not simple:
                enqueue_instead.append((store_id, invoice_id))  # the worker path handles everything else
                continue
            assert mapping is not None
            planned.append((store_id, invoice_id, await eng._row(snap, plan.posts[0], mapping, ctx)))
        now = time.time()
        taken: list[tuple[queue.Job, dict[str, Any]]] = []
        async with self.db.transaction() as conn:
            for store_id, invoice_id in enqueue_instead:
                await queue.enqueue(conn, store_id, invoice_id, payload={"cause": "backfill"})
            for store_id, invoice_id, row in planned:
                if not await store.insert_pending(conn, row):
                    continue
                cur = await conn.execute(
                    "INSERT INTO sync_jobs(kind, store_id, invoice_id, payload, state, next_run_at, lease_owner, "
                    "lease_until, created_at, updated_at) VALUES('backfill', ?, ?, '{}', 'running', ?, ?, ?, ?, ?) "
                    f"RETURNING {', '.join(queue.JOB_COLUMNS)}",
                    (store_id, invoice_id, now, eng.owner, now + eng.settings.lease_s, int(now), int(now)),
                )
                taken.append((queue.Job.from_row(await cur.fetchone()), row))
        if enqueue_instead:
            eng.kick()
        if not taken:
            return 0
        eng._step("backfill_after_intent")
        client = await eng.books.client()
        by_entity: dict[str, list[dict[str, Any]]] = {}
        for _, row in taken:
            by_entity.setdefault(row["entity"], []).append(row)
        found: dict[str, tuple[str, str]] = {}
        try:
            for entity, rows in by_entity.items():
                markers = ", ".join(quote_literal(r["marker"]) for r in rows)
                for doc in await client.query(f"SELECT * FROM {entity} WHERE DocNumber IN ({markers})"):
                    found[str(doc.get("DocNumber"))] = (str(doc["Id"]), str(doc["SyncToken"]))
            missing = [row for _, row in taken if row["marker"] not in found]
            items = [BatchItem(str(i), "create", row["entity"], loads(row["body"])) for i, row in enumerate(missing)]
            created: dict[str, tuple[str, str]] = {}
            refused: dict[str, str] = {}
            if items:
                results = await client.batch(items, request_id=request_id("batch", *(r["marker"] for r in missing)))
                eng._step("backfill_after_batch")
                for row, res in zip(missing, results, strict=True):
                    if res.ok and res.data:
                        created[row["marker"]] = (str(res.data["Id"]), str(res.data["SyncToken"]))
                    elif isinstance(res.error, QBOValidationError) and getattr(res.error, "fault_code", "") != "6140":
                        refused[row["marker"]] = str(res.error)
        except Exception as exc:
            # unknown outcome: hand the invoices to the workers, which look the markers up first
            async with self.db.transaction() as conn:
                for job, _ in taken:
                    await conn.execute(
                        "UPDATE sync_jobs SET state = 'queued', kind = 'reconcile', lease_owner = NULL, lease_until = NULL, "
                        "last_error = ?, updated_at = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM sync_jobs q WHERE "
                        "q.store_id = sync_jobs.store_id AND q.invoice_id = sync_jobs.invoice_id AND q.kind = 'reconcile' "
                        "AND q.state = 'queued')",
                        (f"backfill batch failed: {type(exc).__name__}: {exc}"[:2000], int(time.time()), job.id),
                    )
            eng.kick()
            log.warning("backfill chunk failed (%s); its invoices go to the workers", exc)
            return 0
        done = {**found, **created}
        recorded = 0
        async with self.db.transaction() as conn:
            for job, row in taken:
                marker = row["marker"]
                if marker in done:
                    qbo_id, token = done[marker]
                    await store.mark_posted(conn, row["store_id"], row["invoice_id"], row["kind"], row["seq"], qbo_id, token)
                    await queue.complete(conn, job, eng.owner)
                    recorded += 1
                elif marker in refused:
                    await store.drop_pending(conn, row["store_id"], row["invoice_id"], row["kind"], row["seq"])
                    await queue.kill_in(conn, job, eng.owner, refused[marker])
                else:  # no answer for this item (e.g. 6140 raced): the worker resolves it by marker
                    await conn.execute(
                        "UPDATE sync_jobs SET state = 'queued', kind = 'reconcile', lease_owner = NULL, lease_until = NULL, "
                        "updated_at = ? WHERE id = ?", (int(time.time()), job.id),
                    )
        for job, row in taken:
            if row["marker"] in done:
                eng._publish(job, "posted", [f"{row['entity']}:{done[row['marker']][0]}"])
            elif row["marker"] in refused:
                eng._publish(job, "dead", error=refused[row["marker"]])
        return recorded
