"""A settled pay-link invoice becomes a QuickBooks Payment through the sync engine (invoicing mode)."""

from __future__ import annotations

import random
from decimal import Decimal

from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.btcpay import ledger
from sovterm.links.pay import PayPage
from sovterm.links.reaper import reap
from sovterm.sync import queue, records
from sovterm.sync.engine import EngineSettings, SyncEngine
from sovterm.web.links import add_routes
from tests.links.harness import REALM, World
from tests.sync.helpers import DirectBooks, seeded_mapping


async def test_settled_link_invoice_becomes_a_qbo_payment(world: World) -> None:
    links = world.links()
    app = web.Application()
    pay_page = PayPage(links)
    add_routes(app, lambda request: pay_page)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        link = await links.create_qbo("1002", actor="alice", audit=world.audit)
        pay_url = str(server.make_url("/pay/" + link["url"].rsplit("/pay/", 1)[1]))
        async with world.session.get(pay_url, allow_redirects=False) as resp:
            assert resp.status == 303
        [inv] = world.btcpay_invoices()
        world.btcpay_state.pay(inv.id, method="BTC-LN")  # the customer pays; Lightning settles at once
        # what the BTCPay part does on the webhook: store the snapshot and enqueue the sync job
        client = world.btcpay_client()
        snapshot = await client.get_invoice(world.store_id, inv.id)
        methods = await client.get_invoice_payment_methods(world.store_id, inv.id)
        assert snapshot.status == "Settled"
        async with world.db.transaction() as conn:
            await ledger.upsert_invoice(conn, world.store_id, snapshot, methods)
            await queue.enqueue(conn, world.store_id, inv.id)
        await records.set_mode(world.db, "invoicing", store_id=world.store_id)
        books = DirectBooks(await world.qbo(), {world.store_id: seeded_mapping(world.qbo_state, world.store_id, REALM)})
        engine = SyncEngine(world.db, books, EngineSettings(backoff_base_s=0, backoff_max_s=0), rng=random.Random(1))
        await engine.drain()
        qbo_invoice = world.qbo_invoice("1002")
        [payment] = [p for p in world.qbo_state.documents(REALM, "Payment")]
        assert payment["Line"][0]["LinkedTxn"][0]["TxnId"] == qbo_invoice["Id"]
        assert payment["TotalAmt"] == Decimal("125.00") and qbo_invoice["Balance"] == Decimal("0.00")
        assert (await reap(links))["reservations_paid"] == 1
        async with world.session.get(pay_url, allow_redirects=False) as resp:
            assert resp.status == 410 and "has been paid" in await resp.text()
    finally:
        await server.close()
