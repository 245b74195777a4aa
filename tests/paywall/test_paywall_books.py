"""A paid access lands in QuickBooks once, on the Item (and so the income account) its path is mapped to."""

from __future__ import annotations

import random
from decimal import Decimal

from aiohttp.test_utils import TestServer

from sovterm.sim import qbo as qbo_sim
from sovterm.sim.qbo import QBOSimState
from sovterm.sync import items
from sovterm.sync.engine import EngineSettings, SyncEngine
from tests.paywall.conftest import Shop
from tests.paywall.test_paywall_journeys import challenge
from tests.sync.helpers import REALM, DirectBooks, docs, grant, make_client, seeded_mapping


async def test_a_paid_access_is_booked_on_its_mapped_item(shop: Shop) -> None:
    assert shop.services.sync is not None
    shop.services.sync.engine.paused = True  # the daemon's engine has no QuickBooks here: this test's engine posts
    paid = (await challenge(shop, "/api/forecast")).pay(shop)
    assert (await shop.client.get("/api/forecast", headers=paid.l402())).status == 200
    assert shop.services.intake is not None
    await shop.services.intake.poll_all()  # BTCPay's invoice reaches the ledger and a sync job, like any sale

    qbo = QBOSimState(seed=1)
    qbo_sim.seed_company(qbo, REALM, invoices=0)
    grant(qbo)
    books = qbo.books[REALM]
    income = books.add("Account", {"Name": "API Sales", "AccountType": "Income", "AccountSubType": "ServiceFeeIncome",
                                   "CurrentBalance": Decimal("0")})
    item = books.add("Item", {"Name": "API access", "Type": "Service",
                              "IncomeAccountRef": {"value": income["Id"], "name": "API Sales"}})
    db = shop.services.require_db()
    await items.save_item(db, shop.store_id, "paywall:weather", title="Weather API", item_id=item["Id"],
                          name="API access", how="operator")
    server = TestServer(qbo_sim.create_app(qbo), port=0)
    await server.start_server()
    try:
        assert shop.services.http is not None
        client = make_client(str(server.make_url("")).rstrip("/"), shop.services.http)
        engine = SyncEngine(db, DirectBooks(client, {shop.store_id: seeded_mapping(qbo, shop.store_id, REALM)}),
                            EngineSettings(backoff_base_s=0, backoff_max_s=0), rng=random.Random(1))
        await engine.drain()
        await engine.drain()  # nothing more: booked once
    finally:
        await server.close()
    [receipt] = docs(qbo, "SalesReceipt")
    [line] = [ln for ln in receipt["Line"] if ln.get("DetailType") == "SalesItemLineDetail"]
    assert line["SalesItemLineDetail"]["ItemRef"]["value"] == item["Id"]
    assert Decimal(str(receipt["TotalAmt"])) == Decimal("0.25")
