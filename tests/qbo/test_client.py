"""The accounting client: requestid, quoting, paging, batch, faults, throttling, lost answers."""

from __future__ import annotations

import asyncio
from collections import deque
from decimal import Decimal

import pytest

from sovterm.qbo.client import MAX_BATCH_ITEMS, MINOR_VERSION, QBOClient, quote_literal, request_id
from sovterm.qbo.errors import (
    QBOAccessRefused,
    QBOAuthError,
    QBODuplicateDocNumber,
    QBODuplicateName,
    QBOReconnectRequired,
    QBOServerError,
    QBOStaleObject,
    QBOThrottled,
    QBOUnavailable,
    QBOValidationError,
    QBOWrongEnvironment,
    error_from_response,
)
from sovterm.qbo.limiter import RealmLimiter
from sovterm.qbo.models import BatchItem, dumps
from sovterm.sim.qbo import FaultRule

from .conftest import REALM


def test_request_id_is_deterministic_and_short():
    one = request_id("invoice", "abc", "salesreceipt", 0)
    assert one == request_id("invoice", "abc", "salesreceipt", 0)
    assert one != request_id("invoice", "abc", "salesreceipt", 1)
    assert len(one) <= 36  # fits a batch (36) and a single call (50)
    assert MINOR_VERSION == "75"


def test_quote_literal_escapes_quotes_and_backslashes():
    assert quote_literal("Amy's") == "'Amy\\'s'"
    assert quote_literal("a\\b") == "'a\\\\b'"
    with pytest.raises(ValueError):
        quote_literal("bad\nvalue")


async def test_query_with_quoted_name_finds_the_customer(connected):
    rows = await connected.client.query(f"SELECT * FROM Customer WHERE DisplayName = {quote_literal(chr(65) + 'my' + chr(39) + 's Bird Sanctuary')}")
    assert [r["DisplayName"] for r in rows] == ["Amy's Bird Sanctuary"]


async def test_query_pages_through_all_rows(connected, sim_state):
    rows = await connected.client.query("SELECT * FROM Account", page_size=3)
    assert len(rows) == 8 and len({r["Id"] for r in rows}) == 8
    assert sum(1 for entry in sim_state.request_log if entry[3] == "query") == 3
    assert await connected.client.count("FROM Invoice WHERE Balance > '0'") == 3
    with pytest.raises(ValueError):
        await connected.client.query("SELECT * FROM Account MAXRESULTS 5")


async def test_unqueryable_field_is_a_validation_error(connected):
    with pytest.raises(QBOValidationError, match="not queryable"):
        await connected.client.query("SELECT * FROM SalesReceipt WHERE PrivateNote = 'x'")


async def test_batch_returns_per_item_results_and_faults(connected):
    results = await connected.client.batch([
        BatchItem("1", "create", "Account", {"Name": "Batch One", "AccountType": "Bank"}),
        BatchItem("2", "create", "Account", {"Name": "Checking", "AccountType": "Bank"}),
        BatchItem("3", "query", query="SELECT * FROM Item"),
    ], request_id=request_id("batch-test"))
    assert results[0].ok and results[0].data["Name"] == "Batch One"
    assert isinstance(results[1].error, QBODuplicateName) and results[1].error.fault_code == "6240"
    assert results[1].error.intuit_tid and results[1].error.intuit_tid in results[1].error.message  # the batch's
    assert [r["Name"] for r in results[2].rows] == ["Services"]


async def test_batch_over_30_items_is_refused_before_sending(connected, sim_state):
    items = [BatchItem(str(i), "query", query="SELECT * FROM Item") for i in range(MAX_BATCH_ITEMS + 1)]
    with pytest.raises(ValueError, match="at most 30"):
        await connected.client.batch(items)
    assert not any(entry[3] == "batch" for entry in sim_state.request_log)


# -- Fault parsing -----------------------------------------------------------------------------------

def json_fault(code: str, message: str, fault_type: str = "ValidationFault", detail: str = "d", element: str = "") -> str:
    return dumps({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": element}],
                            "type": fault_type}, "time": "2026-01-01T00:00:00.000-08:00"})


