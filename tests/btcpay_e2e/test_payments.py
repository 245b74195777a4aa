"""Journey 1 up to the ledger: a payment at BTCPay becomes a signed delivery, a recorded event and an
up-to-date invoice in the daemon's ledger; forged, misrouted and replayed deliveries are refused or
ignored through the real listener and counted in /metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

from sovterm.btcpay.webhooks import sign
from sovterm.store.secrets import Secret
from tests.support.daemon import wait_for

from .conftest import connect, make_store, metric, query


def post(url: str, body: bytes, signature: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["BTCPay-Sig"] = signature
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_payment_reaches_the_ledger_and_bad_deliveries_are_refused(daemon_factory, btcpay_sim):
    sim, state = btcpay_sim, btcpay_sim.state
    store_id, key = make_store(sim)
    other_store, _ = make_store(sim, "Not followed")
    d = daemon_factory()
    assert connect(d, sim, key).returncode == 0
    hook = next(iter(state.webhooks.values()))

    inv = sim.call(state.create_invoice, store_id, Decimal("25.00"), "USD", metadata={"orderId": "A-1"})
    sim.call(state.pay, inv.id, method="BTC-LN")
    sim.wait_deliveries_idle()

    def recorded() -> bool:
        rows = query(d, "SELECT event_type FROM webhook_deliveries WHERE invoice_id = ?", (inv.id,))
        return {r[0] for r in rows} >= {"InvoiceCreated", "InvoiceReceivedPayment", "InvoiceSettled"}

    wait_for(recorded, what="deliveries recorded")
    row = wait_for(lambda: query(
        d, "SELECT status, amount, currency, order_id FROM invoices WHERE invoice_id = ? AND status = 'Settled'",
        (inv.id,)), what="invoice settled in the ledger")
    assert row == [("Settled", "25.00", "USD", "A-1")]
    paid = query(d, "SELECT payment_method, amount_sats FROM invoice_payments WHERE invoice_id = ?", (inv.id,))
    assert paid == [("lightning", int(inv.amount_btc() * 100_000_000))]
    assert all(dl.status == "HttpSuccess" for dl in state.deliveries.values())

    url = f"{d.url}/webhooks/btcpay/{store_id}"
    delivered = next(dl for dl in state.deliveries.values() if dl.event["type"] == "InvoiceSettled")
    real_sig = sign(Secret(hook.secret), delivered.body)
    n_events = len(query(d, "SELECT 1 FROM webhook_deliveries"))

    # replay of a delivery we already hold: 200 (so BTCPay stops), nothing recorded twice
    assert post(url, delivered.body, real_sig) == (200, "duplicate\n")
    # forged: body changed after signing, or signed with a guessed secret, or not signed at all
    forged = delivered.body.replace(b'"InvoiceSettled"', b'"InvoiceInvalid"').replace(
        delivered.original_delivery_id.encode(), b"ECHOMARKERdeliveryid00")
    assert post(url, forged, real_sig) == (401, "bad_signature\n")
    assert post(url, forged, sign(Secret("guess"), forged)) == (401, "bad_signature\n")
    assert post(url, forged, None) == (401, "missing_signature\n")
    # misrouted: signed with this store's secret but about another store; a store we do not follow
    about_other = json.dumps({**json.loads(delivered.body), "storeId": other_store, "deliveryId": "ECHOMARKERx",
                              "originalDeliveryId": "ECHOMARKERx"}).encode()
    assert post(url, about_other, sign(Secret(hook.secret), about_other)) == (403, "wrong_store\n")
    assert post(f"{d.url}/webhooks/btcpay/{other_store}", delivered.body, real_sig) == (404, "unknown_store\n")
    assert len(query(d, "SELECT 1 FROM webhook_deliveries")) == n_events
    assert query(d, "SELECT COUNT(*) FROM webhook_deliveries WHERE delivery_id LIKE 'ECHOMARKER%'") == [(0,)]
    refusals = query(d, "SELECT reason, http_status FROM webhook_refusals ORDER BY id")
    assert refusals == [("bad_signature", 401), ("bad_signature", 401), ("missing_signature", 401),
                        ("wrong_store", 403), ("unknown_store", 404)]

    _, text = get(f"{d.url}/metrics")
    name = "sovterm_webhook_deliveries_total"
    assert metric(text, name, outcome="accepted") == n_events
    assert metric(text, name, outcome="duplicate") == 1
    assert metric(text, name, outcome="bad_signature") == 2
    assert metric(text, name, outcome="missing_signature") == 1
    assert metric(text, name, outcome="wrong_store") == 1
    assert metric(text, name, outcome="unknown_store") == 1
