"""What happens when things go wrong: a delivery lost while the daemon was down, BTCPay unreachable,
a webhook secret rotated, and disconnecting."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

from sovterm.btcpay.webhooks import sign
from sovterm.store.secrets import Secret
from tests.support.daemon import wait_for

from .conftest import connect, make_store, query, status_json
from .test_payments import post


def readyz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_delivery_lost_while_down_is_recovered_by_the_poll_after_restart(daemon_factory, btcpay_sim):
    sim, state = btcpay_sim, btcpay_sim.state
    store_id, key = make_store(sim)
    d = daemon_factory()
    assert connect(d, sim, key).returncode == 0
    hook = next(iter(state.webhooks.values()))
    assert d.stop() == 0

    # BTCPay restarted meanwhile and lost its retry queue: one attempt, refused connection, gone
    sim.call(setattr, hook, "automatic_redelivery", False)
    inv = sim.call(state.create_invoice, store_id, Decimal("12.50"), "EUR")
    sim.call(state.pay, inv.id, method="BTC-LN")
    sim.wait_deliveries_idle()
    assert {dl.status for dl in state.deliveries.values() if dl.event.get("invoiceId") == inv.id} == {"Failed"}

    d.start()
    row = wait_for(lambda: query(d, "SELECT status, amount, currency FROM invoices WHERE invoice_id = ?", (inv.id,)),
                   what="the poll loop to find the invoice")
    assert row == [("Settled", "12.50", "EUR")]
    assert query(d, "SELECT COUNT(*) FROM webhook_deliveries WHERE invoice_id = ?", (inv.id,)) == [(0,)]

    def poll_summary() -> dict | None:  # recorded when the run ends, just after its last write
        rows = query(d, "SELECT summary FROM loop_runs WHERE loop = 'btcpay.poll'")
        summary = json.loads(rows[0][0]) if rows else {}
        changed = summary.get("stores", {}).get(store_id, {}).get("changed", 0)
        return summary if changed else None  # a run before the stop changed nothing

    assert wait_for(poll_summary, what="the poll run's summary")["state"] == "connected"


def test_btcpay_unreachable_is_a_state_not_a_crash(daemon_factory, btcpay_sim):
    sim = btcpay_sim
    store_id, key = make_store(sim)
    d = daemon_factory()
    assert connect(d, sim, key).returncode == 0
    assert readyz(d.url)[0] == 200

    sim.go_offline()
    code, st = status_json(d, "btcpay", "status")
    assert code == 1 and st["state"] == "unreachable" and sim.url in st["detail"]
    assert st["stores"][0]["webhook"]["health"].startswith("unknown")
    overall = d.cli("status")
    assert overall.returncode == 1
    assert any(line.split()[:2] == ["btcpay", "unreachable:"] for line in overall.stdout.splitlines())
    code, body = readyz(d.url)
    assert code == 503 and body["connectors"]["btcpay"]["state"] == "unreachable"
    poll = d.cli("btcpay", "poll")
    assert poll.returncode == 1 and "unreachable" in poll.stdout
    assert d.proc is not None and d.proc.poll() is None  # still running

    sim.go_online()
    code, st = status_json(d, "btcpay", "status")
    assert code == 0 and st["state"] == "connected"
    assert readyz(d.url)[0] == 200


def test_rotated_secret_refuses_the_old_and_accepts_the_new_then_disconnect(daemon_factory, btcpay_sim):
    sim, state = btcpay_sim, btcpay_sim.state
    store_id, key = make_store(sim)
    d = daemon_factory()
    assert connect(d, sim, key).returncode == 0
    hook = next(iter(state.webhooks.values()))
    old_secret = hook.secret
    before = dict(query(d, "SELECT name, ciphertext FROM secrets"))[f"btcpay:webhook:{store_id}"]

    out = d.cli("btcpay", "rotate-webhook-secret", store_id)
    assert out.returncode == 0, out.stderr
    assert hook.secret != old_secret and hook.secret not in out.stdout + out.stderr
    assert dict(query(d, "SELECT name, ciphertext FROM secrets"))[f"btcpay:webhook:{store_id}"] != before

    inv = sim.call(state.create_invoice, store_id, Decimal("5.00"), "USD")
    sim.wait_deliveries_idle()
    wait_for(lambda: query(d, "SELECT 1 FROM webhook_deliveries WHERE invoice_id = ?", (inv.id,)),
             what="a delivery signed with the new secret")
    created = next(dl for dl in state.deliveries.values() if dl.event.get("invoiceId") == inv.id)
    replayed_with_old = created.body.replace(created.id.encode(), b"OldSecretDelivery00000")
    url = f"{d.url}/webhooks/btcpay/{store_id}"
    assert post(url, replayed_with_old, sign(Secret(old_secret), replayed_with_old)) == (401, "bad_signature\n")
    assert post(url, replayed_with_old, sign(Secret(hook.secret), replayed_with_old))[0] == 200
    actions = [r[0] for r in query(d, "SELECT action FROM audit WHERE outcome = 'ok'")]
    assert "btcpay.rotate_webhook_secret" in actions

    gone = d.cli("btcpay", "disconnect")
    assert gone.returncode == 0, gone.stderr
    assert not state.webhooks  # our webhook deleted at BTCPay
    assert [r[0] for r in query(d, "SELECT name FROM secrets WHERE name LIKE 'btcpay:%'")] == []
    code, st = status_json(d, "btcpay", "status")
    assert st["state"] == "not_configured"
    assert post(url, created.body, sign(Secret(hook.secret), created.body)) == (404, "unknown_store\n")
    assert "btcpay.disconnect" in [r[0] for r in query(d, "SELECT action FROM audit")]
