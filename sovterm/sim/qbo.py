"""A QuickBooks Online simulator: Intuit's OAuth server and the Accounting API subset sovterm uses.

Behaves like Intuit where sovterm's correctness depends on it: single-use codes, refresh-token
rotation (the previous refresh token dies as soon as a new one is issued; reuse → `invalid_grant`),
revoke, `requestid` replay, Ids and SyncTokens, open balances on invoices, DocNumber uniqueness,
only-filterable query fields, batch (≤ 30), Fault bodies, and the throttles (500 requests/min,
40 batches/min, 10 concurrent) scaled by `time_scale` so benchmarks run fast. Faults are injected per
route with a seeded RNG: 429 (JSON or Intuit's XML form), 500, 503, a hang (timeout), a connection
dropped after the write committed, an answer held back after the write committed (a daemon killed
meanwhile never learns it), the OAuth gateway's `{"error", "error_description"}` 401, and the 3100
"insufficient scope" refusal. Payment and Transfer cannot be filtered by `DocNumber` (Intuit
documents no such filter), so finding them again must work without it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import secrets as pysecrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web

from sovterm.qbo.models import dumps, loads
from sovterm.sim.qbo_books import CANONICAL, Books, SimFault

FaultKind = Literal["429", "429_xml", "500", "503", "timeout", "drop_after_commit", "hang_after_commit",
                    "401_gateway", "403_scope"]
DAY_S = 86_400


@dataclass
class FaultRule:
    """Inject `kind` on `route` (lowercase entity, "query", "batch", "token" or "*")."""

    kind: FaultKind
    route: str = "*"
    probability: float = 1.0
    times: int | None = None  # how many times it may still fire; None = always
    after: int = 0  # let this many matching requests through first (a crash after N documents)


@dataclass
class RefreshGrant:
    realm_id: str
    client_id: str
    expires_at: float
    active: bool = True


@dataclass
class CompanyTraffic:
    requests: deque[float] = field(default_factory=deque)
    batches: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    replays: dict[str, tuple[int, str]] = field(default_factory=dict)
    max_in_flight_seen: int = 0


@dataclass
class QBOSimState:
    time_scale: float = 1.0
    requests_per_min: int = 500
    batches_per_min: int = 40
    max_concurrent: int = 10
    access_ttl_s: int = 3600
    refresh_ttl_s: int = 100 * DAY_S
    refresh_hard_ttl_s: int = 5 * 365 * DAY_S
    honor_requestid: bool = True  # False mimics the reported cases where Intuit ignores it
    deny_consent: bool = False
    hang_s: float = 30.0
    token_delay_s: float = 0.0  # makes concurrent refreshes overlap in tests
    seed: int = 0
    clients: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # id → (secret, redirect URIs)
    books: dict[str, Books] = field(default_factory=dict)
    consent_realm: str | None = None
    faults: list[FaultRule] = field(default_factory=list)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    access_tokens: dict[str, tuple[str, float, str]] = field(default_factory=dict)  # → (realm, exp, refresh)
    traffic: dict[str, CompanyTraffic] = field(default_factory=dict)
    token_calls: list[str] = field(default_factory=list)  # grant types, in order
    request_log: list[tuple[float, str, str, str, int]] = field(default_factory=list)  # (t, realm, method, route, status)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        self.clients[client_id] = (client_secret, set(redirect_uris))

    def documents(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        return list(self.books[realm_id].table(entity).values())

    def expire_access_tokens(self) -> None:
        for token, (realm, _, refresh) in list(self.access_tokens.items()):
            self.access_tokens[token] = (realm, 0.0, refresh)

    def fault_for(self, route: str) -> FaultKind | None:
        for rule in self.faults:
            if rule.route not in ("*", route) or (rule.times is not None and rule.times <= 0):
                continue
            if rule.after > 0:
                rule.after -= 1
                continue
            if self.rng.random() < rule.probability:
                if rule.times is not None:
                    rule.times -= 1
                return rule.kind
        return None


STATE_KEY = web.AppKey("qbo_sim_state", QBOSimState)


def _tid() -> str:
    return str(uuid.uuid4())


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=dumps(body), content_type="application/json",
                        headers={"intuit_tid": _tid()})


def _throttle_response(xml: bool) -> web.Response:
    if xml:
        text = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2026-01-01T00:00:00.000-08:00">'
            '<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; '
            "statusCode=429</Message><Detail>The request limit was reached.  Try again later</Detail></Error>"
            "</Fault></IntuitResponse>"
        )
        return web.Response(status=429, text=text, content_type="application/xml", headers={"intuit_tid": _tid()})
    fault = SimFault("3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                     "The request limit was reached.  Try again later", fault_type="SERVICE", status=429)
    return _json(429, fault.body())


# -- OAuth ------------------------------------------------------------------------------------------

def _client_from_basic(state: QBOSimState, request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    known = state.clients.get(client_id)
    return client_id if known and pysecrets.compare_digest(known[0], secret) else None


async def authorize(request: web.Request) -> web.StreamResponse:
    """Intuit's consent page, auto-approved: redirect back with code, state and realmId."""
    state = request.app[STATE_KEY]
    q = request.query
    client = state.clients.get(q.get("client_id", ""))
    if client is None or q.get("redirect_uri") not in client[1]:
        return web.Response(status=400, text="unknown client_id or unregistered redirect_uri")
    if q.get("response_type") != "code" or not q.get("state") or not q.get("scope"):
        return web.Response(status=400, text="response_type=code, scope and state are required")
    target = q["redirect_uri"]
    if state.deny_consent:
        params = {"error": "access_denied", "error_description": "User denied access", "state": q["state"]}
    else:
        realm = state.consent_realm or next(iter(state.books))
        code = "AB" + pysecrets.token_urlsafe(24)
        state.codes[code] = {"client_id": q["client_id"], "redirect_uri": target, "realm_id": realm,
                             "expires_at": time.time() + 600, "used": False}
        params = {"code": code, "state": q["state"], "realmId": realm}
    raise web.HTTPFound(f"{target}?{urlencode(params)}")


