"""The client against the simulator; every request and response is checked against the spec (fixture)."""

from __future__ import annotations

import asyncio
import logging
import socket
from decimal import Decimal

import aiohttp
import pytest

from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import (
    BTCPayAuthError,
    BTCPayError,
    BTCPayNotFound,
    BTCPayRateLimited,
    BTCPayUnavailable,
    BTCPayValidationError,
)
from sovterm.btcpay.models import PaymentMethodKind, payout_proof_reference
from sovterm.btcpay.permissions import STORE
from sovterm.sim.btcpay_state import Fault
from sovterm.store.secrets import Secret

from .conftest import T0


async def test_server_info_health_and_key(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    assert (await client.health()).synchronized is True
    info = await client.server_info()
    assert info.version and "BTC-CHAIN" in info.supported_payment_methods
    me = await client.current_api_key()
    assert f"{STORE}canmodifystoresettings:{store_id}" in me.permissions
    assert key not in repr(me)  # the key comes back wrapped in Secret
    assert me.api_key is not None and me.api_key.reveal() == key
    stores = await client.list_stores()
    assert [s.id for s in stores] == [store_id]
    assert (await client.get_store(store_id)).default_currency == "USD"


async def test_invoice_create_list_get_payment_methods(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    created = await client.create_invoice(
        store_id, amount=Decimal("12.34"), currency="USD", metadata={"orderId": "A-1", "qboInvoiceId": "77"},
        expiration_minutes=30,
    )
    assert created.status == "New" and created.amount == Decimal("12.34")
    assert created.expiration_time - created.created_time == 30 * 60
    assert created.observed_at_ms is not None
    sim.state.pay(created.id, method="BTC-LN")
    got = await client.get_invoice(store_id, created.id)
    assert got.status == "Settled" and got.metadata["qboInvoiceId"] == "77"
    methods = await client.get_invoice_payment_methods(store_id, created.id)
    kinds = {m.kind for m in methods}
    assert kinds == {PaymentMethodKind.ONCHAIN, PaymentMethodKind.LIGHTNING}
    ln = next(m for m in methods if m.kind == PaymentMethodKind.LIGHTNING)
    assert ln.payments[0].value == ln.amount and ln.rate == sim.state.rate
    listed = await client.list_invoices(store_id, status=["Settled"], include_payment_methods=True)
    assert [i.id for i in listed] == [created.id] and listed[0].payment_methods


async def test_list_invoices_newest_first_with_date_window_and_paging(sim):
    store_id, key = sim.store_with_key()
    ids = [sim.state.create_invoice(store_id, Decimal(i + 1), created=T0 - 1000 + i * 10).id for i in range(25)]
    client = sim.client(key)
    page1 = await client.list_invoices(store_id, skip=0, take=10)
    page2 = await client.list_invoices(store_id, skip=10, take=10)
    assert [i.id for i in page1 + page2] == list(reversed(ids))[:20]
    window = await client.list_invoices(store_id, start_date=T0 - 1000, end_date=T0 - 1000 + 40)
    assert [i.id for i in window] == list(reversed(ids[:5]))  # both ends inclusive


async def test_errors_are_typed(sim):
    store_id, key = sim.store_with_key([STORE + "canviewinvoices"])
    client = sim.client(key)
    with pytest.raises(BTCPayAuthError) as denied:
        await client.create_invoice(store_id, amount=Decimal(1), currency="USD")
    assert denied.value.status == 403 and denied.value.missing_permission == STORE + "cancreateinvoice"
    assert STORE + "cancreateinvoice" in (denied.value.fix or "")
    with pytest.raises(BTCPayAuthError) as unknown_store:
        await client.list_invoices("nope")
    assert unknown_store.value.status == 403  # BTCPay hides unknown stores behind 403
    with pytest.raises(BTCPayNotFound) as missing:
        await client.get_invoice(store_id, "doesnotexist")
    assert missing.value.btcpay_code == "invoice-not-found"
    with pytest.raises(BTCPayAuthError) as bad_key:
        await sim.client("wrong-key").list_stores()
    assert bad_key.value.status == 401 and bad_key.value.btcpay_code == "unauthenticated"
    with pytest.raises(BTCPayValidationError) as invalid:
        await client._request("GET", f"/api/v1/stores/{store_id}/invoices", params={"startDate": "2024-01-01"})
    assert invalid.value.errors[0].path == "startDate"
    sim.validate = False  # the last call sends a malformed startDate on purpose


async def test_missing_permission_error_names_the_permission(sim):
    store_id, key = sim.store_with_key([STORE + "canviewinvoices"])
    with pytest.raises(BTCPayAuthError) as denied:
        await sim.client(key).list_payouts(store_id)
    assert STORE + "canviewpayouts" in str(denied.value)


async def test_refund_creates_pull_payment(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    inv = sim.state.create_invoice(store_id, Decimal("50"))
    with pytest.raises(BTCPayError) as early:
        await client.refund_invoice(store_id, inv.id, refund_variant="RateThen")
    assert early.value.status == 400 and early.value.btcpay_code == "non-refundable"
    sim.state.pay(inv.id, method="BTC-LN")
    pp = await client.refund_invoice(store_id, inv.id, refund_variant="RateThen", description="sorry")
    assert pp.currency == "BTC" and pp.amount == inv.amount_btc() and pp.auto_approve_claims
    assert [p.id for p in await client.list_pull_payments(store_id)] == [pp.id]
    assert (await client.get_pull_payment(pp.id)).view_link


async def test_webhook_management(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    hook = await client.create_webhook(store_id, "http://127.0.0.1:9/webhooks/btcpay/" + store_id)
    assert hook.secret and len(hook.secret.reveal()) >= 16
    assert not hook.authorized_events.everything and "InvoiceSettled" in hook.authorized_events.specific_events
    assert [h.id for h in await client.list_webhooks(store_id)] == [hook.id]
    got = await client.get_webhook(store_id, hook.id)
    assert got.secret is None  # shown only at creation
    new_secret = Secret("rotated-secret-value-1234")
    await client.update_webhook(store_id, hook.id, got.url, secret=new_secret, enabled=False)
    assert sim.state.webhooks[hook.id].secret == "rotated-secret-value-1234"
    assert (await client.get_webhook(store_id, hook.id)).enabled is False
    await client.delete_webhook(store_id, hook.id)
    assert await client.list_webhooks(store_id) == []
    with pytest.raises(BTCPayValidationError):
        await client.create_webhook(store_id, "not-a-url")


async def test_payouts_approve_with_revision_cancel_mark_paid(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    p1 = sim.state.create_payout(store_id, Decimal("130.00"), "USD")
    p2 = sim.state.create_payout(store_id, Decimal("0.001"), "BTC")
    listed = {p.id: p for p in await client.list_payouts(store_id)}
    assert listed[p1.id].state == "AwaitingApproval" and listed[p1.id].payout_amount is None
    seen_revision = listed[p1.id].revision
    sim.state.revise_payout(p1.id, destination="bc1qchangedaddress")
    with pytest.raises(BTCPayError) as stale:
        await client.approve_payout(store_id, p1.id, revision=seen_revision)
    assert stale.value.status == 400 and stale.value.btcpay_code == "old-revision"
    fresh = await client.get_payout(store_id, p1.id)
    approved = await client.approve_payout(store_id, p1.id, revision=fresh.revision)
    assert approved.state == "AwaitingPayment" and approved.payout_amount == Decimal("0.00200000")
    with pytest.raises(BTCPayError) as twice:
        await client.approve_payout(store_id, p1.id, revision=fresh.revision)
    assert twice.value.btcpay_code == "invalid-state"
    await client.mark_payout_paid(store_id, p1.id)
    assert (await client.get_payout(store_id, p1.id)).state == "Completed"
    await client.cancel_payout(store_id, p2.id)
    assert [p.id for p in await client.list_payouts(store_id)] == [p1.id]
    assert {p.id for p in await client.list_payouts(store_id, include_cancelled=True)} == {p1.id, p2.id}


async def test_crowdfund_app_and_sales(sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    app = sim.state.create_crowdfund_app(store_id, "Roaster", target_amount=Decimal("5000"),
                                         perks=[{"id": "mug", "title": "Mug", "price": "25.00"}])
    for _ in range(3):
        inv = sim.state.create_invoice(store_id, Decimal(25), search_terms=[f"crowdfund-app_{app.id}"])
        sim.state.pay(inv.id, method="BTC-LN")
    got = await client.get_crowdfund_app(app.id)
    assert got.target_amount == Decimal("5000") and got.perks[0]["id"] == "mug"
    sales = await client.get_app_sales(app.id, number_of_days=7)
    assert sales.sales_count == 3 and len(sales.series) == 7
    apps = await client.list_apps(store_id)
    assert [(a.id, a.app_type, a.app_name) for a in apps] == [(app.id, "Crowdfund", "Roaster")]
    assert (got.enforce_target_amount, got.reset_every, got.reset_every_amount) == (False, "Never", 1)
    gift = sim.state.contribute(app.id, Decimal("40"), perk="mug")
    found = await client.list_invoices(store_id, text_search=app.search_term)
    assert gift.id in {i.id for i in found} and len(found) == 4
    assert gift.metadata["orderUrl"].endswith(f"/apps/{app.id}/crowdfund") and gift.metadata["itemCode"] == "mug"


async def test_get_retries_5xx_then_succeeds(sim):
    store_id, key = sim.store_with_key()
    sim.state.faults.append(Fault(f"/api/v1/stores/{store_id}/invoices", status=503, times=2))
    assert await sim.client(key).list_invoices(store_id) == []
    assert not sim.state.faults


async def test_get_gives_up_with_unavailable(sim):
    store_id, key = sim.store_with_key()
    sim.state.faults.append(Fault("/api/v1/stores", status=502, times=None))
    with pytest.raises(BTCPayUnavailable) as down:
        await sim.client(key, retry_attempts=2).list_stores()
    assert down.value.status == 502


async def test_writes_are_not_retried(sim):
    store_id, key = sim.store_with_key()
    sim.state.faults.append(Fault(f"/api/v1/stores/{store_id}/invoices", method="POST", status=503, times=1))
    with pytest.raises(BTCPayUnavailable):
        await sim.client(key).create_invoice(store_id, amount=Decimal(1), currency="USD")
    assert not sim.state.invoices  # the single attempt was the injected failure; no retry created one


async def test_rate_limit_honours_retry_after(sim, monkeypatch):
    store_id, key = sim.store_with_key()
    sim.state.faults.append(Fault("/api/v1/stores", status=429, times=1, retry_after="0.05"))
    client = sim.client(key, backoff_base_s=5.0)
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("sovterm.btcpay.client.asyncio.sleep", fake_sleep)
    assert len(await client.list_stores()) == 1
    assert slept == [0.05]
    sim.state.faults.append(Fault("/api/v1/stores", status=429, times=None))
    with pytest.raises(BTCPayRateLimited):
        await sim.client(key, retry_attempts=1).list_stores()


async def test_timeout_is_unavailable(sim):
    store_id, key = sim.store_with_key()
    sim.state.faults.append(Fault("/api/v1/server/info", kind="timeout", sleep_s=0.5, times=None))
    with pytest.raises(BTCPayUnavailable):
        await sim.client(key, timeout_s=0.1, retry_attempts=1).server_info()


async def test_unreachable_is_unavailable_and_key_never_logged(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as session:
        client = BTCPayClient(f"http://127.0.0.1:{port}", Secret("super-secret-key-xyz"), session,
                              retry_attempts=1, backoff_base_s=0.01)
        with pytest.raises(BTCPayUnavailable) as down:
            await client.server_info()
    assert "cannot reach BTCPay" in str(down.value)
    assert "super-secret-key-xyz" not in caplog.text and "super-secret-key-xyz" not in str(down.value)
    assert "GET /api/v1/server/info" in caplog.text  # DEBUG logging happened, without the key


async def test_wallet_and_lightning_node_with_payout_fees(sim):
    """On-chain payouts pay a miner fee (one transaction for a batch), Lightning payouts a routing fee; the
    balances, transactions, payout proofs and payments say so, and match the spec."""
    store_id, key = sim.store_with_key()
    client, state = sim.client(key), sim.state
    chain = state.create_invoice(store_id, Decimal(65), "USD")  # 0.001 BTC at 65,000
    state.pay(chain.id)
    state.confirm(chain.id)
    ln = state.create_invoice(store_id, Decimal("32.50"), "USD")
    state.pay(ln.id, method="BTC-LN")
    a = state.create_payout(store_id, Decimal("0.0002"), approved=True)
    b = state.create_payout(store_id, Decimal("0.0001"), approved=True)
    tx = state.pay_payouts(store_id, [a.id, b.id], fee_sats=1_500)
    c = state.create_payout(store_id, Decimal("0.0001"), payout_method_id="BTC-LN", destination="lnbc1sim",
                            approved=True)
    state.pay_lightning_payout(store_id, c.id, fee_msat=4_000)

    wallet = await client.get_onchain_wallet(store_id)
    assert wallet.balance == Decimal("0.001") - Decimal("0.0003") - Decimal("0.000015")
    listed = await client.list_onchain_transactions(store_id)
    assert [t.sats for t in listed] == [-31_500, 100_000]
    one = await client.get_onchain_transaction(store_id, tx.txid)
    assert one.sats == -31_500 and one.confirmations == 1
    payouts = {p.id: p for p in await client.list_payouts(store_id)}
    assert payout_proof_reference(payouts[a.id].payment_proof) == tx.txid == \
        payout_proof_reference(payouts[b.id].payment_proof)
    payment_hash = payout_proof_reference(payouts[c.id].payment_proof)
    payment = await client.get_lightning_payment(store_id, payment_hash)
    assert (payment.fee_amount, payment.total_amount) == (4_000, 10_004_000)
    balance = await client.get_lightning_balance(store_id)
    assert balance.local_msats == 50_000_000 - 10_004_000  # 0.0005 BTC in, 0.0001 BTC + fee out
    with pytest.raises(BTCPayNotFound):
        await client.get_onchain_transaction(store_id, "00" * 32)


async def test_wallet_needs_its_own_permission(sim):
    store_id, key = sim.store_with_key([STORE + "canviewstoresettings"])
    with pytest.raises(BTCPayAuthError) as err:
        await sim.client(key).get_onchain_wallet(store_id)
    assert err.value.missing_permission == STORE + "canviewwallet"
    with pytest.raises(BTCPayAuthError) as err:
        await sim.client(key).get_lightning_balance(store_id)
    assert err.value.missing_permission == STORE + "canuselightningnode"
