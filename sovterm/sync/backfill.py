"""Backfill: historical settled invoices into QuickBooks, resumable, never twice.

A backfill since a date (on first connection, with the date the wizard stored, or `sovterm sync
backfill --since DATE`) first brings BTCPay's history since then into the ledger (each invoice new to
the ledger is queued by the BTCPay hook as it lands), then queues a `backfill` job for every settled
invoice since then that has no posting and no job yet, in chunks. The engine works them like any job:
its sender packs them into batch requests (30 documents each, within Intuit's 40 batches a minute)
and, alongside, single requests within the 500 requests a minute; history is looked up by marker first
(50 markers a query) so nothing already in QuickBooks is posted again. State and progress live in `kv`:
a restart resumes (the queued jobs are durable; the import is redone only if it had not finished);
`pause` stops the engine and with it the backfill.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from sovterm.sync import queue, records
from sovterm.sync.engine import SyncEngine

log = logging.getLogger("sovterm.sync.backfill")

STATE_KEY = records.BACKFILL_KEY
SETUP_SINCE_KEY = "setup:backfill_since"
CHUNK = 500
_SETTLED_SINCE = (
    "FROM invoices i WHERE (i.status = 'Settled' OR (i.status = 'Expired' AND i.additional_status IN "
    "('PaidLate', 'PaidPartial'))) AND COALESCE(i.paid_at, i.created_at) >= ? "
    "AND NOT EXISTS (SELECT 1 FROM sync_postings p WHERE p.store_id = i.store_id AND p.invoice_id = i.invoice_id)"
    # daily summary mode: an invoice with entries is on its way to its day's document
    " AND NOT EXISTS (SELECT 1 FROM sync_summary_entries e WHERE e.store_id = i.store_id "
    "AND e.invoice_id = i.invoice_id)"
)
# Each invoice is handed to the engine once per backfill: one whose job ended without a posting waits
# for BTCPay (a payment still confirming), and its next webhook or changed snapshot queues it again.
CANDIDATES = (
    f"SELECT i.store_id, i.invoice_id {_SETTLED_SINCE} "
    "AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.store_id = i.store_id AND j.invoice_id = i.invoice_id "
    "AND (j.state IN ('queued', 'running', 'held', 'dead') OR (j.kind = 'backfill' AND j.created_at >= ?))) "
    "ORDER BY COALESCE(i.paid_at, i.created_at), i.invoice_id LIMIT ?"
)
#: Brings BTCPay's invoices created since a unix time into the ledger; returns how many it listed.
HistoryImport = Callable[[int], Awaitable[int]]


def day_start(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp())


async def state(db: Any) -> dict[str, Any] | None:
    return await records.kv_get(db, STATE_KEY)


async def _unposted(db: Any, since_s: int) -> int:
    return int((await db.fetchone(f"SELECT COUNT(*) {_SETTLED_SINCE}", (since_s,)))[0])


async def start(db: Any, since: str) -> dict[str, Any]:
    """Begin (or restart) a backfill of everything settled since `since` (YYYY-MM-DD)."""
    value = {"since": since, "state": "running", "done": 0, "total": await _unposted(db, day_start(since)),
             "imported": False, "started_at": int(time.time()), "finished_at": None}
    await records.kv_put(db, STATE_KEY, value)
    return value


class Backfill:
    def __init__(self, engine: SyncEngine, history: HistoryImport | None = None) -> None:
        self.engine = engine
        self.db = engine.db
        self.history = history

    async def maybe_autostart(self) -> bool:
        """First connection: the wizard stored a start date and no backfill ran yet."""
        since = await records.kv_get(self.db, SETUP_SINCE_KEY)
        if since and await state(self.db) is None:
            await start(self.db, str(since))
            return True
        return False

    async def run(self, max_chunks: int | None = None) -> dict[str, Any]:
        """Advance the backfill: import the history once, queue up to `max_chunks` chunks of invoices,
        and update the progress (done once nothing is left to queue or running)."""
        st = await state(self.db)
        if st is None or st["state"] != "running" or self.engine.paused:
            return st or {}
        since_s = day_start(st["since"])
        if not st.get("imported"):
            if self.history is not None:
                listed = await self.history(since_s)
                st = {**st, "total": max(int(st["total"]), await _unposted(self.db, since_s)), "listed": listed}
            st["imported"] = True
            await records.kv_put(self.db, STATE_KEY, st)
        chunks = 0
        while max_chunks is None or chunks < max_chunks:
            rows = await self.db.fetchall(CANDIDATES, (since_s, st["started_at"], CHUNK))
            if not rows:
                break
            async with self.db.transaction() as conn:
                for store_id, invoice_id in rows:
                    await queue.enqueue(conn, store_id, invoice_id, kind=queue.BACKFILL, payload={"cause": "backfill"})
            chunks += 1
            self.engine.kick()
        left = await _unposted(self.db, since_s)
        busy = (await self.db.fetchone(
            "SELECT COUNT(*) FROM sync_jobs WHERE kind = 'backfill' AND state IN ('queued', 'running')"))[0]
        total = max(int(st["total"]), left)
        st = {**st, "total": total, "done": total - left}
        if not busy and not await self.db.fetchone(CANDIDATES, (since_s, st["started_at"], 1)):
            # what is still unposted was handed over and waits for BTCPay (a payment still confirming)
            st.update(state="done", finished_at=int(time.time()), waiting=left)
        await records.kv_put(self.db, STATE_KEY, st)
        elapsed = max(time.time() - st["started_at"], 1e-6)
        rate = st["done"] / elapsed * 60
        remaining = max(int(st["total"]) - st["done"], 0)
        self.engine.bus.publish("sync.progress", done=st["done"], total=st["total"], rate=round(rate, 1),
                                eta_s=round(remaining / (rate / 60), 1) if rate > 0 else None, backfill=True)
        return st