def _token_error(error: str, description: str, status: int = 400) -> web.Response:
    return _json(status, {"error": error, "error_description": description})


def _issue(state: QBOSimState, realm_id: str, client_id: str, hard: bool) -> dict[str, Any]:
    now = time.time()
    refresh = "RT1-" + pysecrets.token_urlsafe(32)
    access = "AT-" + pysecrets.token_urlsafe(48)
    state.refresh_tokens[refresh] = RefreshGrant(realm_id, client_id, now + state.refresh_ttl_s)
    state.access_tokens[access] = (realm_id, now + state.access_ttl_s, refresh)
    body: dict[str, Any] = {
        "token_type": "bearer", "access_token": access, "refresh_token": refresh,
        "expires_in": state.access_ttl_s, "x_refresh_token_expires_in": state.refresh_ttl_s,
    }
    if hard:
        body["x_refresh_token_hard_expires_in"] = state.refresh_hard_ttl_s
    return body


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    client_id = _client_from_basic(state, request)
    if client_id is None:
        return _token_error("invalid_client", "client authentication failed", 401)
    form = await request.post()
    grant = str(form.get("grant_type", ""))
    state.token_calls.append(grant)
    if state.token_delay_s:
        await asyncio.sleep(state.token_delay_s)
    fault = state.fault_for("token")
    if fault in ("500", "503"):
        return _token_error("server_error", "simulated outage", int(fault))
    hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
    if grant == "authorization_code":
        code = state.codes.get(str(form.get("code", "")))
        if code is None or code["used"] or code["expires_at"] < time.time() or code["client_id"] != client_id:
            return _token_error("invalid_grant", "Invalid authorization code")
        code["used"] = True
        if form.get("redirect_uri") != code["redirect_uri"]:
            return _token_error("invalid_grant", "Redirect URI mismatch")
        return _json(200, _issue(state, code["realm_id"], client_id, hard))
    if grant == "refresh_token":
        old = state.refresh_tokens.get(str(form.get("refresh_token", "")))
        if old is None or not old.active or old.expires_at < time.time() or old.client_id != client_id:
            return _token_error("invalid_grant", "Token has been expired or revoked.")
        old.active = False  # rotation: the previous refresh token dies now
        return _json(200, _issue(state, old.realm_id, client_id, hard))
    return _token_error("unsupported_grant_type", grant)


