"""Properties of the QuickBooks OAuth callback (`QBOOAuth.complete`, behind `GET /oauth/qbo/callback` and
`sovterm setup qbo --redirected-url`): whatever query string arrives, it is refused with the documented
errors (a clear page, never a 500); without the state sovterm issued nothing is stored, no code is
exchanged and the operator's pending link keeps working; with it, the state is used once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sovterm.config import QBOSettings
from sovterm.errors import UserFacingError
from sovterm.qbo.endpoint import InvalidGrant
from sovterm.qbo.errors import OAuthStateError
from sovterm.qbo.oauth import QBOOAuth
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretBox, SecretStore

GOOD_CODE = "the-code-intuit-issued"
REDIRECT_URI = "https://box.example/oauth/qbo/callback"
# one database for all of a test's examples (each starts its own flow): the health check is for fixtures
# that should be fresh per example, which these need not be
shared_fixtures = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class FakeExchange:
    """Intuit's token endpoint exchanging codes: accepts the one code it issued, refuses every other."""

    def __init__(self) -> None:
        self.exchanged: list[str] = []

    async def __call__(self, code: str, redirect_uri: str) -> dict[str, Any]:
        self.exchanged.append(code)
        if code != GOOD_CODE or redirect_uri != REDIRECT_URI:
            raise InvalidGrant("the authorization code is invalid")
        return {"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "x_refresh_token_expires_in": 8_640_000}


@pytest.fixture
async def flow(tmp_path: Path) -> AsyncIterator[tuple[QBOOAuth, FakeExchange, Database, SecretStore]]:
    db = await Database.open(tmp_path / "t.db")
    secrets = SecretStore(db, SecretBox(os.urandom(32)))
    qbo = QBOSettings(client_id="client", client_secret=Secret("client-secret"), environment="sandbox",
                      redirect_uri=REDIRECT_URI)
    oauth = QBOOAuth(qbo, REDIRECT_URI, db, secrets, session=None)  # type: ignore[arg-type]
    exchange = FakeExchange()
    oauth._endpoint.exchange_code = exchange  # type: ignore[method-assign]
    yield oauth, exchange, db, secrets
    await db.close()


NAMES = ["state", "code", "realmId", "error", "error_description"]
values = st.text(max_size=50) | st.sampled_from(["", GOOD_CODE, "9341450000000001", "access_denied"])
pairs = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=10), values), max_size=6)


def as_callback(params: list[tuple[str, str]], form: str) -> str:
    """The query as Intuit's redirect carries it, as a pasted URL, or raw text with no encoding at all."""
    if form == "query":
        return urlencode(params)
    if form == "url":
        return f"{REDIRECT_URI}?{urlencode(params, quote_via=quote)}"
    return "&".join(f"{k}={v}" for k, v in params)


async def stored_anything(db: Database, secrets: SecretStore) -> bool:
    return bool(await db.fetchall("SELECT realm_id FROM qbo_connections")) or await secrets.names("qbo:") != []


@shared_fixtures
@given(pairs, st.sampled_from(["query", "url", "raw"]), st.text(max_size=200))
async def test_a_callback_without_our_state_is_refused_and_changes_nothing(flow, params, form, junk) -> None:
    oauth, exchange, db, secrets = flow
    _, pending = await oauth.start()  # the operator's link, waiting for the browser
    for callback in (as_callback(params, form), junk):
        with pytest.raises(UserFacingError):
            await oauth.complete(callback)
    assert exchange.exchanged == [] and not await stored_anything(db, secrets)
    assert await db.fetchone("SELECT 1 FROM qbo_oauth_states WHERE state = ?", (pending,)) is not None


@shared_fixtures
@given(pairs, st.sampled_from(["query", "url"]))
@example([("code", GOOD_CODE), ("realmId", "9341450000000001")], "query")  # the genuine redirect connects
@example([("error", "access_denied"), ("error_description", "the user said no")], "url")
async def test_our_state_is_used_once_whatever_comes_with_it(flow, params, form) -> None:
    oauth, exchange, db, _ = flow
    _, state = await oauth.start()
    callback = as_callback([("state", state), *params], form)
    given_params = dict(reversed(params))  # the first of repeated names wins, as parse_qs reads them
    expect_connected = (not given_params.get("error") and bool(given_params.get("realmId"))
                        and given_params.get("code") == GOOD_CODE)
    try:
        connection = await oauth.complete(callback)
    except UserFacingError:
        assert not expect_connected
    else:
        assert expect_connected and connection.realm_id == given_params["realmId"]
    assert len(exchange.exchanged) <= 1
    exchange.exchanged.clear()
    with pytest.raises(OAuthStateError if not given_params.get("error") else UserFacingError):
        await oauth.complete(callback)  # a replay: refused (a replayed denial is simply a denial again)
    assert exchange.exchanged == []
    assert await db.fetchone("SELECT 1 FROM qbo_oauth_states WHERE state = ?", (state,)) is None
    await db.write("DELETE FROM qbo_connections")
