"""Held postings: those held until QuickBooks can be written to again go back at the next tick; those held
for the operator (an unmapped item) stay held, and listed as held, until their periodic re-check is due."""

from __future__ import annotations

from sovterm.store.db import Database
from sovterm.sync import items, queue


async def _held(db: Database, invoice_id: str, reason: str, at: float) -> None:
    async with db.transaction() as conn:
        await queue.enqueue(conn, "S1", invoice_id, now=at)
    [job] = await queue.claim(db, "w", limit=1, lease_s=30, now=at)
    await queue.hold(db, job, "w", reason)
    await db.write("UPDATE sync_jobs SET updated_at = ? WHERE id = ?", (int(at), job.id))


async def _states(db: Database) -> dict[str, str]:
    return dict(await db.fetchall("SELECT invoice_id, state FROM sync_jobs ORDER BY id"))


async def test_item_holds_wait_for_their_recheck_and_book_holds_do_not(db: Database) -> None:
    start = 1_000_000.0
    await _held(db, "inv-item", f"{items.HELD_PREFIX}: store S1, BTCPay item(s) 'scarf' not in QuickBooks", start)
    await _held(db, "inv-books", "QuickBooks cannot be written to: reconnect required", start)
    recheck = (items.HELD_PREFIX, items.LOOKUP_AGAIN_S)

    assert await queue.release_held(db, now=start + 5, recheck=recheck) == 1
    assert await _states(db) == {"inv-item": "held", "inv-books": "queued"}
    assert await queue.release_held(db, now=start + items.LOOKUP_AGAIN_S - 1, recheck=recheck) == 0
    assert (await _states(db))["inv-item"] == "held"

    assert await queue.release_held(db, now=start + items.LOOKUP_AGAIN_S + 1, recheck=recheck) == 1
    assert (await _states(db))["inv-item"] == "queued"
