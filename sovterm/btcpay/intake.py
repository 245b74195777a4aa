"""BTCPay intake: webhook deliveries and polls land in the ledger, and the parts built on BTCPay data
(sync, links, payouts) get them through the ports they were constructed with.

The intake is built after those parts (see `sovterm.parts.intake`), so its ports are plain constructor
arguments: no handler list is filled or emptied at start-up. A port runs inside the transaction that
records what it sees; one that raises rolls that transaction back (BTCPay then retries the delivery;
the poller re-reads the invoice next run).

Webhooks carry no invoice status, so an accepted invoice event schedules a quick re-read of that
invoice (after the commit, outside the transaction); the poll loop remains the completeness guarantee.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiosqlite

from sovterm.btcpay import ledger
from sovterm.btcpay.errors import BTCPayError
from sovterm.btcpay.models import Invoice
from sovterm.btcpay.poller import InvoicePoller
from sovterm.btcpay.service import BTCPayService
from sovterm.btcpay.webhooks import IngestResult, InvoiceEvent, PayoutEvent, WebhookEvent, event_cid, ingest
from sovterm.errors import UserFacingError
from sovterm.events import EventBus
from sovterm.logs import correlation
from sovterm.tasks import Background

log = logging.getLogger(__name__)

REFRESH_CONCURRENCY = 4
#: BTCPay sends an invoice's events back to back (a Lightning payment: four); waiting this long before
#: the re-read lets one read cover the burst.
REFRESH_DELAY_S = 1.0


class EventPort(Protocol):
    """A part that acts on accepted webhook deliveries (sync queues a job, payouts notes a state)."""

    async def on_event(self, conn: aiosqlite.Connection, event: WebhookEvent) -> None: ...


class InvoicePort(Protocol):
    """A part that acts on a changed invoice snapshot, from a poll or the re-read after a webhook (sync
    queues a job, links closes a reservation)."""

    async def on_invoice(self, conn: aiosqlite.Connection, store_id: str, invoice: Invoice) -> None: ...


class BTCPayIntake:
    """`services.intake`: the webhook route's `handle_webhook`, the `btcpay.poll` loop and the history import.

    `events` and `invoices` are called in the order given, inside the recording transaction."""

    def __init__(
        self,
        btcpay: BTCPayService,
        *,
        events: Sequence[EventPort],
        invoices: Sequence[InvoicePort],
        bus: EventBus | None = None,
    ) -> None:
        self.btcpay = btcpay
        self.events = tuple(events)
        self.invoices = tuple(invoices)
        self.bus = bus
        self.poller = InvoicePoller(
            btcpay.db, btcpay.client_for_store, window_days=btcpay.settings.btcpay.poll_window_days,
            on_invoice_changed=self._on_invoice_changed,
        )
        self._background = Background(log)
        self._refresh_pending: set[tuple[str, str]] = set()
        self._refresh_slots = asyncio.Semaphore(REFRESH_CONCURRENCY)
        self.refresh_delay_s = REFRESH_DELAY_S
        self._poll_lock = asyncio.Lock()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Poll at once whenever the operator selects stores (fill the ledger now, not at the next interval)."""
        self._background.spawn(self._poll_when_stores_selected())

    async def stop(self) -> None:
        await self._background.cancel()

    async def _poll_when_stores_selected(self) -> None:
        selected = self.btcpay.stores_selected
        while True:
            await selected.wait()
            selected.clear()
            summary = await self.poll_all()
            log.info("first poll after selecting stores: %s", summary)

    # -- webhooks --------------------------------------------------------------------------------

    async def handle_webhook(self, store_id: str, raw: bytes, headers: Mapping[str, str],
                             client: str | None = None) -> IngestResult:
        """Verify and durably record one delivery (see `webhooks.ingest`), the event ports running in its
        transaction; then, outside the transaction, schedule a re-read of the invoice it announces.
        `client` (the sender's address) is kept with a refusal."""
        btcpay = self.btcpay
        result = await ingest(
            btcpay.db, store_id=store_id, secret=btcpay.webhook_secrets(store_id), raw=raw, headers=headers,
            max_bytes=btcpay.settings.listener.max_body_bytes, on_event=self._on_event, commit=btcpay.commit,
            client=client,
        )
        event = result.event
        if result.reason == "accepted" and event is not None:
            invoice_id = event.invoice_id if isinstance(event, InvoiceEvent) else None
            with correlation(event_cid(event)):
                log.info("BTCPay %s for store %s recorded (delivery %s)", event.type, store_id, event.delivery_id)
                if invoice_id is not None and btcpay.connected:
                    self.schedule_refresh(store_id, invoice_id)  # its task keeps the correlation id
            if self.bus is not None:
                self.bus.publish(
                    "btcpay.webhook", store_id=store_id, type=event.type, invoice_id=invoice_id,
                    payout_id=event.payout_id if isinstance(event, PayoutEvent) else None,
                )
        return result

    async def _on_event(self, conn: aiosqlite.Connection, event: WebhookEvent) -> None:
        # the group commit runs this in its writer task, whose log context is another delivery's: set its own
        with correlation(event_cid(event)):
            for port in self.events:
                await port.on_event(conn, event)

    async def _on_invoice_changed(self, conn: aiosqlite.Connection, store_id: str, invoice: Invoice) -> None:
        for port in self.invoices:
            await port.on_invoice(conn, store_id, invoice)

    def schedule_refresh(self, store_id: str, invoice_id: str) -> None:
        """Re-read an invoice soon. Events for an invoice whose re-read has not started yet (it waits
        `refresh_delay_s` first) coalesce into that one read, sent after all of them were recorded."""
        key = (store_id, invoice_id)
        if key in self._refresh_pending:
            return
        self._refresh_pending.add(key)
        self._background.spawn(self._refresh(key))

    async def _refresh(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(self.refresh_delay_s)
        async with self._refresh_slots:
            self._refresh_pending.discard(key)
            try:
                changed = await self.poller.refresh_invoice(*key, commit=self.btcpay.commit)
            except BTCPayError as exc:
                log.warning("could not re-read invoice %s of store %s (the poll will): %s", key[1], key[0], exc.message)
                if self.btcpay.connection_failure(key[0], exc):
                    self.btcpay.set_failure(exc)
                return
        if changed and self.bus is not None:
            self.bus.publish("btcpay.invoice", store_id=key[0], invoice_id=key[1])

    # -- polling ---------------------------------------------------------------------------------

    async def poll_all(self) -> dict[str, Any]:
        """The `btcpay.poll` loop: converge every selected store's ledger with BTCPay.

        BTCPay down or refusing the key ends the run with the connector state set and a summary; a
        store-level refusal (a permission removed) is reported and the other stores still polled."""
        btcpay = self.btcpay
        if not btcpay.connected:
            return {"state": "not_configured"}
        async with self._poll_lock:
            stores = await ledger.selected_stores(btcpay.db)
            if not stores:
                probe = await btcpay.probe()
                return {"state": probe["state"], "stores": 0}
            summary: dict[str, Any] = {"stores": {}}
            for store_id in stores:
                try:
                    result = await self.poller.poll_store(store_id, time.time())
                except BTCPayError as exc:
                    if btcpay.connection_failure(store_id, exc):
                        summary["state"] = btcpay.set_failure(exc)
                        summary["error"] = exc.message
                        return summary
                    problem = (f"BTCPay refuses store {store_id}'s own API key: {exc.message}"
                               if btcpay.has_own_key(store_id) else exc.message)
                    log.warning("polling store %s failed: %s", store_id, problem)
                    btcpay.set_store_error(store_id, problem)
                    summary["stores"][store_id] = {"error": problem}
                    continue
                btcpay.set_store_error(store_id, None)
                summary["stores"][store_id] = {
                    "listed": result.listed, "reread": result.reread, "changed": result.changed,
                }
            btcpay.set_connected()
            summary["state"] = "connected"
            return summary

    async def import_history(self, since: int) -> dict[str, Any]:
        """Every selected store's invoices created since `since` (unix seconds) into the ledger; the
        invoice ports see each one, so the sync part queues what is owed."""
        if not self.btcpay.connected:
            raise UserFacingError("BTCPay is not connected", fix="run `sovterm setup btcpay` first")
        async with self._poll_lock:
            out: dict[str, Any] = {}
            for store_id in await ledger.selected_stores(self.btcpay.db):
                result = await self.poller.import_history(store_id, since, time.time())
                out[store_id] = {"listed": result.listed, "changed": result.changed}
            return out
