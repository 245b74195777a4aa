"""The payment-to-books flow is built, not registered: the daemon's part stages, run in `PARTS` order,
hand the BTCPay intake the sync, links and payouts services as its ports, and the payout mirror the sync
service as its completed-payout port. A webhook accepted at the route reaches a sync job and the payout
mirror with nothing registered after construction."""

from __future__ import annotations

import json
import os
import time
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from sovterm.btcpay import ledger
from sovterm.btcpay.intake import BTCPayIntake
from sovterm.btcpay.webhooks import sign
from sovterm.config import load_settings
from sovterm.logs import LogRing, LogSetup
from sovterm.parts import PARTS
from sovterm.services import Services
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretBox, SecretStore
from sovterm.systemd import Notifier
from sovterm.web.app import create_listener_app

STORE = "S1"
HOOK_SECRET = Secret("whsec-flow-test")


def delivery(n: int, event_type: str, **fields: str) -> bytes:
    return json.dumps({
        "deliveryId": f"D{n}", "webhookId": "W1", "originalDeliveryId": f"D{n}", "isRedelivery": False,
        "type": event_type, "timestamp": int(time.time()), "storeId": STORE, **fields,
    }).encode()


async def seed(db: Database, secrets: SecretStore) -> None:
    """A followed store whose BTCPay is unreachable: the daemon starts anyway and accepts webhooks."""
    await kv.put(db, "btcpay:connection", {"url": "http://127.0.0.1:9", "features": ["sync", "webhooks", "payouts"]})
    await secrets.put("btcpay:api_key", Secret("api-key-flow-test"))
    await secrets.put(f"btcpay:webhook:{STORE}", HOOK_SECRET)
    async with db.transaction() as conn:
        await ledger.upsert_store(conn, STORE, name="Shop", selected=True, webhook_id="W1")
    await db.write("INSERT INTO payouts(store_id, payout_id, state, revision, updated_at) "
                   "VALUES(?, 'P1', 'AwaitingApproval', 1, 0)", (STORE,))


def test_the_intake_part_starts_after_the_parts_it_hands_work_to() -> None:
    order = [part.name for part in PARTS]
    assert order.index("btcpay") < order.index("sync") < order.index("intake")
    assert order.index("links") < order.index("intake") and order.index("payouts") < order.index("intake")
    assert order.index("sync") < order.index("payouts")  # the mirror is built with sync's completed port


async def test_a_webhook_reaches_sync_and_the_payout_mirror_through_constructor_ports(tmp_path: Path) -> None:
    settings = load_settings(None, {"SOVTERM_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)})
    services = Services(settings, {}, Notifier({}), LogSetup(ring=LogRing(), handlers=[]))
    db = services.db = await Database.open(tmp_path / "t.db")
    services.secrets = SecretStore(db, SecretBox(os.urandom(32)))
    await seed(db, services.secrets)
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stages:
        services.http = http
        for part in PARTS:
            if part.stage is not None:
                await stages.enter_async_context(part.stage(services))
        intake = services.intake
        assert isinstance(intake, BTCPayIntake)
        # the journey, as the constructors wired it
        assert intake.btcpay is services.btcpay
        assert intake.events == (services.sync, services.payouts)
        assert intake.invoices[:2] == (services.sync, services.links)
        assert [type(p).__name__ for p in intake.invoices[2:]] == ["InvoiceAggregates"]  # the analytics' days
        assert services.payouts is not None and services.payouts.completed is services.sync
        for service in (services.btcpay, intake, services.sync, services.links, services.payouts):
            assert not [name for name in vars(service) if name.endswith("_handlers")]

        app = create_listener_app(services)
        for part in PARTS:
            if part.routes is not None:
                part.routes(app)
        async with TestClient(TestServer(app)) as client:
            for n, body in enumerate([
                delivery(1, "InvoiceSettled", invoiceId="INV1"),
                delivery(2, "PayoutApproved", payoutId="P1", payoutState="AwaitingPayment"),
            ]):
                answer = await client.post(f"/webhooks/btcpay/{STORE}", data=body,
                                           headers={"BTCPay-Sig": sign(HOOK_SECRET, body)})
                assert (answer.status, await answer.text()) == (200, "accepted\n"), n

        # sync's event port queued the invoice's job in the delivery's transaction
        job = await db.fetchone("SELECT payload FROM sync_jobs WHERE store_id = ? AND invoice_id = 'INV1'", (STORE,))
        assert job is not None and json.loads(job[0])["cause"] == "InvoiceSettled"
        # the payout mirror's event port noted the new state
        assert (await db.fetchone("SELECT state FROM payouts WHERE payout_id = 'P1'"))[0] == "AwaitingPayment"
    await db.close()
