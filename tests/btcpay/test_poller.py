"""The poller against the simulator: complete paging, gap recovery, non-final re-reads, outages."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.btcpay import ledger
from sovterm.btcpay.errors import BTCPayUnavailable
from sovterm.btcpay.poller import InvoicePoller, cursor_key
from sovterm.btcpay.webhooks import ingest, read_limited
from sovterm.sim.btcpay_state import Fault
from sovterm.store.secrets import Secret

from .conftest import T0

DAY = 86_400


class Changes:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, conn, store_id, invoice) -> None:
        assert conn.in_transaction  # called inside the upsert's transaction
        self.ids.append(invoice.id)


def make_poller(db, sim, key, changes, **kw) -> InvoicePoller:
    client = sim.client(key)
    kw.setdefault("window_days", 3)
    return InvoicePoller(db, lambda store_id: client, on_invoice_changed=changes, **kw)


async def test_pages_a_5000_invoice_store_completely(db, sim):
    store_id, key = sim.store_with_key()
    state = sim.state
    state.muted = True
    for i in range(5000):
        inv = state.create_invoice(store_id, Decimal(1 + i % 97), created=T0 - 1 - (i * 3 * DAY) // 5000)
        if i % 3 == 0:
            state.pay(inv.id, method="BTC-LN", at=inv.created + 5)
    changes = Changes()
    started = time.monotonic()
    result = await make_poller(db, sim, key, changes, page_size=200).poll_store(store_id, T0)
    assert time.monotonic() - started < 30
    assert result.listed == 5000 and result.changed == 5000 and len(set(changes.ids)) == 5000
    assert await ledger.count_invoices(db, store_id) == 5000
    settled = await db.fetchone("SELECT COUNT(*) FROM invoices WHERE status = 'Settled'")
    assert settled[0] == 1667
    pays = await db.fetchone("SELECT COUNT(*), SUM(amount_sats) FROM invoice_payments WHERE payment_method = 'lightning'")
    assert pays[0] == 1667 and pays[1] > 0
    # a second poll finds nothing new and rewrites nothing
    again = await make_poller(db, sim, key, Changes(), page_size=200).poll_store(store_id, T0)
    assert again.changed == 0
    # the spec check of 5000-invoice pages is covered by smaller tests; keep this one fast
    sim.exchanges[:] = sim.exchanges[:3]


async def test_delivery_lost_while_down_is_recovered_by_polling(db, sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    received: list[str] = []

    async def down(request: web.Request) -> web.Response:
        received.append(request.headers["BTCPay-Sig"])
        return web.Response(status=503)

    receiver = web.Application()
    receiver.router.add_post("/webhooks/btcpay/{store_id}", down)
    server = TestServer(receiver, port=0)
    await server.start_server()
    try:
        sim.state.delivery_time_scale = 0.00002  # the ~71 min schedule in ~0.1 s per event
        hook = await client.create_webhook(store_id, str(server.make_url(f"/webhooks/btcpay/{store_id}")))
        inv = sim.state.create_invoice(store_id, Decimal("10"))
        sim.state.pay(inv.id, method="BTC-LN")  # every event of the payment is lost
        await sim.state.wait_deliveries_idle()
    finally:
        await server.close()
    deliveries = await client.list_webhook_deliveries(store_id, hook.id)
    assert len(received) == len(deliveries) == 5 * 9  # 5 events (created, payment, settled...), 9 attempts each
    assert {d.status for d in deliveries} == {"HttpError"}
    changes = Changes()
    result = await make_poller(db, sim, key, changes).poll_store(store_id, T0)
    assert changes.ids == [inv.id] and result.changed == 1
    assert (await ledger.get_invoice_row(db, store_id, inv.id))["status"] == "Settled"


async def test_cursor_recovers_the_gap_after_downtime(db, sim):
    store_id, key = sim.store_with_key()
    old = sim.state.create_invoice(store_id, Decimal(1), created=T0 - 3600)
    changes = Changes()
    poller = make_poller(db, sim, key, changes, window_days=1)
    await poller.poll_store(store_id, T0)
    assert changes.ids == [old.id] and await poller.read_cursor(store_id) == T0
    # five days of downtime; an invoice created on day 2 is outside a 1-day window
    during = sim.state.create_invoice(store_id, Decimal(2), created=T0 + 2 * DAY)
    sim.state.clock.set(T0 + 5 * DAY)
    changes.ids.clear()
    result = await poller.poll_store(store_id, T0 + 5 * DAY)
    assert changes.ids == [during.id]
    assert result.covered_from <= T0 and await poller.read_cursor(store_id) == T0 + 5 * DAY
    row = await db.fetchone("SELECT value FROM kv WHERE key = ?", (cursor_key(store_id),))
    assert row is not None


async def test_non_final_invoices_outside_the_window_are_reread(db, sim):
    store_id, key = sim.store_with_key()
    inv = sim.state.create_invoice(store_id, Decimal(5), created=T0 - 10 * DAY, expiration_minutes=30 * 24 * 60)
    poller = make_poller(db, sim, key, Changes(), window_days=30)
    await poller.poll_store(store_id, T0)
    assert (await ledger.get_invoice_row(db, store_id, inv.id))["status"] == "New"
    sim.state.pay(inv.id)
    changes = Changes()
    result = await make_poller(db, sim, key, changes, window_days=1).poll_store(store_id, T0 + 60)
    assert changes.ids == [inv.id] and result.reread == 1
    row = await ledger.get_invoice_row(db, store_id, inv.id)
    assert row["status"] == "Processing"
    assert len(await ledger.invoice_payments(db, store_id, inv.id)) == 1


async def test_btcpay_unreachable_raises_typed_and_keeps_cursor(db, sim):
    store_id, key = sim.store_with_key()
    sim.state.faults.append(Fault("/api/v1/stores", status=503, times=None))
    poller = InvoicePoller(db, lambda s: sim.client(key, retry_attempts=1), window_days=1,
                           on_invoice_changed=Changes())
    with pytest.raises(BTCPayUnavailable):
        await poller.poll_store(store_id, T0)
    assert await poller.read_cursor(store_id) is None


async def test_webhook_then_poll_converge(db, sim):
    """A delivery accepted through `ingest` and a later poll agree; the poll changes nothing."""
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    secret_box: dict[str, Secret] = {}
    fetched: list[str] = []

    async def route(request: web.Request) -> web.Response:
        raw = await read_limited(request.content, 1 << 20)

        async def on_event(conn, event):
            fetched.append(event.type)

        result = await ingest(db, store_id=request.match_info["store_id"], secret=secret_box.get("s"), raw=raw,
                              headers=request.headers, max_bytes=1 << 20, on_event=on_event)
        return web.Response(status=result.status)

    receiver = web.Application()
    receiver.router.add_post("/webhooks/btcpay/{store_id}", route)
    server = TestServer(receiver, port=0)
    await server.start_server()
    try:
        hook = await client.create_webhook(store_id, str(server.make_url(f"/webhooks/btcpay/{store_id}")))
        secret_box["s"] = hook.secret
        inv = sim.state.create_invoice(store_id, Decimal("10"))
        sim.state.pay(inv.id, method="BTC-LN")
        await sim.state.wait_deliveries_idle()
    finally:
        await server.close()
    assert fetched == ["InvoiceCreated", "InvoiceReceivedPayment", "InvoicePaymentSettled", "InvoiceProcessing",
                       "InvoiceSettled"]
    # the sync engine would fetch the invoice on the event; emulate that, then poll
    async with db.transaction() as conn:
        await ledger.upsert_invoice(conn, store_id, await client.get_invoice(store_id, inv.id),
                                    await client.get_invoice_payment_methods(store_id, inv.id))
    changes = Changes()
    await make_poller(db, sim, key, changes).poll_store(store_id, T0)
    assert changes.ids == []


async def test_polls_a_1x_server_with_legacy_payment_method_ids(db, sim):
    store_id, key = sim.store_with_key()
    sim.state.legacy_ids = True  # paymentMethod "BTC"/"BTC-LightningNetwork", cryptoCode, networkFee
    a = sim.state.create_invoice(store_id, Decimal(3), created=T0 - 100)
    sim.state.pay(a.id, method="BTC-LN", at=T0 - 90)
    b = sim.state.create_invoice(store_id, Decimal(4), created=T0 - 80)
    sim.state.pay(b.id, method="BTC-CHAIN", at=T0 - 70)
    await make_poller(db, sim, key, Changes()).poll_store(store_id, T0)
    rows = await db.fetchall("SELECT invoice_id, payment_method_raw, payment_method, currency FROM invoice_payments")
    assert sorted(r[1:] for r in rows) == [("BTC", "onchain", "BTC"), ("BTC-LightningNetwork", "lightning", "BTC")]
    sim.validate = False  # 1.x shapes are not the v2.4.1 spec
