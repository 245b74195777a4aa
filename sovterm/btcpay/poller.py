"""Polling: the safety net under webhooks (BTCPay keeps retry state in memory only).

BTCPay's invoice list is newest-first with skip/take, no changed-since filter and no cursor. Offset
paging over a growing list drifts, so we page fixed past windows `[startDate, endDate]` (both
inclusive at BTCPay) and dedupe by id; `createdTime` never changes, so status changes of older
invoices come from re-reading the invoices the ledger still holds as non-final. A per-store cursor in
`kv` remembers up to when creation windows were fully covered, so after downtime the gap is re-read.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from sovterm.btcpay import ledger
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import BTCPayNotFound
from sovterm.btcpay.models import Invoice
from sovterm.store import kv
from sovterm.store.group_commit import GroupCommit

log = logging.getLogger(__name__)

DAY_S = 86_400

InvoiceChanged = Callable[[aiosqlite.Connection, str, Invoice], Awaitable[None]]
ClientForStore = Callable[[str], "BTCPayClient | Awaitable[BTCPayClient]"]


def cursor_key(store_id: str) -> str:
    return f"btcpay:poll_cursor:{store_id}"


@dataclass
class PollResult:
    store_id: str
    listed: int = 0
    reread: int = 0
    changed: int = 0
    windows: int = 0
    covered_from: int = 0
    covered_until: int = 0
    changed_ids: list[str] = field(default_factory=list)


class InvoicePoller:
    """Converges the ledger with BTCPay for one store per call; BTCPay errors propagate typed
    (`BTCPayUnavailable`, `BTCPayAuthError`…) with the cursor untouched, so the next run re-covers."""

    def __init__(
        self,
        db: Any,
        client_for_store: ClientForStore,
        *,
        window_days: int,
        on_invoice_changed: InvoiceChanged,
        page_size: int = 100,
        window_step_s: int = DAY_S,
        max_gap_days: int = 90,
        overlap_s: int = 600,
    ) -> None:
        self._db = db
        self._client_for_store = client_for_store
        self.window_days = window_days
        self._on_changed = on_invoice_changed
        self.page_size = page_size
        self.window_step_s = window_step_s
        self.max_gap_days = max_gap_days
        self.overlap_s = overlap_s

    async def _client(self, store_id: str) -> BTCPayClient:
        got = self._client_for_store(store_id)
        return await got if inspect.isawaitable(got) else got

    async def read_cursor(self, store_id: str) -> int | None:
        cursor = await kv.get(self._db, cursor_key(store_id))
        return None if cursor is None else int(cursor["covered_until"])

    async def poll_store(self, store_id: str, now: int | float) -> PollResult:
        """Re-read non-final invoices, then list invoices created since the cursor (at least the last
        `window_days`, at most `max_gap_days`), upserting each page in one transaction."""
        now_s = int(now)
        client = await self._client(store_id)
        covered = await self.read_cursor(store_id)
        start = now_s - self.window_days * DAY_S
        if covered is not None:
            start = min(start, covered - self.overlap_s)
        start = max(start, now_s - self.max_gap_days * DAY_S)
        result = PollResult(store_id, covered_from=start, covered_until=now_s)
        seen: set[str] = set()

        # 1. windows of creation time, newest first (the order BTCPay lists in)
        await self._page_windows(client, store_id, start, now_s, seen, result)

        # 2. known non-final invoices not seen above (created before the windows)
        for invoice_id in await ledger.non_final_invoices(self._db, store_id, now_s):
            if invoice_id in seen:
                continue
            try:
                invoice = await client.get_invoice(store_id, invoice_id)
            except BTCPayNotFound:
                log.warning("invoice %s of store %s is gone from BTCPay", invoice_id, store_id)
                continue
            methods = await client.get_invoice_payment_methods(store_id, invoice_id)
            result.reread += 1
            async with self._db.transaction() as conn:
                await self._apply(conn, store_id, invoice, methods, result)

        await kv.put(self._db, cursor_key(store_id), {"covered_until": now_s})
        log.info(
            "polled store %s: %d listed, %d re-read, %d changed", store_id, result.listed, result.reread,
            result.changed,
        )
        return result

    async def refresh_invoice(self, store_id: str, invoice_id: str, *, commit: GroupCommit | None = None) -> bool:
        """Re-read one invoice now (after its webhook: events carry no status); True if it changed.

        The read is sent after the event was committed, so it sees at least the state the event
        announced; the ledger's ordering rule makes a racing poll harmless. With `commit`, the write
        shares the webhook intake's group commit instead of costing a transaction of its own."""
        client = await self._client(store_id)
        try:
            invoice = await client.get_invoice(store_id, invoice_id)
        except BTCPayNotFound:
            log.warning("invoice %s of store %s is gone from BTCPay", invoice_id, store_id)
            return False
        methods = await client.get_invoice_payment_methods(store_id, invoice_id)
        result = PollResult(store_id)

        async def apply(conn: aiosqlite.Connection) -> None:
            await self._apply(conn, store_id, invoice, methods, result)

        if commit is not None:
            await commit.run(apply)
        else:
            async with self._db.transaction() as conn:
                await apply(conn)
        return result.changed > 0

    async def import_history(self, store_id: str, since: int, now: int | float) -> PollResult:
        """Bring every invoice created since `since` into the ledger (backfill on first connection);
        unlike `poll_store` there is no `max_gap_days` cap and the poll cursor is left alone."""
        now_s = int(now)
        client = await self._client(store_id)
        result = PollResult(store_id, covered_from=since, covered_until=now_s)
        await self._page_windows(client, store_id, since, now_s, set(), result)
        log.info("imported history of store %s since %s: %d listed, %d changed", store_id, since,
                 result.listed, result.changed)
        return result

    async def _page_windows(
        self, client: BTCPayClient, store_id: str, start: int, end: int, seen: set[str], result: PollResult
    ) -> None:
        window_end = end
        while window_end >= start:
            window_start = max(start, window_end - self.window_step_s + 1)
            await self._page_window(client, store_id, window_start, window_end, seen, result)
            result.windows += 1
            window_end = window_start - 1

    async def _page_window(
        self, client: BTCPayClient, store_id: str, start: int, end: int, seen: set[str], result: PollResult
    ) -> None:
        skip = 0
        while True:
            page = await client.list_invoices(
                store_id, start_date=start, end_date=end, skip=skip, take=self.page_size,
                include_payment_methods=True,
            )
            fresh = [inv for inv in page if inv.id not in seen]
            for inv in fresh:
                seen.add(inv.id)
            result.listed += len(fresh)
            # Servers before v2.3.6 ignore includePaymentMethods: fetch them per invoice then.
            methods = {}
            for inv in fresh:
                if inv.payment_methods is None and await self._needs_methods(store_id, inv):
                    methods[inv.id] = await client.get_invoice_payment_methods(store_id, inv.id)
            if fresh:
                async with self._db.transaction() as conn:
                    for inv in fresh:
                        await self._apply(conn, store_id, inv, methods.get(inv.id), result)
            if len(page) < self.page_size:
                return
            skip += self.page_size

    async def _needs_methods(self, store_id: str, invoice: Invoice) -> bool:
        """Skip the extra call for a final invoice whose status we already hold with its payments."""
        row = await ledger.get_invoice_row(self._db, store_id, invoice.id)
        return not (
            row is not None
            and row["payment_methods_known"]
            and row["status"] == invoice.status
            and row["additional_status"] == invoice.additional_status
            and invoice.status in ledger.FINAL_STATUSES
        )

    async def _apply(
        self, conn: aiosqlite.Connection, store_id: str, invoice: Invoice, methods: Any, result: PollResult
    ) -> None:
        if await ledger.upsert_invoice(conn, store_id, invoice, methods):
            result.changed += 1
            result.changed_ids.append(invoice.id)
            await self._on_changed(conn, store_id, invoice)
