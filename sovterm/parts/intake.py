"""BTCPay intake, the start of the payment-to-books flow: its stage, the `btcpay.poll` loop and the
webhook route.

It is a part of its own, started after sync, links and payouts, because it hands work to them: the
stage passes their services to `BTCPayIntake` as its ports, in the order they run inside the
recording transaction. Follow a payment from here: `web/btcpay.py` → `BTCPayIntake.handle_webhook` →
`SyncService.on_event` / `PayoutService.on_event` (and, on the invoice's re-read,
`SyncService.on_invoice` / `LinkService.on_invoice`) → the sync engine's job → the QuickBooks client.
The BTCPay connection (`services.btcpay`) starts first of all, since every part calls BTCPay through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sovterm.analytics.aggregates import InvoiceAggregates
from sovterm.btcpay.intake import BTCPayIntake, EventPort, InvoicePort
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.web.btcpay import add_routes

POLL_LOOP = "btcpay.poll"
FIRST_POLL_DELAY_S = 1.0  # soon after start: re-reads what changed while the daemon was down


@asynccontextmanager
async def intake_stage(services: Services) -> AsyncIterator[None]:
    assert services.btcpay is not None, "btcpay stage has not started"
    sync, links, payouts = services.sync, services.links, services.payouts
    events: list[EventPort] = [p for p in (sync, payouts) if p is not None]
    invoices: list[InvoicePort] = [p for p in (sync, links) if p is not None]
    invoices.append(InvoiceAggregates(services.settings.analytics.timezone))  # the analytics' per-day counts
    intake = BTCPayIntake(services.btcpay, events=events, invoices=invoices, bus=services.bus)
    intake.start()
    services.intake = intake
    try:
        yield
    finally:
        services.intake = None
        await intake.stop()


def loops(services: Services) -> list[LoopSpec]:
    async def poll() -> dict[str, Any]:
        intake = services.intake
        return {"state": "stopped"} if intake is None else await intake.poll_all()

    return [LoopSpec(POLL_LOOP, services.settings.btcpay.poll_interval_s, poll, first_delay_s=FIRST_POLL_DELAY_S)]


PART = Part("intake", stage=intake_stage, loops=loops, routes=add_routes)
