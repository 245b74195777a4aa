"""`BTCPayService` and `BTCPayIntake` in-process against the simulator: the intake's ports (what the sync
part is handed), the post-webhook re-read, secret rotation's overlap window, URL discovery. (The
daemon-level tests live next door.)"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.btcpay import setup as btcpay_setup
from sovterm.btcpay import status as btcpay_status
from sovterm.btcpay.intake import BTCPayIntake
from sovterm.btcpay.service import BTCPayService
from sovterm.btcpay.setup import propose_url
from sovterm.btcpay.webhooks import sign
from sovterm.config import Settings
from sovterm.health import Connectors
from sovterm.sim.btcpay import create_app
from sovterm.sim.btcpay_state import BTCPaySimState
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretBox, SecretStore

from .conftest import FULL


class Ports:
    """Stands in for the parts the intake hands work to: records what reached it, inside its transaction."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.invoices: list[tuple[str, str]] = []
        self.broken = False

    async def on_event(self, conn, event) -> None:
        assert conn.in_transaction
        if self.broken:
            raise RuntimeError("sync part bug")
        self.events.append(event.type)

    async def on_invoice(self, conn, store_id, invoice) -> None:
        assert conn.in_transaction
        self.invoices.append((invoice.id, invoice.status))


class Harness:
    def __init__(self, service: BTCPayService, intake: BTCPayIntake, ports: Ports, state: BTCPaySimState, url: str,
                 slow_answers: dict) -> None:
        self.service, self.intake, self.ports, self.state, self.url = service, intake, ports, state, url
        self.slow_answers = slow_answers  # path -> seconds BTCPay takes to answer after acting

    async def connect(self) -> str:
        store = self.state.create_store("Shop")
        key = self.state.create_api_key([f"{p}:{store.id}" for p in FULL])
        await btcpay_setup.connect(self.service, self.url, Secret(key), None)
        await btcpay_setup.select_stores(self.service, [store.id])
        return store.id


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    state = BTCPaySimState(seed=3)
    app = create_app(state)
    slow_answers: dict[str, float] = {}

    @web.middleware
    async def answer_late(request: web.Request, handler):
        response = await handler(request)
        await asyncio.sleep(slow_answers.get(request.path, 0))
        return response

    app.middlewares.insert(0, answer_late)
    server = TestServer(app, port=0)
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    state.public_url = url
    db = await Database.open(tmp_path / "t.db")
    session = aiohttp.ClientSession()
    settings = Settings(data_dir=tmp_path, listener={"public_url": "http://sovterm.test"})
    service = BTCPayService(
        db=db, secrets=SecretStore(db, SecretBox(os.urandom(32))), http=session, connectors=Connectors(),
        settings=settings, environ={},
    )
    ports = Ports()
    intake = BTCPayIntake(service, events=[ports], invoices=[ports])
    intake.refresh_delay_s = 0.1  # long enough to coalesce a test's burst, short enough to wait for
    await service.start()
    intake.start()
    try:
        yield Harness(service, intake, ports, state, url, slow_answers)
    finally:
        await intake.stop()
        await service.stop()
        await session.close()
        await db.close()
        await server.close()


def delivery(state: BTCPaySimState, hook_id: str, event_type: str, invoice_id: str, n: int) -> bytes:
    """A body as BTCPay would send it (the simulator cannot reach the fake public URL)."""
    hook = state.webhooks[hook_id]
    inv = state.invoices[invoice_id]
    body = (
        f'{{\n  "deliveryId": "D{n:05d}",\n  "webhookId": "{hook.id}",\n  "originalDeliveryId": "D{n:05d}",\n'
        f'  "isRedelivery": false,\n  "type": "{event_type}",\n  "timestamp": {inv.created},\n'
        f'  "storeId": "{inv.store_id}",\n  "invoiceId": "{inv.id}",\n  "metadata": {{}}\n}}'
    )
    return body.encode()


async def test_ports_run_in_the_transaction_and_events_coalesce_into_one_reread(harness):
    service, intake, state = harness.service, harness.intake, harness.state
    store_id = await harness.connect()
    await asyncio.sleep(0.05)  # the first poll after selecting
    state.muted = True  # we post the deliveries ourselves
    inv = state.create_invoice(store_id, Decimal("10"), "USD")
    state.pay(inv.id, method="BTC-LN")
    hook_id = next(iter(state.webhooks))
    reads: list[str] = []
    state.latency_s[f"/api/v1/stores/{store_id}/invoices/{inv.id}"] = 0.05

    original = intake.poller.refresh_invoice

    async def counting(store: str, invoice_id: str, **kw) -> bool:
        reads.append(invoice_id)
        return await original(store, invoice_id, **kw)

    intake.poller.refresh_invoice = counting  # type: ignore[method-assign]
    secret = state.webhooks[hook_id].secret
    results = []
    for n, etype in enumerate(["InvoiceCreated", "InvoiceReceivedPayment", "InvoicePaymentSettled", "InvoiceSettled"]):
        raw = delivery(state, hook_id, etype, inv.id, n)
        results.append(await intake.handle_webhook(store_id, raw, {"BTCPay-Sig": sign(Secret(secret), raw)}))
    assert [r.reason for r in results] == ["accepted"] * 4
    assert harness.ports.events == ["InvoiceCreated", "InvoiceReceivedPayment", "InvoicePaymentSettled", "InvoiceSettled"]
    query = "SELECT status FROM invoices WHERE invoice_id = ?"
    for _ in range(100):  # the re-read's transaction has committed once the reader sees the row
        if await service.db.fetchone(query, (inv.id,)):
            break
        await asyncio.sleep(0.02)
    assert (await service.db.fetchone(query, (inv.id,)))[0] == "Settled"
    assert reads == [inv.id]  # four events, none re-read yet when the next came: one read
    assert harness.ports.invoices == [(inv.id, "Settled")]


