"""Connecting a company: state checks, paste-back, environment flags, disconnect, callback page, QR."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from sovterm.config import QBOSettings
from sovterm.errors import UserFacingError
from sovterm.qbo.callback_page import render_callback_page
from sovterm.qbo.endpoint import TokenEndpoint
from sovterm.qbo.errors import OAuthError, OAuthStateError, QBOReconnectRequired
from sovterm.qbo.models import Connection
from sovterm.qbo.oauth import SCOPE, STATE_TTL_S, QBOOAuth
from sovterm.qbo.tokens import TokenSet, token_secret_name

from .conftest import CLIENT_ID, REALM, REDIRECT_URI, follow_consent


async def nothing_stored(db, secrets) -> bool:
    rows = await db.fetchall("SELECT realm_id FROM qbo_connections")
    return not rows and await secrets.names("qbo:") == []


async def test_start_builds_intuit_url_and_stores_state(oauth, db):
    url, state = await oauth.start()
    params = parse_qs(urlsplit(url).query)
    assert params["client_id"] == [CLIENT_ID]
    assert params["scope"] == [SCOPE]
    assert params["response_type"] == ["code"]
    assert params["redirect_uri"] == [REDIRECT_URI]
    assert params["state"] == [state] and len(state) >= 32
    row = await db.fetchone("SELECT environment, expires_at - created_at FROM qbo_oauth_states WHERE state = ?", (state,))
    assert tuple(row) == ("sandbox", STATE_TTL_S)


async def test_paste_back_of_full_url_connects_sandbox_with_auto_sync_off(oauth, session, secrets, sim_state):
    url, _ = await oauth.start()
    redirected = await follow_consent(session, url)
    assert redirected.startswith(REDIRECT_URI + "?")
    connection = await oauth.complete("  " + redirected + "\n")  # as pasted into a terminal
    assert connection.realm_id == REALM
    assert connection.environment == "sandbox" and connection.sandbox and not connection.auto_sync
    tokens = TokenSet.from_secret(await secrets.get(token_secret_name(REALM)))
    assert sim_state.refresh_tokens[tokens.refresh_token.reveal()].active
    assert tokens.refresh_hard_expires_at is not None  # the 5-year end of life was asked for


async def test_callback_query_string_connects(oauth, session):
    url, _ = await oauth.start()
    query = urlsplit(await follow_consent(session, url)).query
    assert (await oauth.complete(query)).realm_id == REALM


async def test_production_key_set_is_not_flagged_sandbox(settings, db, secrets, session):
    production = QBOOAuth(settings.model_copy(update={"environment": "production"}), REDIRECT_URI, db, secrets, session)
    url, _ = await production.start()
    connection = await production.complete(await follow_consent(session, url))
    assert connection.environment == "production" and not connection.sandbox and connection.auto_sync


async def test_missing_state_is_refused_and_nothing_stored(oauth, session, db, secrets, sim_state):
    url, _ = await oauth.start()
    redirected = await follow_consent(session, url)
    without_state = "&".join(p for p in urlsplit(redirected).query.split("&") if not p.startswith("state="))
    with pytest.raises(OAuthStateError, match="no state"):
        await oauth.complete(without_state)
    assert await nothing_stored(db, secrets)
    assert "authorization_code" not in sim_state.token_calls


async def test_wrong_state_is_refused_and_nothing_stored(oauth, session, db, secrets, sim_state):
    url, state = await oauth.start()
    redirected = await follow_consent(session, url)
    with pytest.raises(OAuthStateError, match="unknown or was already used"):
        await oauth.complete(redirected.replace(f"state={state}", "state=forged"))
    assert await nothing_stored(db, secrets)
    assert "authorization_code" not in sim_state.token_calls


async def test_reused_state_is_refused(oauth, session, sim_state):
    url, _ = await oauth.start()
    redirected = await follow_consent(session, url)
    await oauth.complete(redirected)
    with pytest.raises(OAuthStateError, match="already used"):
        await oauth.complete(redirected)
    assert sim_state.token_calls.count("authorization_code") == 1


async def test_expired_state_is_refused_and_nothing_stored(settings, db, secrets, session, sim_state):
    start = QBOOAuth(settings, REDIRECT_URI, db, secrets, session, clock=lambda: time.time() - STATE_TTL_S - 1)
    url, _ = await start.start()
    redirected = await follow_consent(session, url)
    late = QBOOAuth(settings, REDIRECT_URI, db, secrets, session)
    with pytest.raises(OAuthStateError, match="expired"):
        await late.complete(redirected)
    assert await nothing_stored(db, secrets)
    assert "authorization_code" not in sim_state.token_calls


async def test_denied_consent_reports_intuit_error_and_burns_state(oauth, session, db, secrets, sim_state):
    sim_state.deny_consent = True
    url, state = await oauth.start()
    redirected = await follow_consent(session, url)
    with pytest.raises(OAuthError, match="User denied access"):
        await oauth.complete(redirected)
    assert await nothing_stored(db, secrets)
    assert await db.fetchone("SELECT 1 FROM qbo_oauth_states WHERE state = ?", (state,)) is None


async def test_disconnect_revokes_and_forgets(connected, oauth, secrets, sim_state):
    stored = TokenSet.from_secret(await secrets.get(token_secret_name(REALM)))
    assert await oauth.disconnect(REALM) is True
    assert not sim_state.refresh_tokens[stored.refresh_token.reveal()].active
    assert await secrets.get(token_secret_name(REALM)) is None
    assert (await connected.tokens.state(REALM)).status == "disconnected"
    with pytest.raises(QBOReconnectRequired):
        await connected.tokens.access_token(REALM)


def test_missing_keys_are_a_config_error(session):
    with pytest.raises(UserFacingError, match="client_id"):
        TokenEndpoint(QBOSettings(), session)


def test_callback_page_success_and_errors():
    ok = Connection(REALM, "sandbox", True, False, "connected", 0, 0, None, 0)
    status, page = render_callback_page(ok)
    assert status == 200 and REALM in page and "sandbox" in page
    status, page = render_callback_page(OAuthStateError("link <expired>", fix="run it again"))
    assert status == 400 and "link &lt;expired&gt;" in page and "Nothing was stored" in page
    status, page = render_callback_page(RuntimeError("secret internal detail"))
    assert status == 500 and "secret internal detail" not in page


async def test_tokens_are_encrypted_at_rest(connected, db, secrets):
    stored = TokenSet.from_secret(await secrets.get(token_secret_name(REALM)))
    row = await db.fetchone("SELECT ciphertext FROM secrets WHERE name = ?", (token_secret_name(REALM),))
    assert stored.refresh_token.reveal().encode() not in row[0]
    assert stored.refresh_token.reveal() not in repr(stored)
    assert stored.access_token.reveal() not in repr(stored)