def xml_fault(code: str, message: str, fault_type: str = "ValidationFault", detail: str = "d", element: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><IntuitResponse xmlns="http://schema.intuit.com/finance/v3">'
            f'<Fault type="{fault_type}"><Error code="{code}" element="{element}"><Message>{message}</Message>'
            f"<Detail>{detail}</Detail></Error></Fault></IntuitResponse>")


CASES = [
    (400, "6000", "A business validation error has occurred", "ValidationFault", QBOValidationError),
    (400, "6240", "Duplicate Name Exists Error", "ValidationFault", QBODuplicateName),
    (400, "6140", "Duplicate Document Number Error", "ValidationFault", QBODuplicateDocNumber),
    (400, "5010", "Stale Object Error", "ValidationFault", QBOStaleObject),
    (401, "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401", "AUTHENTICATION", QBOAuthError),
    (403, "120", "Authorization Failure", "AuthorizationFault", QBOAuthError),
    (429, "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429", "SERVICE", QBOThrottled),
    (403, "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=403", "SERVICE", QBOThrottled),
    (403, "3100", "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403", "SERVICE", QBOAccessRefused),
    (401, "130", "Accessing Wrong Cluster", "AuthenticationFault", QBOWrongEnvironment),
    (500, "10000", "An application error has occurred", "SystemFault", QBOServerError),
    (503, "3003", "Service unavailable", "SystemFault", QBOUnavailable),
]


@pytest.mark.parametrize("form", [json_fault, xml_fault])
@pytest.mark.parametrize(("status", "code", "message", "fault_type", "expected"), CASES)
def test_every_fault_maps_to_its_typed_error(form, status, code, message, fault_type, expected):
    error = error_from_response(status, form(code, message, fault_type, "the detail", "Line.Amount"), "tid-123")
    assert type(error) is expected
    assert error.fault_code == code and error.fault_message == message
    assert error.detail == "the detail" and error.element == "Line.Amount" and error.intuit_tid == "tid-123"
    assert "tid-123" in error.message


def test_fault_in_a_200_answer_is_an_error():
    assert isinstance(error_from_response(200, json_fault("6000", "bad"), None), QBOValidationError)
    assert error_from_response(200, '{"Account": {"Id": "1"}}', None) is None


def test_lowercase_401_fault_and_bare_status():
    body = '{"fault":{"error":[{"message":"message=AuthenticationFailed; errorCode=003200; statusCode=401","detail":"Token expired","code":"3200"}],"type":"AUTHENTICATION"}}'
    error = error_from_response(401, body, None)
    assert isinstance(error, QBOAuthError) and error.detail == "Token expired"
    assert isinstance(error_from_response(502, "<html>bad gateway</html>", None), QBOServerError)


async def test_wrong_company_for_the_token_is_refused_access_with_every_cause_named(connected, session, settings):
    other = QBOClient(settings.resolved_api_base(), "123", connected.tokens, session, limiter=RealmLimiter())
    other.realm_id = REALM  # tokens of our company, URL of another: 3100, like the wrong environment
    with pytest.raises(QBOAccessRefused) as caught:
        await other.query("SELECT * FROM Account")
    fix = caught.value.fix or ""
    for cause in ("other environment", "accounting scope", "another company", "subscription has lapsed"):
        assert cause in fix, cause


# -- error bodies that are not a Fault envelope (issue 13, point 6) ------------------------------------

GATEWAY_401 = '{"error": "invalid_token", "error_description": "Access token failed validation"}'
LOWERCASE_401 = ('{"warnings":null,"intuitObject":null,"fault":{"error":[{"message":"message=AuthenticationFailed; '
                 'errorCode=003200; statusCode=401","detail":"Token expired: the access token is no longer valid",'
                 '"code":"3200","element":null}],"type":"AUTHENTICATION"},"report":null,"time":1633520295688}')
