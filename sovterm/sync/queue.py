"""The durable job queue in SQLite.

A job is written in the same transaction as the event that caused it (`enqueue(conn, ...)`), so a
delivery acknowledged to BTCPay always has its job. Workers claim with one `UPDATE ... RETURNING`
under a lease; a claim skips every invoice that already has a running job and takes only the oldest
waiting job of an invoice, so the jobs of one invoice run in order and never two at once. A lease
that runs out (the worker died) is handed back by `requeue_expired`. A second "reconcile X" while one
is waiting adds nothing: the waiting job will read the newest snapshot anyway.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")
QUEUED, RUNNING, DONE, DEAD, HELD = "queued", "running", "done", "dead", "held"
RECONCILE, BACKFILL = "reconcile", "backfill"
JOB_COLUMNS = (
    "id", "kind", "store_id", "invoice_id", "payload", "state", "attempts", "next_run_at", "lease_owner",
    "lease_until", "last_error", "created_at", "updated_at",
)


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    store_id: str
    invoice_id: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_run_at: float
    lease_owner: str | None
    lease_until: float | None
    last_error: str | None
    created_at: int
    updated_at: int

    @classmethod
    def from_row(cls, row: Any) -> Job:
        d = dict(zip(JOB_COLUMNS, row, strict=True))
        d["payload"] = json.loads(d["payload"] or "{}")
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in JOB_COLUMNS}


async def _tx(db: Any, unit: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
    """Run `unit(conn)` in a write transaction: the engine's group commit (shared with its other writes,
    and safe when the calling task is cancelled: the write completes regardless), or `db.transaction()`."""
    if hasattr(db, "run"):
        return await db.run(unit)
    async with db.transaction() as conn:
        return await unit(conn)


async def enqueue(
    conn: aiosqlite.Connection, store_id: str, invoice_id: str, *, kind: str = RECONCILE,
    payload: dict[str, Any] | None = None, now: float | None = None,
) -> bool:
    """Add a job inside the caller's transaction; False when the same job is already waiting (queued, or
    held until QuickBooks can be written to: released, it reads the newest snapshot anyway).

    Two plain statements, not one `INSERT ... SELECT ... WHERE NOT EXISTS`: SQLite runs an insert that
    selects from its own table through temporary tables, which made every webhook's enqueue cost about
    five times as much (measured in `bench/webhook_ingest.py`)."""
    async with conn.execute(_HELD, (store_id, invoice_id, kind)) as cur:
        if await cur.fetchone() is not None:
            return False
    now = time.time() if now is None else now
    cur = await conn.execute(
        "INSERT INTO sync_jobs(kind, store_id, invoice_id, payload, state, next_run_at, created_at, updated_at) "
        "VALUES(?, ?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT DO NOTHING",
        (kind, store_id, invoice_id, _payload_json(payload or {}), now, int(now), int(now)),
    )
    return cur.rowcount == 1


_payload_json = json.JSONEncoder(sort_keys=True).encode  # one encoder, not one per json.dumps call
_HELD = "SELECT 1 FROM sync_jobs WHERE store_id = ? AND invoice_id = ? AND kind = ? AND state = 'held' LIMIT 1"

_CLAIMABLE = """
SELECT j.id FROM sync_jobs j
WHERE j.state = 'queued' AND j.next_run_at <= :now
  AND NOT EXISTS (SELECT 1 FROM sync_jobs r WHERE r.store_id = j.store_id AND r.invoice_id = j.invoice_id
                  AND r.state = 'running')
  AND j.id = (SELECT MIN(o.id) FROM sync_jobs o WHERE o.store_id = j.store_id AND o.invoice_id = j.invoice_id
              AND o.state = 'queued')
