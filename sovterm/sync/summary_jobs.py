"""Daily summary mode in the sync engine: an invoice's job writes its entries and queues its days; a day's
job, once the day closed, binds the day's unbound entries to its next document and writes it exactly once
(the rules are in `sync.summary`; docs/accounting.md, "Daily summary mode")."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sovterm.qbo.errors import QBOValidationError
from sovterm.qbo.models import dumps
from sovterm.qbo.postings import marker_for
from sovterm.sync import items, lines, queue, records, rules
from sovterm.sync.documents import Refused, posting_row
from sovterm.sync.summary import (
    JOB_KIND,
    KIND,
    NO_DOCUMENT,
    SETTLE_S,
    Entry,
    SummaryPolicy,
    closes_at,
    contributed,
    day_lines,
    deltas,
    describe,
    key_of,
    local_day,
    parse_key,
    policy_of,
    summary_body,
    targets,
    unbound,
)


class DaySummaries:
    """The engine's summary-mode work: an invoice's entries, and a closed day's documents."""

    def __init__(self, engine: Any, *, missing: Callable[[str, bool], Exception]) -> None:
        self.engine = engine
        self.missing = missing  # the engine's "setup step missing" hold, (store, fee account?) → exception
        self.clock: Callable[[], float] = time.time  # whether a day has closed (tests move it)
        self.settle_s = SETTLE_S  # how long a closed day's job waits for the changes arriving with its first

    async def policy(self, store_id: str) -> SummaryPolicy:
        mode = await self.engine._cached(("mode", store_id), lambda: records.get_mode(self.engine.db, store_id))
        return policy_of(mode)

    async def takes(self, snap: rules.InvoiceSnap, rows: list[dict[str, Any]]) -> bool:
        """Whether the invoice is summarised: the store is in summary mode and the invoice is of the cut-over
        day or later (or already in a summary), is no pay link for a QuickBooks invoice (that pays its
        invoice, in every mode) and has no document of its own (it stays with what is in its books)."""
        if snap.qbo_ref or rows:
            return False
        if await contributed(self.engine.db, snap.store_id, snap.invoice_id):
            return True  # in a summary already: it stays there, whatever the mode is now
        metadata = await items.invoice_metadata(self.engine.db, snap.store_id, snap.invoice_id)
        if lines.sale_detail(metadata).tax > 0:
            return False  # sales tax is split out on the invoice's own document; a day's summary has no tax line
        policy = await self.policy(snap.store_id)
        return policy.since is not None and local_day(snap.paid_at or snap.created_at, policy.tz) >= policy.since

    async def record_invoice(self, job: queue.Job, snap: rules.InvoiceSnap) -> list[str]:
        """Write what changed in the invoice as entries and queue the days they fall on, with the job's end."""
        engine = self.engine
        policy = await self.policy(snap.store_id)
        wanted = targets(snap, policy.tz)
        new: list[Entry] = []
        if wanted is not None:
            have = await contributed(engine.db, snap.store_id, snap.invoice_id)
            new = deltas(wanted, have)
        now = int(time.time())

        async def unit(conn: Any) -> None:
            for e in new:
                await conn.execute(
                    "INSERT INTO sync_summary_entries(store_id, invoice_id, currency, day, category, method, ref, "
                    "amount, sats, review, created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (snap.store_id, snap.invoice_id, snap.currency, e.day.isoformat(), e.category, e.method, e.ref,
                     str(e.amount), e.sats, e.review, now))
            for day in sorted({e.day for e in new}):
                # a closed day's job waits a few seconds, so the changes arriving together share a document
                due = max(closes_at(day, policy.tz, policy.close_after_s), self.clock() + self.settle_s)
                await queue.enqueue(conn, snap.store_id, key_of(snap.currency, day), kind=JOB_KIND,
                                    payload={"cause": f"invoice {snap.invoice_id}"}, now=due)
            await queue.complete(conn, job, engine.owner)

        await engine.commit.run(unit)
        return []

    async def run_day(self, job: queue.Job) -> list[str]:
        """A day's job: once the day is closed, its unbound entries become the day's next document."""
        engine = self.engine
        store_id, key = job.store_id, job.invoice_id
        currency, day = parse_key(key)
        rows = await records.load_postings(engine.db, store_id, key)
        docs = [await engine._send(r) for r in rows if r["status"] == "pending"]
        policy = await self.policy(store_id)
        tz = policy.tz
        close = closes_at(day, tz, policy.close_after_s)
        if self.clock() < close:  # released early (held, lease expired): wait for the day to close
            await queue.defer(engine.commit, job, engine.owner, close)
            return docs
        backfill = await records.kv_get(engine.db, records.BACKFILL_KEY)
        if backfill and backfill.get("state") == "running":  # its invoices are still arriving: one document
            await queue.defer(engine.commit, job, engine.owner, self.clock() + self.settle_s)
            return docs
        entries = await unbound(engine.db, store_id, currency, day)
        row = None
        if entries:
            row = await self._intent(store_id, key, currency, day, tz, rows, entries)
        result = await self._post(row) if row is not None else None
        engine._step("after_qbo")

        async def record(conn: Any) -> None:
            if row is not None and result is not None:
                await records.mark_posted(conn, store_id, key, KIND, row["seq"], result.id, result.sync_token)
            await queue.complete(conn, job, engine.owner)

        await engine.commit.run(record)
        return docs + ([f"{row['entity']}:{result.id}"] if row is not None and result is not None else [])

    async def _post(self, row: dict[str, Any]) -> Any:
        """Write the day's document; refused outright by QuickBooks, the engine drops its pending posting and
        its entries are freed here, so the retry builds the document again from them."""
        try:
            return await self.engine._post(row, lookup_first=False)
        except QBOValidationError:
            async def unbind(conn: Any) -> None:
                currency, day = parse_key(row["invoice_id"])
                await conn.execute(
                    "UPDATE sync_summary_entries SET doc_seq = NULL WHERE store_id = ? AND currency = ? AND day = ? "
                    "AND doc_seq = ?", (row["store_id"], currency, day.isoformat(), row["seq"]))

            await self.engine.commit.run(unbind)
            raise

    async def _intent(self, store_id: str, key: str, currency: str, day: date, tz: ZoneInfo,
                      rows: list[dict[str, Any]], entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Bind the entries to the day's next document and commit its pending posting, in one transaction;
        None when they cancel out (bound to no document)."""
        engine = self.engine
        lines = day_lines(entries)
        seq = max((r["seq"] for r in rows), default=-1) + 1
        row = None
        if lines:
            mapping = await engine._cached(("mapping", store_id), lambda: engine.books.mapping(store_id))
            if mapping is None:
                raise self.missing(store_id, False)
            if any(x.account == "fee_collected" for x in lines) and not mapping.fee_collected_account_id:
                raise self.missing(store_id, True)
            ctx = await engine.books.currency()
            rate = None
            if currency.upper() != ctx.home.upper():
                if not ctx.multicurrency:
                    raise Refused(f"the store prices in {currency} but the QuickBooks company keeps its books in "
                                  f"{ctx.home} without multicurrency; turn multicurrency on in QuickBooks or price "
                                  f"the store in {ctx.home}")
                rate = await engine.documents.exchange_rate(currency, ctx.home, day.isoformat())
                if rate is None:
                    raise Refused(f"no {currency}→{ctx.home} exchange rate for {day}")
            marker = marker_for(KIND, store_id, key, seq)
            entity, total, body = summary_body(
                marker=marker, day=day, seq=seq, lines=lines, currency=currency, mapping=mapping, ctx=ctx, rate=rate,
                note=describe(store_id, day, seq, tz, currency, entries))
            reviews = sorted({f"{e['invoice_id']}: {e['review']}" for e in entries if e["review"]})
            review = "; ".join(reviews)[:2000] or None
            row = posting_row(store_id, key, KIND, seq, entity, total, currency, None, marker, dumps(body), day, review)
        last = max(e["id"] for e in entries)  # entries written later have higher ids: not in this document

        async def intent(conn: Any) -> None:
            if row is not None and not await records.insert_pending(conn, row):
                raise RuntimeError(f"document {KIND}#{seq} of {key} appeared meanwhile")
            cur = await conn.execute(
                "UPDATE sync_summary_entries SET doc_seq = ? WHERE store_id = ? AND currency = ? AND day = ? "
                "AND doc_seq IS NULL AND id <= ?",
                (seq if row is not None else NO_DOCUMENT, store_id, currency, day.isoformat(), last))
            if cur.rowcount != len(entries):
                raise RuntimeError(f"entries of {key} were bound meanwhile")

        await engine.commit.run(intent)
        engine._step("after_intent")
        return row