async def test_a_failing_event_port_rolls_back_and_asks_for_a_retry(harness):
    service, state = harness.service, harness.state
    store_id = await harness.connect()
    state.muted = True
    inv = state.create_invoice(store_id, Decimal("10"), "USD")
    hook_id = next(iter(state.webhooks))

    harness.ports.broken = True
    raw = delivery(state, hook_id, "InvoiceCreated", inv.id, 1)
    result = await harness.intake.handle_webhook(store_id, raw, {"BTCPay-Sig": sign(Secret(state.webhooks[hook_id].secret), raw)})
    assert result.status == 500  # BTCPay retries; nothing half-recorded
    assert (await service.db.fetchone("SELECT COUNT(*) FROM webhook_deliveries"))[0] == 0


async def test_during_rotation_both_secrets_verify_and_after_only_the_new(harness):
    service, state = harness.service, harness.state
    store_id = await harness.connect()
    state.muted = True
    inv = state.create_invoice(store_id, Decimal("10"), "USD")
    hook_id = next(iter(state.webhooks))
    old = state.webhooks[hook_id].secret
    # BTCPay applies the new secret at once but its answer to us is slow
    harness.slow_answers[f"/api/v1/stores/{store_id}/webhooks/{hook_id}"] = 0.3
    rotation = asyncio.create_task(btcpay_setup.rotate_webhook_secret(service, store_id))
    for _ in range(100):
        if state.webhooks[hook_id].secret != old:
            break
        await asyncio.sleep(0.01)
    new = state.webhooks[hook_id].secret
    assert new != old and not rotation.done()
    for n, secret in enumerate((new, old), start=1):  # in the window, BTCPay may have signed with either
        raw = delivery(state, hook_id, "InvoiceCreated", inv.id, n)
        during = await harness.intake.handle_webhook(store_id, raw, {"BTCPay-Sig": sign(Secret(secret), raw)})
        assert during.reason == "accepted"
    await rotation
    raw2 = delivery(state, hook_id, "InvoiceExpired", inv.id, 3)
    after_old = await harness.intake.handle_webhook(store_id, raw2, {"BTCPay-Sig": sign(Secret(old), raw2)})
    after_new = await harness.intake.handle_webhook(store_id, raw2, {"BTCPay-Sig": sign(Secret(new), raw2)})
    assert (after_old.reason, after_new.reason) == ("bad_signature", "accepted")


async def test_status_proposes_a_url_in_discovery_order(tmp_path, harness):
    settings = Settings(data_dir=tmp_path)
    umbrel = {"APP_BTCPAY_SERVER_IP": "10.21.21.19", "APP_BTCPAY_SERVER_PORT": "3003"}
    assert propose_url(settings, {}) == (None, None)
    url, source = propose_url(settings, umbrel)
    assert url == "http://10.21.21.19:3003" and "APP_BTCPAY_SERVER_IP" in source
    packaged = Settings(data_dir=tmp_path, btcpay={"url": "http://btcpay-server_web_1:3003"})
    url, source = propose_url(packaged, umbrel)  # the explicit setting wins
    assert url == "http://btcpay-server_web_1:3003" and "btcpay.url" in source

    harness.service.settings = packaged
    st = await btcpay_status.report(harness.service)
    assert st["state"] == "not_configured" and st["proposed_url"] == "http://btcpay-server_web_1:3003"
    await harness.connect()
    assert "proposed_url" not in await btcpay_status.report(harness.service)  # only while nothing is connected


def test_webhook_base_is_the_internal_address_when_set(tmp_path):
    plain = Settings(data_dir=tmp_path, listener={"public_url": "https://shop.example"})
    assert plain.btcpay_webhook_base == "https://shop.example"
    packaged = Settings(data_dir=tmp_path, btcpay={"webhook_url": "http://sovterm_daemon_1:8080/"})
    assert packaged.btcpay_webhook_base == "http://sovterm_daemon_1:8080"


async def test_stores_lists_what_the_stored_key_sees_without_the_key_again(harness):
    store_id = await harness.connect()
    limited = harness.state.create_store("Second shop")
    listing = await btcpay_setup.stores(harness.service)
    by_id = {s["id"]: s for s in listing["stores"]}
    assert listing["selected"] == [store_id] and by_id[store_id]["ready"] is True
    assert limited.id not in by_id  # the key has no permission on it: BTCPay does not list it
