"""Rollback: take back every document sovterm posted in a date range, and post them again with the next
sync (`sovterm sync rollback --from DATE --to DATE`, docs/accounting.md "Rollback").

Why: a wrong mapping, mode or class noticed after a month of postings is fixed by rolling the month back
and letting the sync book it again with the right settings, without touching anything by hand.

Every document of the postings ledger is taken back: an invoice's sales, payments, network-fee Deposits and
refunds, a payout's Transfer and its network-fee Purchase, a wallet transaction booked by hand, and the
documents of a daily summary; and the fair-value remeasurement JournalEntries of the books part
(`books_remeasurements`), which that part posts again (from the sync loop) once the sync has re-posted
the documents of their accounts. QuickBooks voids SalesReceipt and Payment; it has no void for Deposit,
RefundReceipt, Purchase, Transfer or JournalEntry, so those are deleted (`qbo.postings.void_document`).

How it stays exactly once:
- the rollback is a durable plan (`sync_rollbacks` + one `sync_rollback_items` row per document) written
  before anything is voided; a crash leaves it `running`, and the daemon's start (or the next call with the
  same range) carries on from the first document not `done`;
- each job key's documents (an invoice's, a payout's, a booked wallet transaction's, a summary day's) are
  marked `voiding` in the postings ledger (with the reason) before QuickBooks is called, exactly as the
  engine voids: if the engine meets such a row first it finishes the void itself;
- a void or delete is harmless when already done, which is what makes a resumed run safe;
- a document QuickBooks refuses to void (a closed period, 6210; a receipt already in a bank deposit, 6540)
  is put back to `posted` and listed as refused with QuickBooks' words: it stays in the books, counted;
- the same transaction that records the voids queues the key's job again (a summary day's entries are
  freed from the documents taken back in it). The engine sees no live document of that kind and posts it
  again under the next sequence number (a new marker): each is in the books once, net. A summary day is
  one unit: all its documents are dated on it, so it is taken back whole and its entries become one new
  document.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date
from itertools import groupby
from typing import Any

from sovterm.errors import UserFacingError
from sovterm.qbo.errors import QBOValidationError
from sovterm.qbo.postings import VOID_BY_DELETE
from sovterm.store import audit
from sovterm.sync import queue, records, summary

log = logging.getLogger("sovterm.sync.rollback")

REMEASURE = "remeasure:"  # a remeasurement's rollback items: remeasure:<bitcoin account id>
_ITEM_COLUMNS = ("store_id", "invoice_id", "kind", "seq", "entity", "qbo_id", "amount", "currency", "txn_date")

Void = Callable[[dict[str, Any]], Awaitable[str | None]]


def parse_range(date_from: str, date_to: str) -> tuple[str, str]:
    """The range as ISO dates, checked (a clear error naming the fix)."""
    try:
        start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError:
        raise UserFacingError(f"not a date range: {date_from!r} to {date_to!r}",
                              fix="use YYYY-MM-DD, e.g. --from 2026-01-01 --to 2026-01-31") from None
    if end < start:
        raise UserFacingError(f"the range ends ({date_to}) before it starts ({date_from})",
                              fix="give --from before --to")
    return start.isoformat(), end.isoformat()


def _scope(date_from: str, date_to: str, store_id: str | None) -> tuple[str, list[Any]]:
    where = "txn_date >= ? AND txn_date <= ?"
    params: list[Any] = [date_from, date_to]
    if store_id is not None:
        where += " AND store_id = ?"
        params.append(store_id)
    return where, params


async def listing(db: Any, date_from: str, date_to: str, store_id: str | None) -> dict[str, Any]:
    """What a rollback of the range would take back, and how many of its documents are still being written."""
    where, params = _scope(date_from, date_to, store_id)
    rows = await db.fetchall(
        f"SELECT {', '.join(_ITEM_COLUMNS)}, status FROM sync_postings WHERE {where} "
        "ORDER BY txn_date, store_id, invoice_id, kind, seq", params)
    documents, busy = [], 0
    for r in rows:
        doc = dict(zip(_ITEM_COLUMNS, r[:-1], strict=True))
        status = r[-1]
        if status in ("pending", "voiding"):
            busy += 1
        elif status == "posted":
            documents.append({**doc, "action": "delete" if doc["entity"] in VOID_BY_DELETE else "void"})
    mapped = " AND account_id IN (SELECT deposit_account_id FROM qbo_mappings WHERE store_id = ?)" if store_id else ""
    for account_id, period, seq, qbo_id, amount, currency, status in await db.fetchall(
            "SELECT account_id, period, seq, qbo_id, amount, currency, status FROM books_remeasurements "
            f"WHERE period >= ? AND period <= ?{mapped} ORDER BY period, account_id, seq", params):
        if status in ("pending", "voiding"):
            busy += 1
        elif status == "posted":
            documents.append({"store_id": "", "invoice_id": REMEASURE + account_id, "kind": "remeasure", "seq": seq,
                              "entity": "JournalEntry", "qbo_id": qbo_id, "amount": amount, "currency": currency,
                              "txn_date": period, "action": "delete"})
    return {"documents": documents, "busy": busy}


class Rollback:
    """Runs rollbacks one at a time, durably (see the module docstring)."""

    def __init__(self, db: Any, commit: Any, void: Void, kick: Callable[[], None], *,
                 fault: Callable[[int], None] | None = None) -> None:
        self.db = db
        self.commit = commit  # the engine's group commit: the ledger's writes share its transactions
        self._void = void
        self._kick = kick
        self._fault = fault  # tests: called after each document is voided (raise to simulate a crash)
        self._lock = asyncio.Lock()

    async def preview(self, date_from: str, date_to: str, store_id: str | None) -> dict[str, Any]:
        """A dry run: the list, nothing changed."""
        date_from, date_to = parse_range(date_from, date_to)
        found = await listing(self.db, date_from, date_to, store_id)
        open_ = await self.unfinished()
        note = None if open_ is None else (
            f"rollback #{open_['id']} ({open_['date_from']} to {open_['date_to']}"
            f"{', store ' + open_['store_id'] if open_['store_id'] else ''}) was interrupted"
            + (f" ({open_['last_error']})" if open_["last_error"] else "") + "; the daemon is finishing it")
        return {"id": None, "date_from": date_from, "date_to": date_to, "store_id": store_id, "dry_run": True,
                "state": "preview", **found, "done": 0, "unfinished": note}

    async def unfinished(self) -> dict[str, Any] | None:
        row = await self.db.fetchone(
            "SELECT id, date_from, date_to, store_id, created_by, last_error FROM sync_rollbacks "
            "WHERE state = 'running'")
        return None if row is None else dict(zip(("id", "date_from", "date_to", "store_id", "created_by",
                                                  "last_error"), row, strict=True))

    async def run(self, date_from: str, date_to: str, store_id: str | None, actor: str) -> dict[str, Any]:
        """Roll the range back (or finish the unfinished rollback of that same range)."""
        date_from, date_to = parse_range(date_from, date_to)
        async with self._lock:
            open_ = await self.unfinished()
            if open_ is not None and (open_["date_from"], open_["date_to"], open_["store_id"]) != (
                    date_from, date_to, store_id):
                raise UserFacingError(
                    f"rollback #{open_['id']} ({open_['date_from']} to {open_['date_to']}"
                    f"{', store ' + open_['store_id'] if open_['store_id'] else ''}) is not finished",
                    fix=f"finish it first: sovterm sync rollback --from {open_['date_from']} --to {open_['date_to']}"
                        f"{' --store ' + open_['store_id'] if open_['store_id'] else ''} --yes")
            if open_ is None:
                found = await listing(self.db, date_from, date_to, store_id)
                if found["busy"]:
                    raise UserFacingError(
                        f"the sync is still writing {found['busy']} document(s) dated in this range",
                        fix="wait until `sovterm sync status` shows nothing queued or running, then run it again")
                rollback_id = await self._plan(date_from, date_to, store_id, actor, found["documents"])
            else:
                rollback_id = open_["id"]
            return {**await self._work(rollback_id, finisher=actor), "busy": 0}

    async def resume(self) -> dict[str, Any] | None:
        """Finish a rollback a crash interrupted (the daemon calls this at start)."""
        async with self._lock:
            open_ = await self.unfinished()
            if open_ is None:
                return None
            log.warning("resuming rollback #%s (%s to %s)", open_["id"], open_["date_from"], open_["date_to"])
            return await self._work(open_["id"], finisher="daemon")

    async def _plan(self, date_from: str, date_to: str, store_id: str | None, actor: str,
                    documents: list[dict[str, Any]]) -> int:
        now = int(time.time())

        async def unit(conn: Any) -> int:
            cur = await conn.execute(
                "INSERT INTO sync_rollbacks(date_from, date_to, store_id, state, created_by, created_at) "
                "VALUES(?, ?, ?, 'running', ?, ?) RETURNING id", (date_from, date_to, store_id, actor, now))
            rollback_id = int((await cur.fetchone())[0])
            # committed with the plan: who started it survives a crash of the call
            await audit.record(self.db, actor, "sync.rollback.plan", f"#{rollback_id} {date_from}..{date_to}",
                               {"store_id": store_id, "documents": len(documents)}, "ok", conn=conn)
            for d in documents:
                await conn.execute(
                    f"INSERT INTO sync_rollback_items(rollback_id, {', '.join(_ITEM_COLUMNS)}, state) "
                    f"VALUES(?, {', '.join('?' for _ in _ITEM_COLUMNS)}, 'listed')",
                    (rollback_id, *(d[c] for c in _ITEM_COLUMNS)))
            return rollback_id

        return await self.commit.run(unit)

    async def _work(self, rollback_id: int, *, finisher: str) -> dict[str, Any]:
        head = await self.db.fetchone(
            "SELECT date_from, date_to, store_id, created_by FROM sync_rollbacks WHERE id = ?", (rollback_id,))
        date_from, date_to, store_id, actor = head
        reason = f"rolled back by {actor} (rollback #{rollback_id}, {date_from} to {date_to})"
        todo = sorted((i for i in await self._items(rollback_id) if i["state"] == "listed"),
                      key=lambda i: (i["store_id"], i["invoice_id"]))
        try:
            for (store, invoice), group in groupby(todo, key=lambda i: (i["store_id"], i["invoice_id"])):
                if invoice.startswith(REMEASURE):
                    await self._remeasurements(rollback_id, invoice.removeprefix(REMEASURE), list(group), reason)
                else:
                    await self._invoice(rollback_id, store, invoice, list(group), reason)
        except Exception as exc:
            await self.db.write("UPDATE sync_rollbacks SET last_error = ? WHERE id = ?",
                                (f"{type(exc).__name__}: {exc}", rollback_id))
            raise

        items = await self._items(rollback_id)

        async def finish(conn: Any) -> None:
            await conn.execute("UPDATE sync_rollbacks SET state = 'done', finished_at = ?, last_error = NULL "
                               "WHERE id = ?", (int(time.time()), rollback_id))
            await audit.record(self.db, finisher, "sync.rollback.done", f"#{rollback_id} {date_from}..{date_to}",
                               {"done": sum(i["state"] == "done" for i in items),
                                "refused": sum(i["state"] == "refused" for i in items)}, "ok", conn=conn)

        await self.commit.run(finish)
        self._kick()
        shown = [{**{k: i[k] for k in _ITEM_COLUMNS},
                  "action": "refused" if i["state"] == "refused" else "delete" if i["entity"] in VOID_BY_DELETE
                  else "void", "error": i["error"]} for i in items]
        return {"id": rollback_id, "date_from": date_from, "date_to": date_to, "store_id": store_id,
                "dry_run": False, "state": "done", "documents": shown,
                "done": sum(i["state"] == "done" for i in items)}

    async def _items(self, rollback_id: int) -> list[dict[str, Any]]:
        return [dict(zip((*_ITEM_COLUMNS, "state", "error"), r, strict=True)) for r in await self.db.fetchall(
            f"SELECT {', '.join(_ITEM_COLUMNS)}, state, error FROM sync_rollback_items WHERE rollback_id = ? "
            "ORDER BY txn_date, store_id, invoice_id, kind, seq", (rollback_id,))]

    async def _invoice(self, rollback_id: int, store: str, invoice: str, items: list[dict[str, Any]],
                       reason: str) -> None:
        """One job key's documents (an invoice's, a payout's, a booked wallet transaction's, a summary day's):
        marked `voiding`, voided in QuickBooks, then recorded with the key's job in one transaction."""
        async def intent(conn: Any) -> None:
            for i in items:
                await records.mark_voiding(conn, store, invoice, i["kind"], i["seq"], reason)

        await self.commit.run(intent)
        rows = {(r["kind"], r["seq"]): r for r in await records.load_postings(self.db, store, invoice)}
        tokens: dict[tuple[str, int], str | None] = {}
        refused: dict[tuple[str, int], str] = {}
        for i in items:
            key = (i["kind"], i["seq"])
            row = rows.get(key)
            if row is not None and row["status"] == "voiding":  # else the engine finished it meanwhile
                try:
                    tokens[key] = await self._void(row)
                except QBOValidationError as exc:  # QuickBooks will not: the document stays in the books
                    refused[key] = str(exc)
                    log.warning("rollback #%s: %s %s of %s stays: %s", rollback_id, i["entity"], i["qbo_id"],
                                invoice, exc)
            if self._fault is not None:
                self._fault(rollback_id)

        async def record(conn: Any) -> None:
            for (kind, seq), token in tokens.items():
                await records.mark_voided(conn, store, invoice, kind, seq, token)
            for kind, seq in refused:
                await conn.execute(
                    "UPDATE sync_postings SET status = 'posted', void_reason = NULL, updated_at = ? WHERE store_id = ? "
                    "AND invoice_id = ? AND kind = ? AND seq = ? AND status = 'voiding'",
                    (int(time.time()), store, invoice, kind, seq))
            for i in items:
                error = refused.get((i["kind"], i["seq"]))
                await conn.execute(
                    "UPDATE sync_rollback_items SET state = ?, error = ? WHERE rollback_id = ? AND store_id = ? "
                    "AND invoice_id = ? AND kind = ? AND seq = ?",
                    ("done" if error is None else "refused", error, rollback_id, store, invoice, i["kind"], i["seq"]))
            cause = {"cause": f"rollback #{rollback_id}"}
            if summary.is_key(invoice):  # the day's entries wait for its next document again
                currency, day = summary.parse_key(invoice)
                for _, seq in tokens:
                    await conn.execute(
                        "UPDATE sync_summary_entries SET doc_seq = NULL WHERE store_id = ? AND currency = ? "
                        "AND day = ? AND doc_seq = ?", (store, currency, day.isoformat(), seq))
                await queue.enqueue(conn, store, invoice, kind=summary.JOB_KIND, payload=cause)
            else:
                await queue.enqueue(conn, store, invoice, payload=cause)

        await self.commit.run(record)

    async def _remeasurements(self, rollback_id: int, account_id: str, items: list[dict[str, Any]],
                              reason: str) -> None:
        """An account's remeasurement JournalEntries: marked `voiding`, deleted in QuickBooks, recorded `voided`
        (the books part posts each period again from the sync loop, worked out afresh, once the sync has
        posted the account's documents again)."""
        where = "account_id = ? AND period = ? AND seq = ?"

        async def intent(conn: Any) -> None:
            for i in items:
                await conn.execute(f"UPDATE books_remeasurements SET status = 'voiding', void_reason = ? WHERE {where} "
                                   "AND status = 'posted'", (reason, account_id, i["txn_date"], i["seq"]))

        await self.commit.run(intent)
        gone: list[dict[str, Any]] = []
        refused: dict[tuple[str, int], str] = {}
        for i in items:
            row = await self.db.fetchone(f"SELECT status, qbo_id, marker FROM books_remeasurements WHERE {where}",
                                         (account_id, i["txn_date"], i["seq"]))
            if row is not None and row[0] == "voiding":
                try:
                    await self._void({"entity": "JournalEntry", "qbo_id": row[1], "marker": row[2]})
                    gone.append(i)
                except QBOValidationError as exc:
                    refused[(i["txn_date"], i["seq"])] = str(exc)
            if self._fault is not None:
                self._fault(rollback_id)

        async def record(conn: Any) -> None:
            for i in gone:
                await conn.execute(f"UPDATE books_remeasurements SET status = 'voided' WHERE {where}",
                                   (account_id, i["txn_date"], i["seq"]))
            for i in items:
                error = refused.get((i["txn_date"], i["seq"]))
                if error is not None:
                    await conn.execute(f"UPDATE books_remeasurements SET status = 'posted', void_reason = NULL "
                                       f"WHERE {where} AND status = 'voiding'", (account_id, i["txn_date"], i["seq"]))
                await conn.execute(
                    "UPDATE sync_rollback_items SET state = ?, error = ? WHERE rollback_id = ? AND store_id = ? "
                    "AND invoice_id = ? AND kind = ? AND seq = ?",
                    ("done" if error is None else "refused", error, rollback_id, i["store_id"], i["invoice_id"],
                     i["kind"], i["seq"]))

        await self.commit.run(record)
