"""Token refresh: one at a time, saved before use, recovered when saving fails, reconnect states."""

from __future__ import annotations

import asyncio
import time

import pytest

from sovterm.qbo.endpoint import TokenEndpoint
from sovterm.qbo.errors import QBOReconnectRequired, QBOTokenStoreError
from sovterm.qbo.tokens import DAY_S, TokenManager, TokenSet, token_secret_name
from sovterm.store.secrets import Secret, SecretStore

from .conftest import REALM


def manager(db, secrets, settings, session, *, offset: float = 0.0) -> TokenManager:
    return TokenManager(db, secrets, TokenEndpoint(settings, session), clock=lambda: time.time() + offset,
                        save_retry_s=0.001)


async def stored(secrets) -> TokenSet:
    return TokenSet.from_secret(await secrets.get(token_secret_name(REALM)))


async def test_fresh_token_is_used_without_refresh(connected, sim_state):
    first = await connected.tokens.access_token(REALM)
    assert await connected.tokens.access_token(REALM) == first
    assert sim_state.token_calls == ["authorization_code"]


async def test_concurrent_callers_cause_one_refresh(connected, db, secrets, settings, session, sim_state):
    sim_state.token_delay_s = 0.05  # the refresh is slow: every caller arrives while it is in flight
    late = manager(db, secrets, settings, session, offset=3600)
    tokens = await asyncio.gather(*(late.access_token(REALM) for _ in range(8)))
    assert sim_state.token_calls.count("refresh_token") == 1
    assert len({t.reveal() for t in tokens}) == 1
    saved = await stored(secrets)
    assert saved.access_token == tokens[0]
    assert sim_state.refresh_tokens[saved.refresh_token.reveal()].active  # the rotated one was saved


async def test_refresh_happens_within_the_leeway(connected, db, secrets, settings, session, sim_state):
    before = await stored(secrets)
    soon = manager(db, secrets, settings, session, offset=3600 - 200)  # 200 s left, leeway 300 s
    assert await soon.access_token(REALM) != before.access_token
    assert sim_state.token_calls.count("refresh_token") == 1


class FailingStore(SecretStore):
    """Saving fails `failures` times (disk full, locked database...)."""

    def __init__(self, inner: SecretStore, failures: int) -> None:
        super().__init__(inner._db, inner.box)
        self.failures = failures

    async def put(self, name, value, *, conn=None):
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk full")
        await super().put(name, value, conn=conn)


async def test_unsaved_refresh_is_kept_and_saved_on_next_call(connected, db, secrets, settings, session, sim_state):
    old = await stored(secrets)
    flaky = FailingStore(secrets, failures=3)  # every in-call attempt fails
    tokens = TokenManager(db, flaky, TokenEndpoint(settings, session), clock=lambda: time.time() + 3600,
                          save_retry_s=0.001)
    with pytest.raises(QBOTokenStoreError) as caught:
        await tokens.access_token(REALM)
    assert "kept in memory" in caught.value.message
    # Intuit already retired the old refresh token: retrying with it would fail.
    assert not sim_state.refresh_tokens[old.refresh_token.reveal()].active
    assert (await stored(secrets)).refresh_token == old.refresh_token
    access = await tokens.access_token(REALM)  # storage works again
    assert sim_state.token_calls.count("refresh_token") == 1  # recovered without calling Intuit
    saved = await stored(secrets)
    assert saved.access_token == access and sim_state.refresh_tokens[saved.refresh_token.reveal()].active
    # The saved refresh token is the live one: the next refresh works.
    assert await tokens.force_refresh(REALM, access) != access


async def test_transient_save_failure_is_retried_in_the_same_call(connected, db, secrets, settings, session, sim_state):
    tokens = TokenManager(db, FailingStore(secrets, failures=1), TokenEndpoint(settings, session),
                          clock=lambda: time.time() + 3600, save_retry_s=0.001)
    access = await tokens.access_token(REALM)
    assert (await stored(secrets)).access_token == access


async def test_invalid_grant_requires_reconnect(connected, db, secrets, settings, session, sim_state):
    for grant in sim_state.refresh_tokens.values():
        grant.active = False  # the user disconnected the app in QuickBooks
    late = manager(db, secrets, settings, session, offset=3600)
    with pytest.raises(QBOReconnectRequired, match="must be reconnected"):
        await late.access_token(REALM)
    state = await late.state(REALM)
    assert state.status == "reconnect_required" and "refused" in state.reason
    with pytest.raises(QBOReconnectRequired):
        await late.access_token(REALM)
    assert sim_state.token_calls.count("refresh_token") == 1  # no more hammering


async def test_refresh_interrupted_before_save_is_diagnosed(connected, db, secrets, settings, session, sim_state):
    await db.write("UPDATE qbo_connections SET refresh_started_at = 1 WHERE realm_id = ?", (REALM,))
    for grant in sim_state.refresh_tokens.values():
        grant.active = False
    with pytest.raises(QBOReconnectRequired, match="interrupted refresh"):
        await manager(db, secrets, settings, session, offset=3600).access_token(REALM)


async def test_state_warns_when_refresh_token_nears_its_end(connected, db, secrets, settings, session):
    assert (await connected.tokens.state(REALM)).status == "connected"
    near = manager(db, secrets, settings, session, offset=(100 - 10) * DAY_S)
    state = await near.state(REALM)
    assert state.status == "refresh_expiring" and state.days_left in (9, 10)
    gone = manager(db, secrets, settings, session, offset=101 * DAY_S)
    assert (await gone.state(REALM)).status == "reconnect_required"
    with pytest.raises(QBOReconnectRequired, match="expired"):
        await gone.access_token(REALM)


async def test_api_401_refreshes_once_and_retries(connected, sim_state):
    sim_state.expire_access_tokens()  # Intuit says the token is dead although we think it fresh
    rows = await connected.client.query("SELECT * FROM Account", limit=1)
    assert rows and sim_state.token_calls.count("refresh_token") == 1


def test_refresh_without_new_refresh_token_keeps_the_old_one():
    old = TokenSet(Secret("a1"), Secret("r1"), 0, 1000, None)
    new = TokenSet.from_response({"access_token": "a2", "expires_in": 3600}, 10, previous=old)
    assert new.refresh_token == Secret("r1") and new.access_token == Secret("a2")
    assert new.access_expires_at == 3610 and new.refresh_expires_at == 1000
