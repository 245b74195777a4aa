"""HTTP 402 through the real listener: challenge -> pay the BOLT11 in the BTCPay simulator -> preimage ->
retry (L402, LSAT, x402) -> 200 with a receipt -> the sale in the books' intake; every refusal, counted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from typing import Any

import bolt11
from x402.http.utils import decode_payment_required_header, decode_payment_response_header
from x402.schemas import PaymentPayload, PaymentRequired

from sovterm.parts.paywall import sales_rows
from tests.paywall.conftest import Shop

CHALLENGE = re.compile(r'^L402 version="0", token="([A-Za-z0-9+/=]+)", invoice="(ln[a-z0-9]+)"$')


class Paid:
    """A challenge as a client sees it, and what paying its BOLT11 taught."""

    def __init__(self, headers: Any, body: str) -> None:
        match = CHALLENGE.match(headers["WWW-Authenticate"])
        assert match, headers["WWW-Authenticate"]
        self.token, self.bolt11 = match.group(1), match.group(2)
        self.required = decode_payment_required_header(headers["PAYMENT-REQUIRED"])  # x402's own decoder
        assert isinstance(self.required, PaymentRequired)
        assert PaymentRequired.model_validate_json(body) == self.required
        self.preimage = ""

    def pay(self, shop: Shop) -> Paid:
        self.preimage = shop.sim.state.pay_bolt11(self.bolt11)
        return self

    def l402(self) -> dict[str, str]:
        return {"Authorization": f"L402 {self.token}:{self.preimage}"}

    def x402(self, preimage: str | None = None) -> dict[str, str]:
        payload = PaymentPayload(accepted=self.required.accepts[0], payload={"preimage": preimage or self.preimage},
                                 resource=self.required.resource)
        return {"PAYMENT-SIGNATURE": base64.b64encode(payload.model_dump_json(by_alias=True).encode()).decode()}


async def challenge(shop: Shop, path: str, **headers: str) -> Paid:
    answer = await shop.client.get(path, headers={"Accept": "application/json", **headers})
    assert answer.status == 402, await answer.text()
    return Paid(answer.headers, await answer.text())


async def test_a_priced_path_sold_to_a_machine_three_ways_and_booked(shop: Shop) -> None:
    first = await challenge(shop, "/api/forecast?city=Lisbon")
    [requirement] = first.required.accepts
    decoded = bolt11.decode(first.bolt11)
    [invoice] = [i for i in shop.sim.state.invoices.values() if i.metadata.get("paywallResource") == "weather"]
    # the draft's Lightning "exact" shape: bip122 mainnet, msat, the node, the BOLT11 in extra
    assert requirement.scheme == "exact" and requirement.network == "bip122:000000000019d6689c085ae165831e93"
    assert requirement.asset == "BTC" and int(requirement.amount) == decoded.amount_msat > 0
    assert requirement.pay_to == decoded.payee and requirement.extra["invoice"] == first.bolt11
    assert requirement.extra["paymentFlow"] == "upfront" and requirement.extra["assetTransferMethod"] == "bolt11"
    assert decoded.amount_msat == invoice.amount_btc() * 10**11 == 385_000  # 0.25 USD at 65,000, in whole sats
    assert first.required.resource is not None and first.required.resource.url == "https://shop.example/api/forecast"
    assert invoice.metadata["itemCode"] == "paywall:weather" and invoice.metadata["itemDesc"] == "Weather API"

    first.pay(shop)
    assert hashlib.sha256(bytes.fromhex(first.preimage)).hexdigest() == decoded.payment_hash
    answer = await shop.client.get("/api/forecast?city=Lisbon", headers=first.l402())
    assert answer.status == 200 and (await answer.json())["path"] == "/v1/forecast"
    assert shop.upstream_seen[-1]["query"] == "city=Lisbon" and "Authorization" not in shop.upstream_seen[-1]
    settle = decode_payment_response_header(answer.headers["PAYMENT-RESPONSE"])
    assert settle.success and settle.transaction == decoded.payment_hash and settle.amount == str(decoded.amount_msat)

    # the legacy LSAT scheme, with the preimage in base64 as its older revisions sent it
    lsat = base64.b64encode(bytes.fromhex(first.preimage)).decode()
    answer = await shop.client.get("/api/forecast", headers={"Authorization": f"LSAT {first.token}:{lsat}"})
    assert answer.status == 200

    # x402 v2: the client echoes the requirement it accepted and sends the preimage
    second = (await challenge(shop, "/api/radar")).pay(shop)
    answer = await shop.client.post("/api/radar", headers=second.x402(), data=b"{}")
    assert answer.status == 200 and "PAYMENT-RESPONSE" in answer.headers
    assert decode_payment_response_header(answer.headers["PAYMENT-RESPONSE"]).transaction == \
        bolt11.decode(second.bolt11).payment_hash

    # each paid access is a BTCPay invoice the intake records like any other, so the sync books it
    assert shop.services.intake is not None
    await shop.services.intake.poll_all()
    db = shop.services.require_db()
    row = await db.fetchone("SELECT status, json_extract(metadata, '$.itemCode') FROM invoices WHERE invoice_id = ?",
                            (invoice.id,))
    assert row == ("Settled", "paywall:weather")
    assert await db.fetchone("SELECT 1 FROM sync_jobs WHERE invoice_id = ?", (invoice.id,)) is not None
    await shop.gate.flush()
    [weather] = [s for s in await sales_rows(shop.gate) if s.resource == "weather"]
    assert (weather.sold, weather.total, weather.currency) == (2, "0.50", "USD")
    assert (weather.challenges, weather.paid_requests, weather.refused) == (2, 3, 0)


async def test_every_refusal_has_its_status_and_reason_and_is_counted(shop: Shop) -> None:
    paid = (await challenge(shop, "/api/x")).pay(shop)
    other = (await challenge(shop, "/files/report.txt")).pay(shop)

    async def refused(path: str, headers: dict[str, str]) -> tuple[int, str]:
        answer = await shop.client.get(path, headers=headers)
        return answer.status, (await answer.json())["error"]

    raw = bytearray(base64.b64decode(paid.token))
    raw[raw.index(b"valid_until=") + 12] ^= 1  # a caveat altered: the chain no longer matches
    tampered = base64.b64encode(bytes(raw)).decode()
    assert await refused("/api/x", {"Authorization": f"L402 {tampered}:{paid.preimage}"}) == (401, "bad signature")
    assert await refused("/api/x", {"Authorization": f"L402 {paid.token}:{'00' * 32}"}) == (401, "wrong preimage")
    assert await refused("/api/x", paid.x402("11" * 32)) == (401, "wrong preimage")
    assert await refused("/api/x", other.l402()) == (403, "token for another resource")
    assert await refused("/api/x", {"Authorization": "L402 !!:zz"}) == (400, "malformed credential")
    shop.sim.state.clock.advance(15 * 60 + 600 + 1)  # past the invoice's life plus the access granted
    answer = await shop.client.get("/api/x", headers=paid.l402())
    assert answer.status == 402 and (await answer.json())["error"] == "expired"
    assert "WWW-Authenticate" in answer.headers  # a fresh challenge to pay again
    answer = await shop.client.get("/files/report.txt", headers=other.l402())
    assert answer.status == 200 and await answer.text() == "quarterly report\n"
    counted = (await shop.gate.counters())["weather"]
    assert counted == {"challenge": 2, "bad signature": 1, "wrong preimage": 2, "token for another resource": 1,
                       "malformed credential": 1, "expired": 1}
    await shop.gate.flush()
    assert shop.gate.counts == {}  # kept in memory until the loop adds them to one row per outcome
    assert (await shop.gate.counters())["weather"] == counted


async def test_a_directory_is_served_without_leaving_it(shop: Shop) -> None:
    paid = (await challenge(shop, "/files/report.txt")).pay(shop)
    for path in ("/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/..%2fsecret.txt", "/files/nothing"):
        answer = await shop.client.get(path, headers=paid.l402())
        assert answer.status == 404, path
        assert "not for sale" not in await answer.text()
    answer = await shop.client.get("/files/report.txt", headers=paid.l402())
    assert answer.status == 200
    # sovterm's own routes keep their answers beside the priced ones
    assert (await shop.client.post("/healthz")).status == 405
    assert (await shop.client.get("/elsewhere")).status == 404


async def test_pay_link_answers_machines_with_its_one_reservation(shop: Shop) -> None:
    links = shop.services.links
    assert links is not None

    async def audit(*args: Any, **kw: Any) -> None:
        return None

    link = await links.create_fixed("12.00", "USD", "Invoice 7", actor="alice", audit=audit)
    path = "/pay/" + link["url"].rsplit("/pay/", 1)[1]
    shop.sim.state.latency_s["/api/v1/stores/"] = 0.05  # keep the first reservation in flight
    answers = await asyncio.gather(*(shop.client.get(path, headers={"Accept": "application/json"}) for _ in range(3)))
    shop.sim.state.latency_s.clear()
    assert [a.status for a in answers] == [402, 402, 402]
    created = [i for i in shop.sim.state.invoices.values() if i.metadata.get("payLinkId") == link["link_id"]]
    assert len(created) == 1  # concurrent first requests: one BTCPay invoice
    paid = Paid(answers[0].headers, await answers[0].text())
    assert {Paid(a.headers, await a.text()).bolt11 for a in answers} == {paid.bolt11}
    assert bolt11.decode(paid.bolt11).amount_msat == 18_462_000  # 12.00 USD at 65,000, in whole sats
    # a person's click still goes to the checkout of the same invoice
    click = await shop.client.get(path, allow_redirects=False)
    assert click.status == 303 and click.headers["Location"].endswith(created[0].id)
    paid.pay(shop)
    answer = await shop.client.get(path, headers=paid.l402())
    body = await answer.json()
    assert answer.status == 200 and body["paid"] and body["btcpay_invoice_id"] == created[0].id
    assert decode_payment_response_header(answer.headers["PAYMENT-RESPONSE"]).success
    assert (await shop.client.get(path, headers={"Accept": "application/json"})).status == 410  # paid: no new invoice


async def test_a_store_without_lightning_gets_a_clear_error_not_a_broken_challenge(shop: Shop) -> None:
    shop.sim.state.stores[shop.store_id].lightning = False
    answer = await shop.client.get("/api/x", headers={"Accept": "application/json"})
    assert answer.status == 503 and (await answer.json())["error"] == "lightning unavailable"
    assert "WWW-Authenticate" not in answer.headers and "PAYMENT-REQUIRED" not in answer.headers
    again = await shop.client.get("/api/x", headers={"Accept": "application/json"})
    assert again.status == 503
    made = [i for i in shop.sim.state.invoices.values() if i.metadata.get("paywallResource") == "weather"]
    assert len(made) == 1  # the store is not asked again for a while: no invoice per request

    async def audit(*args: Any, **kw: Any) -> None:
        return None

    assert shop.services.links is not None
    link = await shop.services.links.create_fixed("5.00", "USD", None, actor="alice", audit=audit)
    path = "/pay/" + link["url"].rsplit("/pay/", 1)[1]
    answer = await shop.client.get(path, headers={"Accept": "application/json"})
    body = await answer.json()
    assert answer.status == 406 and body["error"] == "lightning unavailable"
    assert body["pay_in_browser"] == f"https://shop.example{path}"
    assert (await shop.client.get(path, allow_redirects=False)).status == 303  # people still pay on-chain


def test_the_challenge_body_is_valid_json_for_x402_clients() -> None:
    # the shape clients parse without the x402 package: camelCase keys, x402Version 2
    from sovterm.paywall import challenge as wire

    invoice = wire.Invoice402("lnbc1", b"\x01" * 32, 1000, "02" + "ab" * 32, wire.NETWORKS["bc"], 2_000_000_000)
    body = json.loads(wire.payment_required(b"mac", invoice, url="https://x/y", description="d", now=1_999_999_000)
                      .model_dump_json(by_alias=True, exclude_none=True))
    assert body["x402Version"] == 2 and body["accepts"][0]["payTo"] == "02" + "ab" * 32
    assert body["accepts"][0]["maxTimeoutSeconds"] == 1000


async def test_unpaid_requests_share_a_challenge_and_are_limited_per_client(shop: Shop) -> None:
    shop.sim.state.latency_s["/api/v1/stores/"] = 0.05  # keep the first challenge's invoice in flight
    answers = await asyncio.gather(*(shop.client.get("/api/x", headers={"Accept": "application/json"})
                                     for _ in range(3)))
    shop.sim.state.latency_s.clear()
    assert [a.status for a in answers] == [402, 402, 402]
    assert len({a.headers["WWW-Authenticate"] for a in answers}) == 1  # one challenge, one BTCPay invoice
    assert len([i for i in shop.sim.state.invoices.values() if i.metadata.get("paywallResource")]) == 1
    listener = shop.services.settings.listener.model_copy(update={"rate_limit_paywall_per_min": 3})
    shop.services.settings = shop.services.settings.model_copy(update={"listener": listener})
    statuses = [(await shop.client.get("/api/x", headers={"Accept": "application/json"})).status for _ in range(4)]
    assert statuses == [402, 402, 402, 429]
    assert (await shop.gate.counters())["weather"]["rate_limited"] == 1
