"""A click follows the live QuickBooks balance (docs/pay-links.md): paid page, superseded checkout marked
Invalid and a new one reserved, reuse, a payment in flight, BTCPay refusing the mark, a key without the
permission; reservations closed by the BTCPay invoice hook with no reaper; the client's mark-status call."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest

from sovterm.btcpay import setup as btcpay_setup
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import BTCPayValidationError
from sovterm.btcpay.intake import BTCPayIntake
from sovterm.btcpay.permissions import STORE
from sovterm.btcpay.service import BTCPayService
from sovterm.btcpay.webhooks import sign
from sovterm.health import Connectors
from sovterm.links.pay import PayPage
from sovterm.qbo.client import request_id
from sovterm.store.secrets import Secret
from tests.btcpay.conftest import SimHarness
from tests.btcpay_e2e.test_service import delivery
from tests.links.harness import World


def token_of(url: str) -> str:
    return url.rsplit("/pay/", 1)[1]


async def cheque(world: World, doc_number: str, amount: str) -> None:
    """The bookkeeper records a payment by cheque against the invoice, directly in QuickBooks."""
    qbo = await world.qbo()
    invoice = world.qbo_invoice(doc_number)
    await qbo.create("Payment", {
        "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal(amount),
        "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }, request_id=request_id("cheque", invoice["Id"], amount))


async def reservations(world: World) -> list[tuple[str, str, str]]:
    rows = await world.db.fetchall("SELECT btcpay_invoice_id, amount, state FROM link_reservations ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]


async def first_click(world: World, page: PayPage, doc_number: str) -> tuple[str, Any]:
    """A link for QuickBooks invoice `doc_number` and the click that reserves its first BTCPay invoice."""
    link = await page.links.create_qbo(doc_number, actor="alice", audit=world.audit)
    token = token_of(link["url"])
    outcome = await page.pay(token)
    assert outcome.status == 303 and outcome.reason == "created"
    [inv] = world.btcpay_invoices()
    return token, inv


async def test_balance_changed_invalidates_the_checkout_and_reserves_the_new_balance(world: World) -> None:
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")  # invoice 1001: 100.00
    assert old.amount == Decimal("100.00")
    await cheque(world, "1001", "40.00")
    outcome = await page.pay(token)
    assert outcome.status == 303 and outcome.reason == "created" and outcome.amount == Decimal("60.00")
    assert (old.status, old.additional_status) == ("Invalid", "Marked")
    new = next(i for i in world.btcpay_invoices() if i.id != old.id)
    assert new.amount == Decimal("60.00") and outcome.location == f"{world.btcpay_state.public_url}/i/{new.id}"
    assert await reservations(world) == [(old.id, "100.00", "superseded"), (new.id, "60.00", "open")]
    # same balance: the same checkout, nothing created or invalidated
    again = await page.pay(token)
    assert (again.status, again.reason, again.location) == (303, "reused", outcome.location)
    assert len(world.btcpay_invoices()) == 2 and new.status == "New"


async def test_balance_zero_is_the_paid_page_and_the_open_checkout_is_invalidated(world: World) -> None:
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")
    await cheque(world, "1001", "100.00")
    outcome = await page.pay(token)
    assert (outcome.status, outcome.reason) == (410, "paid") and "has been paid" in outcome.message
    assert old.status == "Invalid"  # nobody can pay the old checkout from an open tab either
    assert await reservations(world) == [(old.id, "100.00", "superseded")]
    assert len(world.btcpay_invoices()) == 1


async def test_payment_in_flight_is_neither_invalidated_nor_doubled(world: World) -> None:
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")
    world.btcpay_state.pay(old.id, method="BTC-CHAIN")  # seen on chain, not confirmed: Processing
    await cheque(world, "1001", "40.00")  # and the bookkeeper records a cheque meanwhile
    outcome = await page.pay(token)
    assert (outcome.status, outcome.reason, outcome.location) == (202, "payment_processing", None)
    assert old.status == "Processing" and len(world.btcpay_invoices()) == 1
    assert await reservations(world) == [(old.id, "100.00", "processing")]


class PaidJustBeforeTheMark(BTCPayClient):
    """The customer's Lightning payment lands between the click's read and its mark-status call."""

    def __init__(self, world: World) -> None:
        super().__init__(world.btcpay_url, Secret(world.api_key), world.session, timeout_s=5, retry_attempts=0)
        self.world = world
        self.marks: list[int] = []

    async def mark_invoice_status(self, store_id: str, invoice_id: str, status: str) -> Any:
        self.world.btcpay_state.pay(invoice_id, method="BTC-LN")
        try:
            return await super().mark_invoice_status(store_id, invoice_id, status)
        except BTCPayValidationError as exc:
            self.marks.append(exc.status or 0)
            raise


async def test_mark_refused_because_settled_refreshes_and_acts_on_the_fresh_state(world: World) -> None:
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")
    racing = PaidJustBeforeTheMark(world)

    async def btcpay_for(store_id: str) -> BTCPayClient:
        return racing

    page.links.btcpay_for = btcpay_for
    await cheque(world, "1001", "40.00")
    outcome = await page.pay(token)
    assert racing.marks == [422]  # BTCPay: "Status can only be marked to invalid or settled within certain conditions."
    assert old.status == "Settled"
    # the customer paid 100.00 through the link; the sync has not posted it: no invoice for the 60.00 left
    assert (outcome.status, outcome.reason) == (409, "payment_pending_in_books")
    assert len(world.btcpay_invoices()) == 1
    assert await reservations(world) == [(old.id, "100.00", "paid")]


async def test_key_without_canmodifyinvoices_is_named_and_no_second_checkout_opens(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")
    create_only = world.btcpay_state.create_api_key(
        [f"{STORE}{p}:{world.store_id}" for p in ("canviewinvoices", "cancreateinvoice")])

    async def btcpay_for(store_id: str) -> BTCPayClient:
        return BTCPayClient(world.btcpay_url, Secret(create_only), world.session, timeout_s=5, retry_attempts=0)

    page.links.btcpay_for = btcpay_for
    await cheque(world, "1001", "40.00")
    with caplog.at_level(logging.ERROR, logger="sovterm.links"):
        outcome = await page.pay(token)
    assert (outcome.status, outcome.reason) == (503, "btcpay_cannot_invalidate")
    assert "btcpay.store.canmodifyinvoices" in caplog.text and create_only not in caplog.text
    assert old.status == "New" and len(world.btcpay_invoices()) == 1


async def test_webhook_closes_the_reservation_without_the_reaper(world: World) -> None:
    """No reaper runs here at all: the expiry webhook's re-read reaches the links port."""
    service = BTCPayService(db=world.db, secrets=world.secrets, http=world.session, connectors=Connectors(),
                            settings=world.settings, environ={})
    links = world.links()
    intake = BTCPayIntake(service, events=[], invoices=[links])  # what the intake part's stage does
    intake.refresh_delay_s = 0.05
    await service.start()
    intake.start()
    try:
        await btcpay_setup.connect(service, world.btcpay_url, Secret(world.api_key))
        await btcpay_setup.select_stores(service, [world.store_id])
        await asyncio.sleep(0.2)  # the first poll after selecting
        state = world.btcpay_state
        state.muted = True  # the test posts the delivery itself (the public URL is not reachable)
        _, inv = await first_click(world, PayPage(links), "1002")
        state.expire(inv.id)
        hook_id = next(iter(state.webhooks))
        raw = delivery(state, hook_id, "InvoiceExpired", inv.id, 1)
        signature = sign(Secret(state.webhooks[hook_id].secret), raw)
        result = await intake.handle_webhook(world.store_id, raw, {"BTCPay-Sig": signature})
        assert result.reason == "accepted"
        for _ in range(100):
            if (await reservations(world))[0][2] != "open":
                break
            await asyncio.sleep(0.02)
        assert await reservations(world) == [(inv.id, "125.00", "expired")]
    finally:
        await intake.stop()
        await service.stop()