async def revoke(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if _client_from_basic(state, request) is None:
        return _token_error("invalid_client", "client authentication failed", 401)
    token_value = str((await request.json()).get("token", ""))
    grant = state.refresh_tokens.get(token_value)
    if grant is not None:
        grant.active = False
        for access, (_, _, refresh) in list(state.access_tokens.items()):
            if refresh == token_value:
                del state.access_tokens[access]
    state.access_tokens.pop(token_value, None)
    return web.Response(status=200, headers={"intuit_tid": _tid()})


# -- Accounting API -----------------------------------------------------------------------------------

def _auth_fault(detail: str) -> web.Response:
    body = {"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                 "detail": detail, "code": "3200"}], "type": "AUTHENTICATION"},
            "requestId": _tid(), "time": int(time.time() * 1000)}
    resp = _json(401, body)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="Intuit"'
    return resp


def _over_limit(window: deque[float], limit: int, span: float, now: float) -> bool:
    while window and window[0] <= now - span:
        window.popleft()
    if len(window) >= limit:
        return True
    window.append(now)
    return False


async def accounting(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    realm = request.match_info["realm"]
    route = request.match_info["route"].lower()
    entity_id = request.match_info.get("entity_id")
    header = request.headers.get("Authorization", "")
    grant = state.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
    if grant is None or grant[1] < time.time():
        return _auth_fault("Token expired or invalid")
    if grant[0] != realm:
        fault = SimFault("3100", "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                         "", fault_type="SERVICE", status=403)
        return _json(403, fault.body())
    books = state.books.get(realm)
    if books is None:
        return _json(400, SimFault("610", "Object Not Found", "unknown company").body())
    traffic = state.traffic.setdefault(realm, CompanyTraffic())
    now = time.monotonic()
    span = 60.0 * state.time_scale
    throttled = traffic.in_flight >= state.max_concurrent or _over_limit(
        traffic.requests, state.requests_per_min, span, now
    ) or (route == "batch" and _over_limit(traffic.batches, state.batches_per_min, span, now))
    if throttled:
        state.request_log.append((now, realm, request.method, route, 429))
        return _throttle_response(xml=False)
    traffic.in_flight += 1
    traffic.max_in_flight_seen = max(traffic.max_in_flight_seen, traffic.in_flight)
    try:
        response = await _accounting(state, request, books, traffic, route, entity_id)
    finally:
        traffic.in_flight -= 1
    state.request_log.append((now, realm, request.method, route, response.status))
    return response


async def _accounting(
    state: QBOSimState, request: web.Request, books: Books, traffic: CompanyTraffic, route: str,
    entity_id: str | None,
) -> web.StreamResponse:
    fault = state.fault_for(route)
    if fault in ("429", "429_xml"):
        return _throttle_response(xml=fault == "429_xml")
    if fault in ("500", "503"):
        kind = "SystemFault"
        sim = SimFault("10000" if fault == "500" else "3003", "An application error has occurred while "
                       "processing your request" if fault == "500" else "Service unavailable",
                       "simulated", fault_type=kind, status=int(fault))
        return _json(int(fault), sim.body())
    if fault == "timeout":
        await asyncio.sleep(state.hang_s)
        return _json(504, SimFault("10000", "Gateway timeout", fault_type="SystemFault").body())
    if fault == "401_gateway":  # Intuit's gateway, before the Accounting service sees the call
        return _json(401, {"error": "invalid_token", "error_description": "Access token failed validation"})
    if fault == "403_scope":
        scope = SimFault("3100", "message=AuthorizationFailed; errorCode=003100; statusCode=403",
                         "The access token does not have sufficient scope", fault_type="SERVICE", status=403)
        return _json(403, scope.body())
    request_id = request.query.get("requestid")
    if request.method == "POST" and request_id and state.honor_requestid and request_id in traffic.replays:
        status, text = traffic.replays[request_id]
        return web.Response(status=status, text=text, content_type="application/json", headers={"intuit_tid": _tid()})
    try:
        status, body = await _dispatch(request, books, route, entity_id)
    except SimFault as exc:
        status, body = exc.status, exc.body()
    text = dumps(body)
    if request.method == "POST" and request_id and route != "query":
        traffic.replays[request_id] = (status, text)
    if fault == "hang_after_commit":
        await asyncio.sleep(state.hang_s)
    if fault == "drop_after_commit" and request.transport is not None:
        request.transport.close()  # the client never sees the answer; the document exists
        raise ConnectionResetError("simulated drop after commit")
    return web.Response(status=status, text=text, content_type="application/json", headers={"intuit_tid": _tid()})


async def _dispatch(request: web.Request, books: Books, route: str, entity_id: str | None) -> tuple[int, Any]:
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%S-00:00", time.gmtime())
    if route == "query":
        if request.method == "GET":
            text = request.query.get("query", "")
        else:
            text = await request.text()
        return 200, books.query(text)
    if route == "batch":
        return 200, await _batch(request, books)
    if route == "exchangerate" and request.method == "GET":
        rate = books.exchange_rate(request.query.get("sourcecurrencycode", ""), request.query.get("asofdate", ""))
        return 200, {"ExchangeRate": rate, "time": now_iso}
    entity = CANONICAL.get(route)
    if entity is None:
        raise SimFault("610", "Object Not Found", f"unsupported entity {route}", status=400)
    if request.method == "GET":
        if entity == "Preferences":
            return 200, {"Preferences": books.preferences(), "time": now_iso}
        return 200, {entity: books.get(entity, entity_id, "Id"), "time": now_iso}
    try:
        body = loads(await request.text())
    except ValueError:
        raise SimFault("2010", "Request has invalid or unsupported property", "malformed JSON") from None
    doc = _write(books, entity, body, request.query.get("operation"), request.query.get("include"))
    return 200, {entity: doc, "time": now_iso}


def _write(books: Books, entity: str, body: dict[str, Any], operation: str | None, include: str | None) -> dict[str, Any]:
    if operation == "delete":
        return books.delete(entity, body)
    if operation == "void" and entity == "Invoice":
        return books.void(entity, body)
    if operation == "update" and include == "void" and entity in ("SalesReceipt", "Payment"):
        return books.void(entity, body)
    if "Id" in body:
        return books.update(entity, body)
    return books.create(entity, body, allow_duplicate_docnumber=include == "allowduplicatedocnum")


async def _batch(request: web.Request, books: Books) -> dict[str, Any]:
    payload = loads(await request.text())
    items = payload.get("BatchItemRequest", [])
    if len(items) > 30:
        raise SimFault("1040", "Batch size limit exceeded", "at most 30 BatchItemRequest allowed")
    answers = []
    for item in items:
        bid = item.get("bId")
        try:
            if "Query" in item:
                answers.append({"bId": bid, "QueryResponse": books.query(item["Query"])["QueryResponse"]})
                continue
            entity = next(CANONICAL[k.lower()] for k in item if k.lower() in CANONICAL)
            operation = item.get("operation", "create")
            options = item.get("optionsData")
            op = "void" if options == "void" and entity == "Invoice" else operation
            include = "void" if options == "void" else options
            doc = _write(books, entity, item[next(k for k in item if k.lower() == entity.lower())],
                         op if op != "create" else None, include)
            answers.append({"bId": bid, entity: doc})
        except SimFault as exc:
            answers.append({"bId": bid, "Fault": exc.body()["Fault"]})
        except StopIteration:
            answers.append({"bId": bid, "Fault": SimFault("2010", "unsupported batch item").body()["Fault"]})
    return {"BatchItemResponse": answers, "time": time.strftime("%Y-%m-%dT%H:%M:%S-00:00", time.gmtime())}


# -- seeding and the app ------------------------------------------------------------------------------

def seed_company(
    state: QBOSimState,
    realm_id: str = "9341450000000001",
    *,
    home_currency: str = "USD",
    multicurrency: bool = False,
    invoices: int = 3,
    enforce_unique_docnumber: bool = True,
    country: str = "US",
) -> Books:
    """A small company: the usual chart of accounts, an item, customers, and open invoices 1001…; outside
    the US, VAT rates and codes (a US company's automated sales tax needs none)."""
    books = Books(realm_id, home_currency, multicurrency, enforce_unique_docnumber, country=country)
    state.books[realm_id] = books
    accounts = {}
    for name, kind, sub in [
        ("Checking", "Bank", "Checking"),
        ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
        ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
        ("Sales of Product Income", "Income", "SalesOfProductIncome"),
        ("Services", "Income", "ServiceFeeIncome"),
        ("Bank Charges", "Expense", "BankCharges"),
        ("Sales Tax Payable", "Other Current Liability", "SalesTaxPayable"),
        ("Opening Balance Equity", "Equity", "OpeningBalanceEquity"),
    ]:
        accounts[name] = books.add("Account", {"Name": name, "AccountType": kind, "AccountSubType": sub,
                                               "CurrentBalance": Decimal("0")})
    item = books.add("Item", {"Name": "Services", "Type": "Service",
                              "IncomeAccountRef": {"value": accounts["Services"]["Id"], "name": "Services"}})
    for name in ("Cash", "Check"):
        books.add("PaymentMethod", {"Name": name, "Type": "NON_CREDIT_CARD"})
    books.add("Class", {"Name": "Online"})
    books.add("Department", {"Name": "Main Street"})
    books.add("TaxCode", {"Name": "Out of scope", "Taxable": False})
    if country.upper() != "US":
        for rate, code in ((Decimal("20"), "20.0% S"), (Decimal("0"), "0.0% Z")):
            tax_rate = books.add("TaxRate", {"Name": f"VAT {rate}%", "RateValue": rate})
            books.add("TaxCode", {"Name": code, "Taxable": True, "SalesTaxRateList": {
                "TaxRateDetail": [{"TaxRateRef": {"value": tax_rate["Id"]}}]}})
    customers = [
        books.add("Customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": email},
                               "CurrencyRef": {"value": home_currency}})
        for name, email in [("Amy's Bird Sanctuary", "birds@example.com"), ("Bill's Windsurf Shop", "surf@example.com"),
                            ("Cool Cars", "cars@example.com")]
    ]
    for n in range(invoices):
        amount = Decimal(100 + 25 * n).quantize(Decimal("0.01"))
        customer = customers[n % len(customers)]
        books.add("Invoice", {
            "DocNumber": str(1001 + n), "TxnDate": "2026-01-15", "CustomerRef": {"value": customer["Id"],
                                                                                   "name": customer["DisplayName"]},
            "CurrencyRef": {"value": home_currency}, "TotalAmt": amount, "Balance": amount,
            "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1, "UnitPrice": amount}}],
        })
    return books


def create_app(state: QBOSimState) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_get("/connect/oauth2", authorize)
    app.router.add_post("/oauth2/v1/tokens/bearer", token)
    app.router.add_post("/v2/oauth2/tokens/revoke", revoke)
    app.router.add_route("*", "/v3/company/{realm}/{route}", accounting)
    app.router.add_get("/v3/company/{realm}/{route}/{entity_id}", accounting)
    return app


def endpoints(base_url: str) -> dict[str, str]:
    """The `[qbo]` settings that point sovterm at a simulator listening on `base_url`."""
    base = base_url.rstrip("/")
    return {"authorize_url": f"{base}/connect/oauth2", "token_url": f"{base}/oauth2/v1/tokens/bearer",
            "revoke_url": f"{base}/v2/oauth2/tokens/revoke", "api_base": base}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sovterm.sim.qbo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client-id", default="sim-client")
    parser.add_argument("--client-secret", default="sim-secret")
    parser.add_argument("--redirect-uri", action="append", default=[],
                        help="registered redirect URI (repeatable); default http://127.0.0.1:8080/oauth/qbo/callback")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    state = QBOSimState(time_scale=args.time_scale)
    state.register_client(args.client_id, args.client_secret,
                          args.redirect_uri or ["http://127.0.0.1:8080/oauth/qbo/callback"])
    seed_company(state)
    for key, value in endpoints(f"http://{args.host}:{args.port}").items():
        print(f"qbo.{key} = {value}")
    web.run_app(create_app(state), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