SCOPE_3100 = xml_fault("3100", "message=AuthorizationFailed; errorCode=003100; statusCode=403", "SERVICE",
                       "The access token does not have sufficient scope")


@pytest.mark.parametrize(("status", "body", "words", "expected"), [
    (401, GATEWAY_401, ["invalid_token", "Access token failed validation"], QBOAuthError),
    (401, LOWERCASE_401, ["3200", "Token expired: the access token is no longer valid"], QBOAuthError),
    (403, SCOPE_3100, ["3100", "does not have sufficient scope"], QBOAccessRefused),
    (401, "Unauthorized", ["HTTP 401", "Unauthorized"], QBOAuthError),
    (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", ["HTTP 502", "502 Bad Gateway"], QBOServerError),
])
def test_every_body_shape_keeps_intuits_words_and_the_tid(status, body, words, expected):
    error = error_from_response(status, body, "tid-77")
    assert type(error) is expected
    for word in words:
        assert word in error.message, (word, error.message)
    assert "tid-77" in error.message and "error 0" not in error.message


def test_a_scope_refusal_names_the_scope_first_and_a_bare_3100_every_cause():
    scope = error_from_response(403, SCOPE_3100, None)
    assert scope.fix.index("accounting scope") < scope.fix.index("other environment")
    bare = error_from_response(403, json_fault("3100", "message=AuthorizationFailed; errorCode=003100; "
                                                     "statusCode=403", "SERVICE", ""), None)
    assert isinstance(bare, QBOAccessRefused) and bare.fix.index("other environment") < bare.fix.index("scope")


def test_a_token_echoed_in_an_error_body_never_reaches_the_message():
    body = '{"error": "invalid_token", "error_description": "Bearer AT-s3cr3t-token is not valid"}'
    error = error_from_response(401, body, "tid-1", secret="AT-s3cr3t-token")
    assert "s3cr3t" not in str(error) and "invalid_token" in error.message
    bare = error_from_response(401, "rejected: access_token=eyJhbGciOi.abc.def", None)
    assert "eyJhbGciOi" not in str(bare) and "rejected" in bare.message


async def test_gateway_401_after_a_refresh_asks_to_reconnect_in_intuits_words(connected, sim_state, caplog):
    sim_state.faults.append(FaultRule("401_gateway", route="query", times=2))  # the refreshed token too
    with pytest.raises(QBOReconnectRequired) as caught:
        await connected.client.query("SELECT * FROM Item")
    reason = caught.value.reason
    assert "invalid_token" in reason and "Access token failed validation" in reason and "intuit_tid" in reason
    state = await connected.tokens.state(REALM)
    assert state.status == "reconnect_required" and "Access token failed validation" in (state.reason or "")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Access token failed validation" in logged and "AT-" not in logged and "Bearer" not in logged


async def test_scope_refusal_from_the_service_is_not_retried_and_says_why(connected, sim_state):
    sim_state.faults.append(FaultRule("403_scope", route="query", times=1))
    with pytest.raises(QBOAccessRefused, match="does not have sufficient scope"):
        await connected.client.query("SELECT * FROM Item")
    assert [e[4] for e in sim_state.request_log if e[3] == "query"] == [403]


# -- retries and throttling -------------------------------------------------------------------------

async def test_xml_throttle_is_backed_off_and_retried(connected, sim_state):
    sim_state.faults.append(FaultRule("429_xml", route="query", times=2))
    assert await connected.client.query("SELECT * FROM Item")
    assert [e[4] for e in sim_state.request_log if e[3] == "query"] == [429, 429, 200]


async def test_500_is_resubmitted_once_only(connected, sim_state):
    sim_state.faults.append(FaultRule("500", route="query", times=1))
    assert await connected.client.query("SELECT * FROM Item")
    sim_state.faults.append(FaultRule("500", route="query", times=2))
    with pytest.raises(QBOServerError):
        await connected.client.query("SELECT * FROM Item")


async def test_timeout_is_retried_with_the_same_request_id(connected, sim_state, settings, session):
    sim_state.hang_s = 1.0
    sim_state.faults.append(FaultRule("timeout", route="account", times=1))
    client = QBOClient(settings.resolved_api_base(), REALM, connected.tokens, session, limiter=RealmLimiter(),
                       timeout_s=0.2, backoff_base_s=0.01)
    created = await client.create("Account", {"Name": "After Timeout", "AccountType": "Bank"}, request_id=request_id("t"))
    assert created["Name"] == "After Timeout"
    assert [a for a in sim_state.documents(REALM, "Account") if a["Name"] == "After Timeout"] == [created]


async def test_dropped_connection_after_commit_replays_not_duplicates(connected, sim_state):
    sim_state.faults.append(FaultRule("drop_after_commit", route="account", times=1))
    rid = request_id("account", "dropped")
    created = await connected.client.create("Account", {"Name": "Dropped", "AccountType": "Bank"}, request_id=rid)
    assert len([a for a in sim_state.documents(REALM, "Account") if a["Name"] == "Dropped"]) == 1
    assert created["Id"] == next(a["Id"] for a in sim_state.documents(REALM, "Account") if a["Name"] == "Dropped")


def max_in_window(stamps: list[float], window: float) -> int:
    best, recent = 0, deque()
    for t in sorted(stamps):
        recent.append(t)
        while recent[0] <= t - window:
            recent.popleft()
        best = max(best, len(recent))
    return best


async def test_burst_stays_under_intuit_limits(connected, sim_state, settings, session):
    sim_state.time_scale = 0.004  # one "minute" is 0.24 s
    window = 60 * sim_state.time_scale
    client = QBOClient(settings.resolved_api_base(), REALM, connected.tokens, session,
                       limiter=RealmLimiter(window_s=window), backoff_base_s=0.01)
    item_id = sim_state.documents(REALM, "Item")[0]["Id"]
    sim_state.request_log.clear()
    await asyncio.gather(*(client.read("Item", item_id) for _ in range(1100)))
    stamps = [e[0] for e in sim_state.request_log]
    assert len(stamps) == 1100 and all(e[4] == 200 for e in sim_state.request_log)  # never throttled
    assert max_in_window(stamps, window) <= sim_state.requests_per_min
    assert sim_state.traffic[REALM].max_in_flight_seen <= 4


async def test_simulator_enforces_the_rate_and_client_backs_off(connected, sim_state, settings, session):
    sim_state.time_scale = 0.004
    sim_state.requests_per_min = 50  # a tight limit, easy to exceed without pacing
    reckless = RealmLimiter(requests_per_min=450, window_s=1e-6, concurrency=10)
    client = QBOClient(settings.resolved_api_base(), REALM, connected.tokens, session, limiter=reckless,
                       backoff_base_s=0.05, max_attempts=10)
    item_id = sim_state.documents(REALM, "Item")[0]["Id"]
    sim_state.request_log.clear()
    found = await asyncio.gather(*(client.read("Item", item_id) for _ in range(120)))
    assert all(f["Name"] == "Services" for f in found)
    statuses = [e[4] for e in sim_state.request_log]
    assert 429 in statuses and statuses.count(200) == 120
    assert max_in_window([e[0] for e in sim_state.request_log if e[4] == 200], 60 * sim_state.time_scale) <= 50


async def test_limiter_spaces_batches(connected):
    limiter = RealmLimiter(batches_per_min=2, window_s=0.2)
    start = asyncio.get_running_loop().time()
    for _ in range(3):
        async with limiter.slot(batch=True):
            pass
    assert asyncio.get_running_loop().time() - start >= 0.19


def test_limiter_refuses_settings_above_intuit_limits():
    with pytest.raises(ValueError):
        RealmLimiter(requests_per_min=600)
    with pytest.raises(ValueError):
        RealmLimiter(concurrency=11)


def test_money_json_is_exact():
    assert dumps({"Amount": Decimal("100.10")}) == '{"Amount":100.10}'
    with pytest.raises(TypeError):
        dumps({"Amount": 0.1})
