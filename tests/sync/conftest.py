"""Fixtures: a migrated database, the QuickBooks simulator on port 0 with a client, an engine."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sovterm.sim.qbo import QBOSimState, create_app, seed_company
from sovterm.store.db import Database
from sovterm.sync.engine import EngineSettings, SyncEngine
from tests.sync.helpers import REALM, STORE, DirectBooks, grant, make_client, seeded_mapping


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def publish(self, topic: str, **data: object) -> None:
        self.events.append((topic, data))

    def topics(self, topic: str) -> list[dict]:
        return [d for t, d in self.events if t == topic]


@pytest.fixture
def qbo_state() -> QBOSimState:
    state = QBOSimState(seed=11, hang_s=0.5)
    seed_company(state, REALM)
    grant(state)
    return state


@pytest.fixture
async def qbo_url(qbo_state: QBOSimState) -> AsyncIterator[str]:
    server = TestServer(create_app(qbo_state), port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def books(qbo_state: QBOSimState, qbo_url: str, session: aiohttp.ClientSession) -> DirectBooks:
    return DirectBooks(make_client(qbo_url, session, timeout_s=0.3), {STORE: seeded_mapping(qbo_state)})


@pytest.fixture
def bus() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(db: Database, books: DirectBooks, bus: Recorder) -> SyncEngine:
    settings = EngineSettings(workers=4, max_attempts=5, backoff_base_s=0.0, backoff_max_s=0.0, lease_s=30)
    return SyncEngine(db, books, settings, bus=bus, rng=random.Random(1))