ORDER BY j.next_run_at, j.id LIMIT :limit
"""


async def claim(db: Any, owner: str, *, limit: int, lease_s: float, now: float | None = None) -> list[Job]:
    """Atomically lease up to `limit` runnable jobs (one per invoice) to `owner` (`db`: a Database or
    the engine's GroupCommit)."""
    if limit <= 0:
        return []
    now = time.time() if now is None else now

    async def unit(conn: aiosqlite.Connection) -> list[Any]:
        async with conn.execute(
            f"UPDATE sync_jobs SET state = 'running', lease_owner = :owner, lease_until = :until, "
            f"updated_at = :now_i WHERE id IN ({_CLAIMABLE}) RETURNING {', '.join(JOB_COLUMNS)}",
            {"owner": owner, "until": now + lease_s, "now": now, "now_i": int(now), "limit": limit},
        ) as cur:
            return list(await cur.fetchall())

    rows = await _tx(db, unit)
    return sorted((Job.from_row(r) for r in rows), key=lambda j: j.id)


async def renew(db: Any, job_id: int, owner: str, lease_s: float, now: float | None = None) -> bool:
    """Extend a lease we still hold; False if it was taken from us (then stop working on it)."""
    now = time.time() if now is None else now

    async def unit(conn: aiosqlite.Connection) -> int:
        cur = await conn.execute(
            "UPDATE sync_jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
            (now + lease_s, job_id, owner),
        )
        return cur.rowcount

    return await _tx(db, unit) == 1


async def requeue_expired(db: Any, now: float | None = None) -> int:
    """Return running jobs whose lease ran out (their worker died) to the queue; the reaper calls this."""
    now = time.time() if now is None else now
    return await db.write(
        "UPDATE sync_jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, next_run_at = ?, "
        "updated_at = ? WHERE state = 'running' AND lease_until < ? "
        "AND NOT EXISTS (SELECT 1 FROM sync_jobs q WHERE q.store_id = sync_jobs.store_id "
        "AND q.invoice_id = sync_jobs.invoice_id AND q.kind = sync_jobs.kind AND q.state = 'queued')",
        (now, int(now), now),
    ) + await db.write(
        # a waiting twin already exists: the expired one is superseded by it
        "UPDATE sync_jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, last_error = "
        "'lease expired; superseded by a waiting job', updated_at = ? WHERE state = 'running' AND lease_until < ?",
        (int(now), now),
    )


async def complete(conn: aiosqlite.Connection, job: Job, owner: str, now: float | None = None) -> None:
    """Mark done inside the transaction that records the job's results."""
    now = time.time() if now is None else now
    await conn.execute(
        "UPDATE sync_jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, last_error = NULL, "
        "updated_at = ? WHERE id = ? AND lease_owner = ?",
        (int(now), job.id, owner),
    )


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full-ish jitter: base·2^(attempt-1), capped, times 0.5–1.5."""
    r = (rng or random).random()
    return min(max_s, base_s * 2 ** max(0, attempt - 1)) * (0.5 + r)


async def _release(db: Any, job: Job, owner: str, sets: str, params: tuple[Any, ...]) -> None:
    await _tx(db, lambda conn: _release_in(conn, job, owner, sets, params))


async def _release_in(conn: aiosqlite.Connection, job: Job, owner: str, sets: str, params: tuple[Any, ...]) -> None:
    """Leave the running state; if a twin is already waiting, this one is folded into it."""
    async with conn.execute(
        "SELECT id FROM sync_jobs WHERE store_id = ? AND invoice_id = ? AND kind = ? AND state = 'queued' AND id != ?",
        (job.store_id, job.invoice_id, job.kind, job.id),
    ) as cur:
        twin = await cur.fetchone()
    if twin is not None and "'queued'" in sets:
        await conn.execute(
            "UPDATE sync_jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, last_error = ?, "
            "updated_at = ? WHERE id = ? AND lease_owner = ?",
            (f"folded into job {twin[0]}", int(time.time()), job.id, owner),
        )
        return
    await conn.execute(
        f"UPDATE sync_jobs SET {sets}, lease_owner = NULL, lease_until = NULL, updated_at = ? "
        "WHERE id = ? AND lease_owner = ?",
        (*params, int(time.time()), job.id, owner),
    )


async def retry_later(db: Any, job: Job, owner: str, error: str, delay_s: float, now: float | None = None) -> None:
    now = time.time() if now is None else now
    await _release(db, job, owner, "state = 'queued', attempts = attempts + 1, next_run_at = ?, last_error = ?",
                   (now + delay_s, error[:2000]))


async def defer(db: Any, job: Job, owner: str, until: float) -> None:
    """Back to the queue until a moment (a summary day that has not closed yet), no attempt burnt."""
    await _release(db, job, owner, "state = 'queued', next_run_at = ?", (until,))


async def kill(db: Any, job: Job, owner: str, error: str, *, count_attempt: bool = True) -> None:
    """Dead-letter: kept with its reason until the operator retries it."""
    extra = ", attempts = attempts + 1" if count_attempt else ""
    await _release(db, job, owner, f"state = 'dead', last_error = ?{extra}", (error[:2000],))


async def kill_in(conn: aiosqlite.Connection, job: Job, owner: str, error: str) -> None:
    await _release_in(conn, job, owner, "state = 'dead', attempts = attempts + 1, last_error = ?", (error[:2000],))


async def hold(db: Any, job: Job, owner: str, reason: str) -> None:
    """Park without burning an attempt until QuickBooks can be written to again."""
    await _release(db, job, owner, "state = 'held', last_error = ?", (reason[:2000],))


async def hold_queued(db: Any, reason: str, now: float | None = None) -> int:
    """QuickBooks cannot be written to: park every runnable job at once, without burning attempts."""
    now = time.time() if now is None else now
    return await db.write(
        "UPDATE sync_jobs SET state = 'held', last_error = ?, updated_at = ? WHERE state = 'queued' AND next_run_at <= ?",
        (reason[:2000], int(now), now),
    )


async def release_held(db: Any, now: float | None = None, *, recheck: tuple[str, float] | None = None) -> int:
    """Held jobs go back to the queue (one per invoice and kind; extra ones are folded). `recheck`
    (reason prefix, seconds): jobs held for that reason go back only once they have waited that long, so a
    posting held for the operator stays held (and listed as such) between its periodic re-checks."""
    now = time.time() if now is None else now
    due = "state = 'held'"
    args: tuple[Any, ...] = ()
    if recheck is not None:
        due += " AND (last_error IS NULL OR last_error NOT LIKE ? OR updated_at <= ?)"
        args = (recheck[0] + "%", int(now - recheck[1]))
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE sync_jobs SET state = 'done', last_error = 'folded into a waiting job', updated_at = ? "
            f"WHERE {due} AND EXISTS (SELECT 1 FROM sync_jobs q WHERE q.store_id = sync_jobs.store_id "
            "AND q.invoice_id = sync_jobs.invoice_id AND q.kind = sync_jobs.kind AND q.state = 'queued')",
            (int(now), *args),
        )
        cur = await conn.execute(
            f"UPDATE sync_jobs SET state = 'queued', next_run_at = ?, updated_at = ? WHERE {due} AND id IN "
            f"(SELECT MIN(id) FROM sync_jobs WHERE {due} GROUP BY store_id, invoice_id, kind)",
            (now, int(now), *args, *args),
        )
        n = cur.rowcount
        await conn.execute(
            f"UPDATE sync_jobs SET state = 'done', last_error = 'folded into a waiting job', updated_at = ? "
            f"WHERE {due}", (int(now), *args),
        )
    return n


async def retry_dead(db: Any, job_id: int | None = None, now: float | None = None) -> int:
    """Operator retry: dead job(s) back to the queue with a fresh attempt count."""
    now = time.time() if now is None else now
    where = "state = 'dead'" + (" AND id = ?" if job_id is not None else "")
    params: tuple[Any, ...] = (now, int(now)) + ((job_id,) if job_id is not None else ())
    async with db.transaction() as conn:
        rows = await (await conn.execute(
            f"SELECT id, store_id, invoice_id, kind FROM sync_jobs WHERE {where}",
            params[2:],
        )).fetchall()
        n = 0
        for jid, store_id, invoice_id, kind in rows:
            async with conn.execute(
                "SELECT 1 FROM sync_jobs WHERE store_id = ? AND invoice_id = ? AND kind = ? AND state = 'queued'",
                (store_id, invoice_id, kind),
            ) as cur:
                waiting = await cur.fetchone()
            new_state = "done" if waiting else "queued"
            await conn.execute(
                "UPDATE sync_jobs SET state = ?, attempts = 0, next_run_at = ?, updated_at = ?, "
                "last_error = CASE WHEN ? = 'done' THEN 'retried: folded into a waiting job' ELSE last_error END "
                "WHERE id = ?",
                (new_state, now, int(now), new_state, jid),
            )
            n += 1
    return n


async def counts(db: Any) -> dict[str, int]:
    rows = await db.fetchall("SELECT state, COUNT(*) FROM sync_jobs GROUP BY state")
    out = {s: 0 for s in (QUEUED, RUNNING, DONE, DEAD, HELD)}
    out.update({r[0]: int(r[1]) for r in rows})
    return out


async def jobs_in_state(db: Any, state: str, limit: int = 200) -> list[Job]:
    rows = await db.fetchall(
        f"SELECT {', '.join(JOB_COLUMNS)} FROM sync_jobs WHERE state = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
        (state, limit),
    )
    return [Job.from_row(r) for r in rows]


async def get(db: Any, job_id: int) -> Job | None:
    row = await db.fetchone(f"SELECT {', '.join(JOB_COLUMNS)} FROM sync_jobs WHERE id = ?", (job_id,))
    return None if row is None else Job.from_row(row)
