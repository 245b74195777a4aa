"""The rollback's durable plan without QuickBooks: an interrupted rollback is continued by the next call
with the same range (never a document voided twice), another range waits, and documents the sync is still
writing block it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sovterm.errors import UserFacingError
from sovterm.qbo.errors import QBOValidationError
from sovterm.store.db import Database
from sovterm.store.group_commit import GroupCommit
from sovterm.sync.rollback import Rollback

STORE = "S1"


async def _posting(db: Database, invoice: str, kind: str, entity: str, amount: str, day: str,
                   status: str = "posted", seq: int = 0) -> None:
    now = int(time.time())
    await db.write(
        "INSERT INTO sync_postings(store_id, invoice_id, kind, seq, entity, amount, currency, marker, request_id, "
        "body, status, qbo_id, txn_date, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, 'USD', ?, ?, '{}', ?, ?, "
        "?, ?, ?)", (STORE, invoice, kind, seq, entity, amount, f"M-{invoice}-{kind}-{seq}", "r", status,
                     f"Q{invoice}{kind}", day, now, now))


class Crash(Exception):
    pass


class FakeBooks:
    def __init__(self, crash_after: int | None = None) -> None:
        self.voided: list[str] = []
        self.crash_after = crash_after

    async def void(self, row: dict[str, Any]) -> str | None:
        self.voided.append(row["qbo_id"])
        return "1"

    def fault(self, _rollback_id: int) -> None:
        if self.crash_after is not None and len(self.voided) >= self.crash_after:
            self.crash_after = None
            raise Crash("simulated crash")


async def _statuses(db: Database) -> dict[str, str]:
    return {r[0]: r[1] for r in await db.fetchall("SELECT invoice_id || '/' || kind, status FROM sync_postings")}


async def test_the_next_call_continues_an_interrupted_rollback(db: Database) -> None:
    for inv, day in (("A", "2026-01-03"), ("B", "2026-01-04"), ("C", "2026-01-05")):
        await _posting(db, inv, "sale", "SalesReceipt", "10.00", day)
    await _posting(db, "B", "fee", "Deposit", "0.50", "2026-01-04")
    await _posting(db, "D", "sale", "SalesReceipt", "9.00", "2026-02-01")  # outside the range
    await _posting(db, "payout:P", "transfer", "Transfer", "30.00", "2026-01-04")
    books = FakeBooks(crash_after=2)
    kicks: list[int] = []
    rollback = Rollback(db, GroupCommit(db), books.void, lambda: kicks.append(1), fault=books.fault)

    preview = await rollback.preview("2026-01-01", "2026-01-31", None)
    assert [(d["invoice_id"], d["kind"], d["action"]) for d in preview["documents"]] == [
        ("A", "sale", "void"), ("B", "fee", "delete"), ("B", "sale", "void"), ("payout:P", "transfer", "delete"),
        ("C", "sale", "void")]
    assert await db.fetchone("SELECT COUNT(*) FROM sync_rollbacks") == (0,)

    with pytest.raises(Crash):
        await rollback.run("2026-01-01", "2026-01-31", None, "alice")
    state = await _statuses(db)
    assert state["A/sale"] == "voided" and state["B/fee"] == "voiding" and state["C/sale"] == "posted"
    assert (await db.fetchone("SELECT state, last_error FROM sync_rollbacks"))[0] == "running"
    with pytest.raises(UserFacingError, match="is not finished"):
        await rollback.run("2026-02-01", "2026-02-28", None, "alice")
    preview = await rollback.preview("2026-02-01", "2026-02-28", None)
    assert "rollback #1 (2026-01-01 to 2026-01-31) was interrupted (Crash: simulated crash)" in preview["unfinished"]

    done = await rollback.run("2026-01-01", "2026-01-31", None, "alice")  # the same range: continue
    assert done["done"] == 5 and kicks == [1]
    # the crash came after B's fee was voided and before its receipt: B's fee is asked again (harmless:
    # `void_document` finds it gone), A, B's receipt, C and the payout's Transfer once each
    assert books.voided == ["QAsale", "QBfee", "QBfee", "QBsale", "QCsale", "Qpayout:Ptransfer"]
    state = await _statuses(db)
    assert {k: v for k, v in state.items() if v == "voided"}.keys() == {"A/sale", "B/fee", "B/sale", "C/sale",
                                                                         "payout:P/transfer"}
    assert state["D/sale"] == "posted"
    jobs = await db.fetchall("SELECT invoice_id FROM sync_jobs WHERE state = 'queued' ORDER BY invoice_id")
    assert [j[0] for j in jobs] == ["A", "B", "C", "payout:P"]
    reasons = {r[0] for r in await db.fetchall("SELECT void_reason FROM sync_postings WHERE status = 'voided'")}
    assert reasons == {"rolled back by alice (rollback #1, 2026-01-01 to 2026-01-31)"}
    assert await rollback.resume() is None  # nothing left to resume
    trail = await db.fetchall("SELECT actor, action, subject, detail FROM audit ORDER BY id")
    assert trail == [("alice", "sync.rollback.plan", "#1 2026-01-01..2026-01-31", '{"store_id": null, "documents": 5}'),
                     ("alice", "sync.rollback.done", "#1 2026-01-01..2026-01-31", '{"done": 5, "refused": 0}')]
    assert (await rollback.preview("2026-01-01", "2026-01-31", None))["unfinished"] is None


async def test_documents_still_being_written_block_a_rollback(db: Database) -> None:
    await _posting(db, "A", "sale", "SalesReceipt", "10.00", "2026-01-03", status="pending")
    books = FakeBooks()
    rollback = Rollback(db, GroupCommit(db), books.void, lambda: None)
    with pytest.raises(UserFacingError, match="still writing 1 document"):
        await rollback.run("2026-01-01", "2026-01-31", None, "alice")
    assert books.voided == [] and await db.fetchone("SELECT COUNT(*) FROM sync_rollbacks") == (0,)


async def test_a_document_quickbooks_will_not_void_stays_posted_and_is_listed_with_why(db: Database) -> None:
    await _posting(db, "A", "sale", "SalesReceipt", "10.00", "2025-12-30")
    await _posting(db, "B", "sale", "SalesReceipt", "20.00", "2025-12-31")

    async def void(row: dict[str, Any]) -> str | None:
        if row["invoice_id"] == "A":
            raise QBOValidationError("Account Period Closed", fault_code="6210",
                                     detail="The account period has closed and the books are locked")
        return "1"

    rollback = Rollback(db, GroupCommit(db), void, lambda: None)
    done = await rollback.run("2025-12-01", "2025-12-31", None, "alice")
    assert [(d["invoice_id"], d["action"]) for d in done["documents"]] == [("A", "refused"), ("B", "void")]
    assert "6210" in done["documents"][0]["error"] and done["done"] == 1
    assert await _statuses(db) == {"A/sale": "posted", "B/sale": "voided"}  # A stays in the books, counted once
    assert (await db.fetchone("SELECT void_reason FROM sync_postings WHERE invoice_id = 'A'"))[0] is None
    assert (await db.fetchone("SELECT state FROM sync_rollbacks"))[0] == "done"  # never retried forever
