"""QBOService in-process (fast, with a controllable clock): configuration, connector states, the
tokens loop, can_sync, one company at a time, and what the sync part is given."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sovterm.alerts import AlertTracker, SyncRead, conditions
from sovterm.config import QBOSettings
from sovterm.events import EventBus
from sovterm.health import Connectors
from sovterm.qbo.client import QBOClient
from sovterm.qbo.postings import CurrencyContext, Poster
from sovterm.qbo.service import SANDBOX_NO_AUTO_SYNC, QBONotConfigured, QBOService, configuration_problem
from sovterm.qbo.tokens import DAY_S
from sovterm.sim.qbo import QBOSimState, create_app, endpoints, seed_company
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretBox, SecretStore

REDIRECT = "https://box.example/oauth/qbo/callback"
REALM_A, REALM_B = "9341450000000001", "9341450000000002"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> QBOSimState:
    state = QBOSimState(seed=5)
    state.register_client("cid", "csecret", [REDIRECT])
    seed_company(state, REALM_A)
    seed_company(state, REALM_B, home_currency="EUR", multicurrency=True)
    state.consent_realm = REALM_A
    return state


@pytest.fixture
async def sim_url(sim: QBOSimState) -> AsyncIterator[str]:
    server = TestServer(create_app(sim), port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


class Harness:
    def __init__(self, service: QBOService, connectors: Connectors, bus: EventBus, clock: Clock,
                 session: aiohttp.ClientSession) -> None:
        self.service, self.connectors, self.bus, self.clock, self.session = service, connectors, bus, clock, session

    async def connect(self) -> None:
        started = await self.service.start()
        async with self.session.get(started["authorization_url"], allow_redirects=False) as resp:
            location = resp.headers["Location"]
        await self.service.complete(location)

    def state(self) -> tuple[str, str, bool]:
        s = self.connectors.get("qbo")
        assert s is not None
        return s.state, s.detail, s.ready


@pytest.fixture
def make(db: Database, sim_url: str, session: aiohttp.ClientSession):
    def build(**overrides: object) -> Harness:
        settings = QBOSettings(**{"client_id": "cid", "client_secret": Secret("csecret"), "environment": "sandbox",
                                  "request_timeout_s": 5, **endpoints(sim_url), **overrides})
        connectors, bus, clock = Connectors(), EventBus(), Clock()
        service = QBOService(settings, REDIRECT, db, SecretStore(db, SecretBox(os.urandom(32))), session,
                             bus=bus, connectors=connectors, clock=clock)
        return Harness(service, connectors, bus, clock, session)

    return build


def test_missing_id_or_empty_secret_file_is_not_configured(tmp_path: Path) -> None:
    empty = tmp_path / "secret"
    empty.write_text("\n")
    assert configuration_problem(QBOSettings()) == "qbo.client_id is not set"
    problem = configuration_problem(QBOSettings(client_id="x", client_secret_file=empty))
    assert problem is not None and "is empty" in problem
    assert configuration_problem(QBOSettings(client_id="x", client_secret=Secret("s"))) is None


async def test_not_configured_then_not_connected_are_ready_states(make) -> None:
    h = make(client_id=None)
    await h.service.refresh_state()
    assert h.state()[0] == "not_configured" and h.state()[2] is True
    with pytest.raises(QBONotConfigured) as err:
        await h.service.start()
    assert "not configured: qbo.client_id is not set" in str(err.value)
    assert (await h.service.can_sync())[0] is False

    h = make()
    await h.service.refresh_state()
    assert h.state()[:1] == ("not_connected",) and h.state()[2] is True


async def test_connected_sandbox_gives_sync_a_client_and_waits_for_consent_to_auto_sync(make) -> None:
    h = make()
    events = h.bus.subscribe(["qbo"])
    await h.connect()
    _, event = await events.next()
    assert event is not None and event.topic == "qbo.connected" and event.data["realm_id"] == REALM_A
    state, detail, ready = h.state()
    assert (state, ready) == ("connected", True) and "sandbox" in detail and "auto-sync off" in detail

    assert await h.service.can_sync() == (False, SANDBOX_NO_AUTO_SYNC + " (`sovterm qbo auto-sync on`)")
    await h.service.set_auto_sync(True)
    assert await h.service.can_sync() == (True, "")

    client = await h.service.client()
    assert isinstance(client, QBOClient) and client.realm_id == REALM_A
    assert await h.service.client() is client  # one client, one limiter per company
    assert isinstance(await h.service.poster(), Poster)
    assert await h.service.currency_context() == CurrencyContext("USD", False)
    assert await h.service.mapping_for("store-1") is None
    mapping = await h.service.apply_mapping("store-1", auto=True, overrides={"deposit_account": "Checking"})
    assert mapping.names["deposit_account_id"] == "Checking"
    assert (await h.service.mapping_for("store-1")).deposit_account_id == mapping.deposit_account_id


async def test_tokens_loop_refreshes_ahead_of_expiry_and_warns_when_the_refresh_token_ages(make, sim) -> None:
    h = make()
    await h.connect()
    assert (await h.service.tokens_tick())["state"] == "connected"
    assert sim.token_calls == ["authorization_code"]  # fresh token: nothing to do

    h.clock.now += 3600 - 300  # access token inside the refresh-ahead window
    await h.service.tokens_tick()
    assert sim.token_calls == ["authorization_code", "refresh_token"]

    alerts = h.bus.subscribe(["alert"])
    h.clock.now += 80 * DAY_S  # the refresh token (100 days from the last refresh) has 20 days left
    await h.service.refresh_state()
    state, detail, ready = h.state()
    assert state == "refresh_expiring" and ready is True and "ends in 20 days" in detail
    found = conditions(True, {"connectors": h.connectors.snapshot()}, SyncRead())
    AlertTracker(clock=lambda: h.clock.now).observe(found, h.bus)  # the daemon's alert tracker publishes it
    _, alert = await alerts.next()
    assert alert is not None and alert.data["source"] == "qbo" and "20 days" in alert.data["text"]


async def test_invalid_grant_from_the_loop_makes_the_daemon_unready(make, sim) -> None:
    h = make()
    await h.connect()
    for grant in sim.refresh_tokens.values():
        grant.active = False
    h.clock.now += 3600
    summary = await h.service.tokens_tick()
    assert summary["state"] == "reconnect_required" and "Intuit refused" in summary["refresh"]
    state, detail, ready = h.state()
    assert state == "reconnect_required" and ready is False and "sovterm setup qbo" in detail
    allowed, reason = await h.service.can_sync()
    assert not allowed and "reconnected" in reason


async def test_connecting_a_second_company_revokes_the_first(make, sim) -> None:
    h = make()
    await h.connect()
    first_grants = list(sim.refresh_tokens.values())
    sim.consent_realm = REALM_B
    await h.connect()
    assert all(not g.active for g in first_grants)
    assert (await h.service.active_connection()).realm_id == REALM_B
    assert (await h.service.client()).realm_id == REALM_B
    assert await h.service.currency_context() == CurrencyContext("EUR", True)
