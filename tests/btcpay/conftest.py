"""Fixtures: a database, and the BTCPay simulator on port 0 with every exchange checked against the spec."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.permissions import STORE
from sovterm.sim.btcpay import create_app
from sovterm.sim.btcpay_state import BTCPaySimState, SimClock
from sovterm.store.secrets import Secret
from tests.btcpay.openapi import GreenfieldValidator

T0 = 1_700_000_000
FULL_PERMISSIONS = [STORE + "canmodifystoresettings", STORE + "cancreatepullpayments"]

@functools.cache
def validator() -> GreenfieldValidator:
    """Built once per worker: merging and parsing the spec is the slow part."""
    return GreenfieldValidator()


@dataclass
class Exchange:
    method: str
    path: str
    query: list[tuple[str, str]]
    request_body: Any
    status: int
    response_body: Any


@dataclass
class SimHarness:
    state: BTCPaySimState
    url: str
    session: aiohttp.ClientSession
    exchanges: list[Exchange] = field(default_factory=list)
    validate: bool = True

    def client(self, api_key: str, **kw: Any) -> BTCPayClient:
        kw.setdefault("timeout_s", 5.0)
        kw.setdefault("backoff_base_s", 0.01)
        return BTCPayClient(self.url, Secret(api_key), self.session, **kw)

    def store_with_key(self, permissions: list[str] | None = None, *, scoped: bool = True) -> tuple[str, str]:
        store = self.state.create_store("Test store")
        perms = FULL_PERMISSIONS if permissions is None else permissions
        key = self.state.create_api_key([f"{p}:{store.id}" if scoped else p for p in perms])
        return store.id, key

    def problems(self) -> list[str]:
        v = validator()
        found: list[str] = []
        for ex in self.exchanges:
            found += v.validate_request(ex.method, ex.path, ex.query, ex.request_body)
            found += v.validate_response(ex.method, ex.path, ex.status, ex.response_body)
        return found


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")


@pytest.fixture
async def sim() -> AsyncIterator[SimHarness]:
    state = BTCPaySimState(seed=7, clock=SimClock(T0))
    state.delivery_time_scale = 0.0005
    app = create_app(state)
    recorded: list[Exchange] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        response = await handler(request)
        if response.headers.get("X-Sim-Fault") is None and isinstance(response, web.Response):
            recorded.append(Exchange(
                request.method, request.path, list(request.query.items()), _decode(raw),
                response.status, _decode(response.body or b""),
            ))
        return response

    app.middlewares.insert(0, record)
    server = TestServer(app, port=0)
    await server.start_server()
    session = aiohttp.ClientSession()
    harness = SimHarness(state, str(server.make_url("")).rstrip("/"), session, recorded)
    try:
        yield harness
    finally:
        await session.close()
        await server.close()
    if harness.validate:
        problems = harness.problems()
        assert not problems, "exchanges that break the Greenfield spec:\n" + "\n".join(problems[:20])