async def test_hook_ignores_invoices_no_link_created(world: World) -> None:
    links = world.links()
    _, inv = await first_click(world, PayPage(links), "1002")
    client = world.btcpay_client()
    other = world.btcpay_state.create_invoice(world.store_id, Decimal(5), "USD")
    world.btcpay_state.expire(other.id)
    async with world.db.transaction() as conn:
        await links.on_invoice(conn, world.store_id, await client.get_invoice(world.store_id, other.id))
    assert await reservations(world) == [(inv.id, "125.00", "open")]
    world.btcpay_state.pay(inv.id, method="BTC-LN")
    async with world.db.transaction() as conn:
        await links.on_invoice(conn, world.store_id, await client.get_invoice(world.store_id, inv.id))
    assert await reservations(world) == [(inv.id, "125.00", "paid")]


async def test_mark_status_request_follows_the_greenfield_spec(sim: SimHarness) -> None:
    store_id, key = sim.store_with_key([STORE + "canmodifyinvoices"])
    client = sim.client(key)
    inv = await client.create_invoice(store_id, amount=Decimal("100.00"), currency="USD")
    marked = await client.mark_invoice_status(store_id, inv.id, "Invalid")
    assert (marked.status, marked.additional_status) == ("Invalid", "Marked")
    with pytest.raises(BTCPayValidationError) as refused:
        await client.mark_invoice_status(store_id, inv.id, "Invalid")  # already Invalid
    assert refused.value.status == 422
    assert ("POST", f"/api/v1/stores/{store_id}/invoices/{inv.id}/status") in {(e.method, e.path) for e in sim.exchanges}



async def test_voided_invoice_invalidates_the_open_checkout(world: World) -> None:
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")
    qbo = await world.qbo()
    invoice = world.qbo_invoice("1001")
    await qbo.void("Invoice", invoice["Id"], invoice["SyncToken"], request_id=request_id("void", invoice["Id"]))
    outcome = await page.pay(token)
    assert (outcome.status, outcome.reason) == (410, "voided")
    assert old.status == "Invalid" and await reservations(world) == [(old.id, "100.00", "superseded")]


async def test_checkout_with_money_on_it_is_not_invalidated(world: World) -> None:
    """Part of the old amount already arrived (New / PaidPartial): invalidating would leave those coins
    outside the books, so the customer finishes that checkout."""
    page = PayPage(world.links())
    token, old = await first_click(world, page, "1001")
    world.btcpay_state.pay(old.id, method="BTC-CHAIN", amount_btc=old.amount_btc() / 4)
    assert (old.status, old.additional_status) == ("New", "PaidPartial")
    await cheque(world, "1001", "40.00")
    outcome = await page.pay(token)
    assert (outcome.status, outcome.reason, outcome.amount) == (303, "part_paid", Decimal("100.00"))
    assert old.status == "New" and len(world.btcpay_invoices()) == 1
