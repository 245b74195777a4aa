"""The pay page end to end against both simulators: redirects, reuse, concurrency, reaper, refusals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.btcpay.models import QBO_REF_METADATA_KEY
from sovterm.links.pay import PayPage
from sovterm.links.reaper import reap
from sovterm.links.service import LinkService
from sovterm.qbo.client import request_id
from sovterm.sim.btcpay_state import Fault
from sovterm.sim.qbo import FaultRule
from sovterm.web.links import add_routes
from tests.links.harness import World


class Page:
    def __init__(self, world: World, links: LinkService) -> None:
        self.world, self.links = world, links
        self.server: TestServer | None = None

    async def start(self) -> Page:
        app = web.Application()
        pay_page = PayPage(self.links)
        add_routes(app, lambda request: pay_page)
        self.server = TestServer(app, port=0)
        await self.server.start_server()
        return self

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def get(self, token: str, suffix: str = "") -> tuple[int, str, dict[str, str]]:
        async with self.world.session.get(self.url(f"/pay/{token}{suffix}"), allow_redirects=False) as resp:
            body = await resp.read()
            text = body.decode("latin-1")
            return resp.status, text, dict(resp.headers)


@pytest.fixture
async def page(world: World) -> AsyncIterator[Page]:
    p = await Page(world, world.links()).start()
    yield p
    assert p.server is not None
    await p.server.close()


def token_of(url: str) -> str:
    return url.rsplit("/pay/", 1)[1]


async def test_click_creates_invoice_for_open_balance_and_reuses_it(world: World, page: Page) -> None:
    link = await page.links.create_qbo("1002", actor="alice", audit=world.audit)
    status, body, headers = await page.get(token_of(link["url"]))
    assert status == 303, body
    [inv] = world.btcpay_invoices()
    assert headers["Location"] == f"{world.btcpay_state.public_url}/i/{inv.id}"
    qbo_invoice = world.qbo_invoice("1002")
    assert inv.amount == Decimal("125.00") and inv.currency == "USD"
    assert inv.metadata[QBO_REF_METADATA_KEY] == qbo_invoice["Id"]
    assert inv.metadata["orderId"] == "1002" and inv.metadata["qboDocNumber"] == "1002"
    assert inv.metadata["payLinkId"] == link["link_id"]
    assert inv.expiration - inv.created == 30 * 60  # settings.links.checkout_minutes
    status2, _, headers2 = await page.get(token_of(link["url"]))
    assert status2 == 303 and headers2["Location"] == headers["Location"]
    assert len(world.btcpay_invoices()) == 1  # the second click reused the reservation


async def test_simultaneous_clicks_create_one_invoice(world: World, page: Page) -> None:
    link = await page.links.create_qbo("1001", actor="alice", audit=world.audit)
    world.btcpay_state.latency_s["/api/v1/stores/"] = 0.2  # keep the first creation in flight
    results = await asyncio.gather(*(page.get(token_of(link["url"])) for _ in range(8)))
    assert {r[0] for r in results} == {303}
    assert len({r[2]["Location"] for r in results}) == 1
    assert len(world.btcpay_invoices()) == 1
    rows = await world.db.fetchall("SELECT state FROM link_reservations")
    assert [r[0] for r in rows] == ["open"]


async def test_reaper_expires_reservation_and_next_click_creates_new_invoice(world: World, page: Page) -> None:
    link = await page.links.create_qbo("1001", actor="alice", audit=world.audit)
    _, _, first = await page.get(token_of(link["url"]))
    [inv] = world.btcpay_invoices()
    summary = await reap(page.links)
    assert summary["reservations_expired"] == 0  # not due yet
    world.btcpay_state.expire(inv.id)
    world.clock.now += 31 * 60
    summary = await reap(page.links)
    assert summary["reservations_expired"] == 1
    _, _, second = await page.get(token_of(link["url"]))
    assert second["Location"] != first["Location"]
    assert len(world.btcpay_invoices()) == 2


async def test_processing_keeps_reservation_then_payment_guards_double_invoicing(world: World, page: Page) -> None:
    link = await page.links.create_qbo("1001", actor="alice", audit=world.audit)
    await page.get(token_of(link["url"]))
    [inv] = world.btcpay_invoices()
    world.btcpay_state.pay(inv.id, method="BTC-CHAIN")  # seen, not confirmed: Processing
    world.clock.now += 31 * 60
    summary = await reap(page.links)
    assert summary["reservations_processing"] == 1 and summary["reservations_expired"] == 0
    status, body, again = await page.get(token_of(link["url"]))  # a payment in flight: no checkout, no new invoice
    assert status == 202 and "being confirmed" in body and "Location" not in again
    assert len(world.btcpay_invoices()) == 1
    world.btcpay_state.confirm(inv.id)
    assert (await reap(page.links))["reservations_paid"] == 1
    # settled at BTCPay, but the Payment is not in QuickBooks yet: no second invoice for the same balance
    status, body, _ = await page.get(token_of(link["url"]))
    assert status == 409 and "received your payment" in body
    assert len(world.btcpay_invoices()) == 1
    # the sync loop posts the Payment: the invoice is paid in full
    qbo = await world.qbo()
    invoice = world.qbo_invoice("1001")
    await qbo.create("Payment", {
        "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal("100.00"),
        "Line": [{"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }, request_id=request_id("test-payment", invoice["Id"]))
    status, body, _ = await page.get(token_of(link["url"]))
    assert status == 410 and "has been paid" in body
    assert (await page.links.link(link["link_id"]))["state"] == "paid"


async def test_refusal_pages(world: World, page: Page) -> None:
    link = await page.links.create_qbo("1001", actor="alice", audit=world.audit)
    token = token_of(link["url"])
    kid, payload, tag = token.split(".")
    # tampered, wrong key, unknown key id: 404, nothing internal shown
    for bad in (f"{kid}.{payload}x.{tag}", f"{kid}.{payload}.{'A' * len(tag)}", f"00000000.{payload}.{tag}", "junk"):
        status, body, headers = await page.get(bad)
        assert status == 404 and "not valid" in body and "signature" not in body, bad
        assert headers["Content-Type"].startswith("text/html")
    assert world.btcpay_invoices() == []
    # a QuickBooks outage, then a BTCPay outage: 503 with Retry-After, nothing created
    world.qbo_state.faults.append(FaultRule("503", route="invoice", times=1))
    status, body, headers = await page.get(token)
    assert status == 503 and headers["Retry-After"] and "try again" in body and "QBO" not in body
    world.btcpay_state.faults.append(Fault("/api/v1/stores/", status=502, method="POST"))
    status, body, _ = await page.get(token)
    assert status == 503 and "Nothing was charged" in body
    assert world.btcpay_invoices() == []
    # voided in QuickBooks
    qbo = await world.qbo()
    inv = world.qbo_invoice("1001")
    await qbo.void("Invoice", inv["Id"], inv["SyncToken"], request_id=request_id("void", inv["Id"]))
    status, body, _ = await page.get(token)
    assert status == 410 and "cancelled" in body
    # expired by the operator: replaying the token gets 410
    other = await page.links.create_qbo("1002", actor="alice", audit=world.audit)
    await page.links.expire(other["link_id"], audit=world.audit)
    status, body, _ = await page.get(token_of(other["url"]))
    assert status == 410 and "expired" in body
    # expired by time
    third = await page.links.create_qbo("1003", actor="alice", audit=world.audit, expires_days=1)
    world.clock.now += 2 * 86_400
    status, _, _ = await page.get(token_of(third["url"]))
    assert status == 410


async def test_retired_key_and_replayed_token_after_payment(world: World, page: Page) -> None:
    fixed = await page.links.create_fixed("25.00", "usd", "Gift card", actor="alice", audit=world.audit)
    token = token_of(fixed["url"])
    status, _, _ = await page.get(token)
    assert status == 303
    [inv] = world.btcpay_invoices()
    assert inv.amount == Decimal("25.00") and inv.currency == "USD"
    assert inv.metadata["orderId"] == f"link-{fixed['link_id']}" and inv.metadata["itemDesc"] == "Gift card"
    world.btcpay_state.pay(inv.id, method="BTC-LN")  # Lightning settles at once
    await reap(page.links)
    world.clock.now += 31 * 60
    await reap(page.links)
    status, body, _ = await page.get(token)  # replay after payment
    assert status == 410 and "has been paid" in body
    assert len(world.btcpay_invoices()) == 1
    # rotate, retire the key that signed the link: the link stops working
    second = await page.links.create_fixed("5", "EUR", None, actor="alice", audit=world.audit)
    await page.links.keys.rotate()
    await page.links.keys.retire(second["kid"])
    status, body, _ = await page.get(token_of(second["url"]))
    assert status == 410 and "expired" in body


async def test_a_one_sat_link_is_stored_and_reserved_in_plain_digits(world: World, page: Page) -> None:
    link = await page.links.create_fixed("0.00000001", "BTC", None, actor="alice", audit=world.audit)
    assert link["amount"] == "0.00000001"
    status, _, _ = await page.get(token_of(link["url"]))
    assert status == 303
    stored = await world.db.fetchone("SELECT l.amount, r.amount FROM pay_links l JOIN link_reservations r "
                                     "USING (link_id) WHERE l.link_id = ?", (link["link_id"],))
    assert stored == ("0.00000001", "0.00000001")  # not '1E-8'


async def test_rate_limit_per_address(world: World) -> None:
    page = await Page(world, world.links(rate_limit_per_min=3)).start()
    try:
        statuses = [(await page.get("junk"))[0] for _ in range(5)]
        assert statuses == [404, 404, 404, 429, 429]
        status, body, headers = await page.get("junk")
        assert "Too many requests" in body and headers["Retry-After"] == "60"
    finally:
        assert page.server is not None
        await page.server.close()


async def test_qr_png(world: World, page: Page) -> None:
    link = await page.links.create_qbo("1001", actor="alice", audit=world.audit)
    async with world.session.get(page.url(f"/pay/{token_of(link['url'])}/qr.png")) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert (await resp.read()).startswith(b"\x89PNG\r\n\x1a\n")
    status, _, _ = await page.get("junk", "/qr.png")
    assert status == 404


async def test_bulk_create_and_memo(world: World) -> None:
    links = world.links(write_to_qbo_memo=True)
    dry = await links.bulk_create(actor="alice", audit=world.audit, dry_run=True)
    assert dry["open_invoices"] == 3 and len(dry["would_create"]) == 3 and dry["created"] == []
    assert await links.list() == []
    first = await links.create_qbo("1001", actor="alice", audit=world.audit)
    assert first["memo_written"] == "written"
    assert world.qbo_invoice("1001")["CustomerMemo"]["value"] == "Pay in bitcoin: " + first["url"]
    done = await links.bulk_create(actor="alice", audit=world.audit, dry_run=False)
    assert done["already_linked"] == 1 and len(done["created"]) == 2
    listed = await links.list()
    assert {x["qbo_doc_number"] for x in listed} == {"1001", "1002", "1003"}
    assert all(x["url"].startswith("https://shop.example/pay/") for x in listed)
    # a memo that would grow past QuickBooks' limit is left alone
    long_invoice = world.qbo_invoice("1002")
    long_invoice["CustomerMemo"] = {"value": "x" * 990}
    again = await links.create_qbo("1002", actor="alice", audit=world.audit)
    assert again["memo_written"].startswith("skipped")
    assert [(subject, outcome) for subject, _, outcome in world.audited] == [
        (link["link_id"], "created") for link in (first, *done["created"], again)]


async def test_head_and_link_previews_never_create_an_invoice(world: World, page: Page) -> None:
    """#19 point 13: a HEAD request or a chat app unfurling a pasted link is no customer's click."""
    link = await page.links.create_qbo("1001", actor="alice", audit=world.audit)
    url = page.url(f"/pay/{token_of(link['url'])}")
    async with world.session.head(url, allow_redirects=False) as resp:
        assert resp.status == 200 and "Location" not in resp.headers
    slack = {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}
    async with world.session.get(url, headers=slack, allow_redirects=False) as resp:
        assert resp.status == 200 and "Location" not in resp.headers and "Pay in bitcoin" in await resp.text()
    async with world.session.head(page.url("/pay/junk"), allow_redirects=False) as resp:
        assert resp.status == 404
    assert world.btcpay_invoices() == []
    status, _, headers = await page.get(token_of(link["url"]))  # the person's click
    assert status == 303 and len(world.btcpay_invoices()) == 1


async def test_tampered_tokens_are_summed_up_in_the_log(world: World, page: Page, caplog) -> None:
    """#19 point 13: forged requests are counted; the log gets the first and a summary, not one line each."""
    from sovterm.web.links import REFUSED_LOG

    REFUSED_LOG.flush()  # whatever earlier tests left in the window
    caplog.set_level(logging.INFO, logger="sovterm")
    caplog.clear()
    for i in range(25):
        assert (await page.get(f"forged{i}"))[0] == 404
    REFUSED_LOG.flush()
    lines = [r.getMessage() for r in caplog.records if "pay" in r.getMessage()]
    assert len(lines) == 2 and "24 more" in lines[1], lines
