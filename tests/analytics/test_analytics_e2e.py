"""`sovterm analytics` against the whole system: invoices made and paid at the BTCPay simulator reach the
ledger through webhooks, and the report agrees with what the simulator itself holds."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import settle
from tests.support.system import System, start_system

SAT = Decimal("0.00000001")


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = start_system(tmp_path / "analytics", mode="deposit")
    yield s
    s.close()


def test_the_report_agrees_with_the_simulator(system: System) -> None:
    paid = [
        settle(system, "12.50", method="BTC-LN", metadata={"itemCode": "LATTE"}),
        settle(system, "30.00", method="BTC-CHAIN", metadata={"itemCode": "BEANS"}),
        settle(system, "7.25", method="BTC-LN", metadata={"itemCode": "LATTE"}),
    ]
    sim = system.btcpay
    lapsed = sim.call(sim.state.create_invoice, system.store_id, Decimal("99.00"), "USD")
    sim.call(sim.state.expire, lapsed.id)
    system.wait_idle()
    system.wait_for(lambda: system.sql("SELECT status FROM invoices WHERE invoice_id = ?", (lapsed.id,))
                    == [("Expired",)], what="the expired invoice in the ledger")

    report = system.cli_json("analytics", "--store", system.store_id)

    # what the simulator holds, worked out here independently of sovterm
    sats = sum(int(p.value / SAT) for inv in paid for m in inv.methods.values() for p in m.payments)
    k = report["kpis"]
    assert (k["created"], k["settled"], k["expired"]) == (4, 3, 1)
    assert (k["conversion"], k["expired_rate"]) == ("0.7500", "0.2500")
    assert (k["volume"], report["currency"], k["volume_sats"]) == ("49.75", "USD", sats)
    assert k["average_ticket"] == "16.58"  # 49.75 / 3
    assert {m["method"]: (m["payments"], m["invoices"]) for m in report["methods"]} == {
        "lightning": (2, 2), "onchain": (1, 1)}
    assert [(i["item"], i["invoices"], i["volume"]) for i in report["items"]] == [
        ("BEANS", 1, "30.00"), ("LATTE", 2, "19.75")]
    assert report["statuses"] == {"Expired": 1, "Settled": 3}
    assert sum(b["settled"] for b in report["series"]) == 3

    table = system.cli_ok("analytics", "--store", system.store_id)
    assert "conversion 75.0 %" in table and "49.75 USD" in table and "BEANS" in table

    rows = list(csv.DictReader(io.StringIO(system.cli_ok("analytics", "--csv", "--by", "month"))))
    assert rows[-1] == {"period": "total", "created": "4", "settled": "3", "volume_USD": "49.75", "sats": str(sats)}
    assert sum(Decimal(r["volume_USD"]) for r in rows[:-1]) == Decimal("49.75")


def test_bad_ranges_and_zones_are_refused_with_the_fix(system: System) -> None:
    backwards = system.cli("analytics", "--from", "2026-12-01", "--to", "2026-11-01")
    assert backwards.returncode == 1 and "is after" in backwards.stderr
    zone = system.cli("analytics", "--tz", "Mars/Olympus")
    assert zone.returncode == 1 and "IANA name" in zone.stderr


def test_a_crowdfund_campaign_as_btcpay_counts_it(system: System) -> None:
    sim = system.btcpay
    app = sim.call(sim.state.create_crowdfund_app, system.store_id, "New roaster", target_amount=Decimal("500"),
                   perks=[{"id": "mug", "title": "Mug", "priceType": "Fixed", "price": "25.00"}])
    paid = [sim.call(sim.state.contribute, app.id, Decimal(a), perk=perk)
            for a, perk in (("25.00", "mug"), ("25.00", "mug"), ("100.00", None))]
    for inv in paid:
        sim.call(sim.state.pay, inv.id, method="BTC-LN")
    waiting = sim.call(sim.state.contribute, app.id, Decimal("60.00"))
    sim.call(sim.state.pay, waiting.id, method="BTC-CHAIN")  # unconfirmed: pending, not raised
    settle(system, "9.99")  # a sale of the store, not of the campaign
    system.wait_idle()
    ids = [inv.id for inv in (*paid, waiting)]  # each is re-read a moment after its webhook: wait for the ledger
    system.wait_for(lambda: system.sql(
        f"SELECT COUNT(*) FROM invoices WHERE status IN ('Settled', 'Processing') AND invoice_id IN "
        f"({','.join('?' * len(ids))})", ids) == [(4,)], what="the contributions in the ledger")

    refreshed = system.cli_json("crowdfund", "refresh")  # the read at follow time may have linked some already
    assert (refreshed["apps"], refreshed["errors"]) == (1, {})
    assert system.sql("SELECT COUNT(*) FROM crowdfund_invoices WHERE app_id = ?", (app.id,)) == [(4,)]
    [listed] = system.cli_json("crowdfund", "list")
    assert (listed["title"], listed["raised"], listed["pending"], listed["percent"], listed["contributors"]) == (
        "New roaster", "150.00", "60.00", "30.00", 4)
    shown = system.cli_json("crowdfund", "show", app.id)
    assert shown["perks"] == [{"perk": "mug", "title": "Mug", "sold": 2}]
    assert sum(d["contributions"] for d in shown["daily"]) == 4

    # a new contribution counts before the next refresh: its orderUrl names the app
    late = sim.call(sim.state.contribute, app.id, Decimal("40.00"))
    sim.call(sim.state.pay, late.id, method="BTC-LN")
    system.wait_idle()
    system.wait_for(lambda: system.cli_json("crowdfund", "show", app.id)["raised"] == "190.00",
                    what="the new contribution counted")
    text = system.cli_ok("crowdfund", "show", app.id)
    assert "190.00 of 500.00 USD (38.00 %)" in text and "Mug" in text, text
