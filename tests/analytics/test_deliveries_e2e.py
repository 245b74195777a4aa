"""`sovterm webhooks deliveries|redeliver` against the whole system: each delivery BTCPay lists is shown
verified, deduplicated, refused (with why) or not delivered, and a redelivery is recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import settle
from tests.support.daemon import free_port
from tests.support.system import System, start_system


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = start_system(tmp_path / "deliveries", mode="deposit")
    yield s
    s.close()


def test_every_delivery_has_an_outcome_and_redeliver_works(system: System) -> None:
    sim, state = system.btcpay, system.btcpay.state
    paid = settle(system, "12.00")
    system.wait_idle()
    hook = next(h for h in state.webhooks.values() if h.store_id == system.store_id)
    first = next(d for d in reversed(list(state.deliveries.values()))
                 if d.webhook_id == hook.id and d.event.get("type") == "InvoiceSettled")

    sim.call(state.redeliver, hook.id, first.id)  # the same event again: answered 200, recorded once
    sim.wait_deliveries_idle()
    secret = hook.secret
    sim.call(setattr, hook, "secret", "not-the-secret-sovterm-holds")
    refused_invoice = sim.call(state.create_invoice, system.store_id, None, "USD")
    sim.wait_deliveries_idle()
    sim.call(setattr, hook, "secret", secret)
    url = hook.url
    sim.call(setattr, hook, "url", f"http://127.0.0.1:{free_port()}/nobody")
    sim.call(state.create_invoice, system.store_id, None, "USD")
    sim.wait_deliveries_idle()
    sim.call(setattr, hook, "url", url)

    rows = system.cli_json("webhooks", "deliveries", "--count", "200")
    by_id = {r["delivery_id"]: r for r in rows}
    assert by_id[first.id]["outcome"] == "verified"
    assert by_id[first.id]["event_type"] == "InvoiceSettled" and by_id[first.id]["invoice_id"] == paid.id
    outcomes = {r["outcome"] for r in rows}
    assert outcomes == {"verified", "deduplicated", "refused", "not delivered"}, outcomes
    refused = next(r for r in rows if r["outcome"] == "refused")
    assert refused["http_code"] == 401 and "signature did not verify" in refused["reason"]
    assert next(r for r in rows if r["outcome"] == "not delivered")["reason"]

    # the refused event, sent again with the right secret, is recorded once
    again = system.cli_json("webhooks", "redeliver", refused["delivery_id"])
    sim.wait_deliveries_idle()
    system.wait_for(lambda: {r["delivery_id"]: r["outcome"] for r in system.cli_json("webhooks", "deliveries")}
                    .get(again["new_delivery_id"]) == "verified", what="the redelivery verified")
    assert system.sql("SELECT COUNT(*) FROM webhook_deliveries WHERE invoice_id = ?", (refused_invoice.id,)) == [(1,)]
    text = system.cli_ok("webhooks", "deliveries")
    assert "deduplicated" in text and "signature did not verify" in text
    assert system.sql("SELECT action, subject FROM audit WHERE action = 'webhooks.redeliver'") == [
        ("webhooks.redeliver", refused["delivery_id"])]
