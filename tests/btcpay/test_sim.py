"""The simulator itself: signed deliveries, BTCPay's retry schedule, redelivery, seeding."""

from __future__ import annotations

import asyncio
import collections
import json
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.btcpay.errors import BTCPayError
from sovterm.btcpay.webhooks import ingest, verify_signature
from sovterm.sim.btcpay import seed_store
from sovterm.sim.btcpay_state import RETRY_DELAYS_S, BTCPaySimState, SimClock
from sovterm.store.secrets import Secret

from .conftest import FULL_PERMISSIONS, T0, validator


class Receiver:
    """A webhook endpoint answering a scripted list of statuses, recording what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        self.sigs: list[str] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.sigs.append(request.headers["BTCPay-Sig"])
        assert request.headers["Content-Type"] == "application/json"
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = TestServer(app, port=0)
        await self.server.start_server()
        return str(self.server.make_url("/hook"))

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        await self.server.close()


async def test_retries_follow_btcpay_schedule_with_new_delivery_ids(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    receiver = Receiver([503, 429, 200])
    async with receiver as url:
        hook = await client.create_webhook(store_id, url, events=["InvoiceSettled"])
        inv = sim.state.create_invoice(store_id, Decimal("3"))
        sim.state.mark_status(inv.id, "Settled")
        await sim.state.wait_deliveries_idle()
    events = [json.loads(b) for b in receiver.bodies]
    assert len(events) == 3
    assert all(verify_signature(hook.secret, b, s) for b, s in zip(receiver.bodies, receiver.sigs, strict=True))
    assert len({e["deliveryId"] for e in events}) == 3
    assert {e["originalDeliveryId"] for e in events} == {events[0]["deliveryId"]}
    assert [e["isRedelivery"] for e in events] == [False, True, True]
    assert {e["timestamp"] for e in events} == {T0}  # same payload, re-signed per attempt
    assert events[0]["manuallyMarked"] is True
    assert receiver.bodies[0].startswith(b'{\n  "')  # indented like Newtonsoft
    deliveries = await client.list_webhook_deliveries(store_id, hook.id)
    assert [d.status for d in deliveries] == ["HttpSuccess", "HttpError", "HttpError"]  # newest first
    assert [d.http_code for d in deliveries] == [200, 429, 503]
    assert validator().validate_webhook(events[0]) == []


async def test_no_retry_on_client_error_and_none_without_automatic_redelivery(sim):
    store_id, key = sim.store_with_key()
    receiver = Receiver([400, 500])
    async with receiver as url:
        first = sim.state.create_webhook(store_id, url, everything=False, specific_events=["InvoiceCreated"])
        sim.state.create_invoice(store_id, Decimal(1))
        await sim.state.wait_deliveries_idle()
        assert len(receiver.bodies) == 1  # 400 is final
        del sim.state.webhooks[first.id]
        sim.state.create_webhook(store_id, url, everything=False, specific_events=["InvoiceExpired"],
                                 automatic_redelivery=False)
        inv = sim.state.create_invoice(store_id, Decimal(1))
        sim.state.expire(inv.id)
        await sim.state.wait_deliveries_idle()
    assert len(receiver.bodies) == 2  # the expiry got a 500 and, without automatic redelivery, no retry


def test_retry_schedule_is_btcpays():
    assert len(RETRY_DELAYS_S) == 9 and sum(RETRY_DELAYS_S) == 70 + 3600


async def test_redeliver_keeps_original_delivery_id_and_ingest_dedupes(sim, db):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    receiver = Receiver([])
    async with receiver as url:
        hook = await client.create_webhook(store_id, url, events=["InvoiceCreated"])
        sim.state.create_invoice(store_id, Decimal(1))
        await sim.state.wait_deliveries_idle()
        [first] = await client.list_webhook_deliveries(store_id, hook.id)
        new_id = await client.redeliver_webhook_delivery(store_id, hook.id, first.id)
        await sim.state.wait_deliveries_idle()
    assert new_id != first.id
    original, again = (json.loads(b) for b in receiver.bodies)
    assert again["deliveryId"] == new_id and again["originalDeliveryId"] == original["deliveryId"]
    assert again["isRedelivery"] is True

    async def on_event(conn, event):
        return None

    results = [
        await ingest(db, store_id=store_id, secret=hook.secret, raw=raw, headers={"BTCPay-Sig": sig},
                     max_bytes=1 << 20, on_event=on_event)
        for raw, sig in zip(receiver.bodies, receiver.sigs, strict=True)
    ]
    assert [(r.status, r.duplicate) for r in results] == [(200, False), (200, True)]


async def test_redeliver_of_pruned_delivery_is_409(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    receiver = Receiver([])
    async with receiver as url:
        hook = await client.create_webhook(store_id, url, events=["InvoiceCreated"])
        sim.state.create_invoice(store_id, Decimal(1))
        await sim.state.wait_deliveries_idle()
    [first] = await client.list_webhook_deliveries(store_id, hook.id)
    sim.state.clock.advance(61 * 86_400)
    with pytest.raises(BTCPayError) as pruned:
        await client.redeliver_webhook_delivery(store_id, hook.id, first.id)
    assert (pruned.value.status, pruned.value.btcpay_code) == (409, "webhookdelivery-pruned")


def test_seed_store_is_deterministic_and_covers_every_state():
    def build():
        state = BTCPaySimState(seed=11, clock=SimClock(T0))
        return state, seed_store(state, 300, 60, rng_seed=5)

    a, seeded_a = build()
    b, seeded_b = build()
    assert seeded_a == seeded_b
    assert [(i.id, i.status, i.additional_status, i.amount) for i in a.invoices.values()] == [
        (i.id, i.status, i.additional_status, i.amount) for i in b.invoices.values()]
    states = collections.Counter((i.status, i.additional_status) for i in a.invoices.values())
    for wanted in [("Settled", "None"), ("Settled", "PaidOver"), ("Settled", "Marked"), ("Expired", "None"),
                   ("Expired", "PaidPartial"), ("Expired", "PaidLate"), ("Invalid", "None"),
                   ("Invalid", "Marked"), ("Processing", "None"), ("New", "None"), ("New", "PaidPartial")]:
        assert states[wanted] > 0, wanted
    assert len(a.invoices) == 300
    assert min(i.created for i in a.invoices.values()) >= T0 - 60 * 86_400
    assert any(p.state == "AwaitingApproval" for p in a.payouts.values())
    assert a.pull_payments and a.app_invoices(seeded_a.app_id)
    assert any(m.payments for i in a.invoices.values() for k, m in i.methods.items() if k == "BTC-LN")


async def test_seeded_store_through_the_api_is_spec_valid(sim):
    seeded = seed_store(sim.state, 120, 30, rng_seed=2)
    client = sim.client(seeded.api_key)
    invoices = await client.list_invoices(seeded.store_id, include_payment_methods=True)
    assert len(invoices) == 120
    payouts = await client.list_payouts(seeded.store_id)
    assert {p.state for p in payouts} == {"AwaitingApproval", "Completed"}
    assert await client.list_pull_payments(seeded.store_id)
    assert (await client.get_app_sales(seeded.app_id, number_of_days=30)).sales_count >= 0
    me = await client.current_api_key()
    assert me.permissions and all(p.endswith(":" + seeded.store_id) for p in me.permissions)
    assert Secret(seeded.api_key) == me.api_key


async def test_latency_injection_and_checkout_page(sim):
    store_id, key = sim.store_with_key()
    inv = sim.state.create_invoice(store_id, Decimal("8"))
    sim.state.latency_s["/api/v1/server/info"] = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sim.client(key).server_info()
    assert loop.time() - started >= 0.2
    async with sim.session.post(f"{sim.url}/i/{inv.id}/pay", data={"method": "BTC-CHAIN"}) as resp:
        assert resp.status == 200 and "Processing" in await resp.text()  # followed the 303
    async with sim.session.post(f"{sim.url}/i/{inv.id}/confirm") as resp:
        assert "Settled" in await resp.text()
    sim.exchanges[:] = [e for e in sim.exchanges if e.path.startswith("/api/")]  # HTML pages are not the API


async def test_network_fee_follows_the_stores_network_fee_mode(sim):
    """BTCPay's network fee (BitcoinLikePaymentHandler / NBXplorerListener): 100 vbytes at the fee rate,
    carried by an on-chain payment as `fee`; the status and `paidAmount` count the net only."""
    fee = Decimal("0.00001")  # 10 sat/vB x 100 vB
    assert sim.state.network_fee_btc() == fee
    default_id, key = sim.store_with_key()
    client = sim.client(key)
    assert (await client.get_store(default_id)).model_extra["networkFeeMode"] == "MultiplePaymentsOnly"
    # MultiplePaymentsOnly: one payment pays no fee; the second one does
    single = sim.state.create_invoice(default_id, Decimal(100), rate=Decimal(50000))
    sim.state.pay(single.id)
    twice = sim.state.create_invoice(default_id, Decimal(100), rate=Decimal(50000))
    sim.state.pay(twice.id, amount_btc=Decimal("0.001"))
    [chain, _] = await client.get_invoice_payment_methods(default_id, twice.id)
    assert chain.payment_method_fee == fee and chain.amount == Decimal("0.002") + fee  # the next payment's fee
    sim.state.pay(twice.id)  # the rest, with the fee on top
    sim.state.confirm(twice.id)
    assert [p.fee for p in twice.methods["BTC-CHAIN"].payments] == [0, fee]
    assert twice.methods["BTC-CHAIN"].payments[1].value == Decimal("0.001") + fee
    assert twice.status == "Settled" and twice.additional_status == "None"
    got = await client.get_invoice(default_id, twice.id)
    assert got.paid_amount == Decimal("100.00")  # net of the fee
    [chain, ln] = await client.get_invoice_payment_methods(default_id, twice.id)
    assert chain.payment_method_fee == fee and chain.payments[1].fee == fee and chain.due == 0
    assert ln.payment_method_fee == fee  # fees already paid count in every method's total
    assert [p.fee for p in single.methods["BTC-CHAIN"].payments] == [0]
    # Always: even a single on-chain payment pays it; Lightning never does
    always = sim.state.create_store("Always", network_fee_mode="Always")
    sim.state.api_keys[key].permissions.append(f"{FULL_PERMISSIONS[0]}:{always.id}")
    inv = sim.state.create_invoice(always.id, Decimal(100), rate=Decimal(50000))
    [chain, ln] = await client.get_invoice_payment_methods(always.id, inv.id)
    assert chain.amount == Decimal("0.002") + fee and ln.amount == Decimal("0.002") and ln.payment_method_fee == 0
    sim.state.pay(inv.id)
    assert inv.methods["BTC-CHAIN"].payments[0].fee == fee and inv.net_paid_btc() == Decimal("0.002")
    lightning = sim.state.create_invoice(always.id, Decimal(100), rate=Decimal(50000))
    sim.state.pay(lightning.id, method="BTC-LN")
    assert lightning.methods["BTC-LN"].payments[0].fee == 0 and lightning.status == "Settled"
    # Never: no fee at all
    never = sim.state.create_store("Never", network_fee_mode="Never")
    inv = sim.state.create_invoice(never.id, Decimal(100), rate=Decimal(50000))
    sim.state.pay(inv.id, amount_btc=Decimal("0.001"))
    sim.state.pay(inv.id)
    assert [p.fee for p in inv.methods["BTC-CHAIN"].payments] == [0, 0]
    with pytest.raises(ValueError, match="networkFeeMode"):
        sim.state.create_store("Bad", network_fee_mode="Sometimes")
