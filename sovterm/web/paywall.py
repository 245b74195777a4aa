"""HTTP 402 on the public listener: the machine answer of a pay link, and the gate in front of priced paths.

A request that asks for JSON or carries an L402/LSAT `Authorization` or an x402 payment header is a
machine's. With no credential it gets `402 Payment Required`: the L402 challenge in `WWW-Authenticate`
and the x402 v2 `PAYMENT-REQUIRED` header, with the same JSON as the body. Its retry with the preimage is
checked from memory (`paywall.gate.Gate.check`) and answered with a `PAYMENT-RESPONSE` receipt. Refusals
answer JSON `{"error": <reason>}` with 400 (malformed), 401 (bad signature, wrong preimage, unknown key),
403 (a token for another resource), or a fresh 402 for an expired one; each is counted, and unpaid
requests (each challenge of a priced path is a BTCPay invoice) are rate-limited per client.

Priced paths are matched by one router resource that consults the gate's live table, so paths added with
`sovterm paywall add` are served at once, and every other route keeps its own 404/405 answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from yarl import URL

from sovterm.burstlog import BurstLog
from sovterm.errors import UserFacingError
from sovterm.links.pay import PayPage
from sovterm.links.tokens import TokenGone, TokenInvalid
from sovterm.paywall import challenge as wire
from sovterm.paywall.gate import LINKS_BUCKET, Challenge, Gate, NoLightning, Priced
from sovterm.paywall.macaroon import Grant, MacaroonRefused
from sovterm.paywall.upstream import proxy, serve_file
from sovterm.web.app import SERVICES
from sovterm.web.clients import RateLimiter, client_address

log = logging.getLogger("sovterm.web.paywall")
REFUSED_LOG = BurstLog(log, "refused 402 credential", level=logging.INFO)
NO_LIGHTNING_LOG = BurstLog(log, "402 challenge impossible", level=logging.WARNING)
PAYWALL_LIMITER = web.AppKey("paywall_limiter", RateLimiter)
#: The router label of every priced path (metrics; the listener's own limits leave it to the gate).
CANONICAL = "/{paywall}"
NO_STORE = {"Cache-Control": "no-store"}


def wants_machine(request: web.Request) -> bool:
    headers = request.headers
    if headers.get(wire.PAYMENT_SIGNATURE) or headers.get(wire.LEGACY_X_PAYMENT):
        return True
    if headers.get("Authorization", "").strip()[:5].upper() in ("L402 ", "LSAT "):
        return True
    accept = headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _credential(request: web.Request) -> wire.Credential | None:
    headers = request.headers
    return wire.credential(headers.get("Authorization"),
                           headers.get(wire.PAYMENT_SIGNATURE) or headers.get(wire.LEGACY_X_PAYMENT))


def json_answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers={**NO_STORE, **(headers or {})})


def refused(exc: MacaroonRefused) -> web.Response:
    return json_answer(exc.status, {"error": exc.reason})


def challenge_answer(ch: Challenge, url: str, now: int, error: str | None = None) -> web.Response:
    required = wire.payment_required(ch.macaroon, ch.invoice, url=url, description=ch.description, now=now, error=error)
    headers = {**NO_STORE, "WWW-Authenticate": wire.www_authenticate(ch.macaroon, ch.invoice),
               wire.PAYMENT_REQUIRED: wire.encode_header(required)}
    return web.Response(status=402, text=required.model_dump_json(by_alias=True, exclude_none=True),
                        content_type="application/json", headers=headers)


def paid_headers(grant: Grant) -> dict[str, str]:
    return {**NO_STORE, wire.PAYMENT_RESPONSE: wire.encode_header(wire.receipt(grant.payment_hash, grant.network,
                                                                               grant.amount_msat))}


def _gate(request: web.Request) -> Gate | None:
    services = request.app.get(SERVICES)
    return getattr(services, "paywall", None) if services is not None else None


def _public_url(request: web.Request) -> str:
    return f"{request.app[SERVICES].settings.public_url}{request.rel_url.path}"


# -- pay links ---------------------------------------------------------------------------------------


async def machine_pay(request: web.Request, page: PayPage) -> web.Response:
    """`GET /pay/{token}` for a machine: the link's reservation (the same one a person's click gets) as a 402
    challenge, or the paid answer for a retry that proves the payment."""
    gate = _gate(request)
    if gate is None:
        return json_answer(503, {"error": "machine payments are not available"})
    token = request.match_info["token"]
    try:
        _, claims = await page.links.keys.verify(token)
    except TokenGone:
        return json_answer(410, {"error": "link expired"})
    except TokenInvalid as exc:
        REFUSED_LOG.note(exc.reason, f"pay link {exc.reason}", client_address(request))
        return json_answer(404, {"error": "link not recognised"})
    resource = f"link:{claims.link_id}"
    error = None
    try:
        credential = _credential(request)
        if credential is not None:
            grant = gate.check(credential, resource)
            gate.count(LINKS_BUCKET, "paid")
            return json_answer(200, {"paid": True, "link_id": claims.link_id, "btcpay_invoice_id": grant.invoice,
                                     "amount_msat": grant.amount_msat}, paid_headers(grant))
    except MacaroonRefused as exc:
        gate.count(LINKS_BUCKET, exc.reason)
        REFUSED_LOG.note(exc.reason, f"pay link {exc.reason}", client_address(request))
        if exc.reason != "expired":
            return refused(exc)
        error = exc.reason
    outcome, reservation = await page.reserve(token)
    if reservation is None:
        headers = {"Retry-After": str(outcome.retry_after_s)} if outcome.retry_after_s else None
        return json_answer(outcome.status, {"error": outcome.reason or outcome.title, "message": outcome.message},
                           headers)
    description = f"Payment link {claims.link_id}"
    try:
        ch = await gate.challenge_for_invoice(resource, reservation["store_id"], reservation["btcpay_invoice_id"],
                                              description)
    except NoLightning as exc:
        gate.count(LINKS_BUCKET, "no_lightning")
        NO_LIGHTNING_LOG.note("no_lightning", f"{exc.message}; fix: {exc.fix}")
        return json_answer(406, {"error": "lightning unavailable",
                                 "message": "This merchant does not accept Lightning payments, which HTTP 402 needs. "
                                            "Open the link in a browser to pay on-chain.",
                                 "pay_in_browser": _public_url(request)})
    except (UserFacingError, TimeoutError) as exc:
        log.warning("pay link %s: no 402 challenge: %s", claims.link_id, exc or "BTCPay timed out")
        return json_answer(503, {"error": "payment server unavailable"}, {"Retry-After": "120"})
    gate.count(LINKS_BUCKET, "challenge")
    return challenge_answer(ch, _public_url(request), gate.now(), error)


# -- priced paths --------------------------------------------------------------------------------------


class PricedPaths(web.Resource):
    """One router resource for every priced path: it matches only while the gate prices the path."""

    def __init__(self, lookup: Callable[[str], tuple[Priced, str] | None]) -> None:
        super().__init__()
        self._lookup = lookup

    @property
    def canonical(self) -> str:
        return CANONICAL

    def _match(self, path: str) -> dict[str, str] | None:
        found = self._lookup(path)
        return None if found is None else {"name": found[0].entry.name, "tail": found[1]}

    def raw_match(self, path: str) -> bool:
        return False

    def get_info(self) -> dict[str, Any]:  # type: ignore[override]
        return {"path": CANONICAL}

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError("priced paths are the operator's, not ours to build")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError


async def gated(request: web.Request) -> web.StreamResponse:
    gate = _gate(request)
    priced = gate.priced.get(request.match_info["name"]) if gate is not None else None
    if gate is None or priced is None:
        return json_answer(404, {"error": "not found"})
    name = priced.entry.name
    client = client_address(request)
    error = None
    try:
        credential = _credential(request)
        if credential is not None:
            grant = gate.check(credential, priced.resource)
            gate.count(name, "paid")
            headers = paid_headers(grant)
            tail = request.match_info["tail"]
            if priced.entry.directory is not None:
                return await serve_file(request, priced.entry.directory, tail, headers)
            assert priced.entry.upstream is not None
            return await proxy(request, _http(request), priced.entry.upstream, tail, headers)
    except MacaroonRefused as exc:
        gate.count(name, exc.reason)
        REFUSED_LOG.note(exc.reason, f"{name}: {exc.reason}", client)
        if exc.reason != "expired":
            if not _allow(request, client):
                gate.count(name, "rate_limited")
                return json_answer(429, {"error": "too many requests"}, {"Retry-After": "60"})
            return refused(exc)
        error = exc.reason
    if not _allow(request, client):
        gate.count(name, "rate_limited")
        return json_answer(429, {"error": "too many requests"}, {"Retry-After": "60"})
    try:
        ch = await gate.challenge(priced, client)
    except NoLightning as exc:
        gate.count(name, "no_lightning")
        NO_LIGHTNING_LOG.note("no_lightning", f"{name}: {exc.message}; fix: {exc.fix}")
        return json_answer(503, {"error": "lightning unavailable",
                                 "message": "This merchant cannot take Lightning payments right now."})
    except (UserFacingError, TimeoutError) as exc:
        gate.count(name, "btcpay_unavailable")
        log.warning("paywall %s: no 402 challenge: %s", name, exc or "BTCPay timed out")
        return json_answer(503, {"error": "payment server unavailable"}, {"Retry-After": "120"})
    gate.count(name, "challenge")
    return challenge_answer(ch, _public_url(request), gate.now(), error)


def _http(request: web.Request) -> Any:
    http = request.app[SERVICES].http
    assert http is not None, "the http stage has not started"
    return http


def _allow(request: web.Request, client: str) -> bool:
    per_min = request.app[SERVICES].settings.listener.rate_limit_paywall_per_min
    return request.app[PAYWALL_LIMITER].allow(client, per_min)


def add_routes(app: web.Application) -> None:
    services = app[SERVICES]
    app[PAYWALL_LIMITER] = RateLimiter()

    def lookup(path: str) -> tuple[Priced, str] | None:
        gate = services.paywall
        return gate.match(path) if gate is not None else None

    resource = PricedPaths(lookup)
    app.router.register_resource(resource)
    resource.add_route("*", gated)
