"""The daemon's parts and its real listener, against the spec-checked BTCPay simulator, with two priced paths:
`/api/` proxied to an upstream on 127.0.0.1 and `/files/` served from a directory."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sovterm.btcpay import ledger
from sovterm.config import load_settings
from sovterm.logs import LogRing, LogSetup
from sovterm.parts import PARTS
from sovterm.paywall.gate import Gate
from sovterm.services import Services
from sovterm.sim.btcpay import DEMO_PERMISSIONS
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretBox, SecretStore
from sovterm.systemd import Notifier
from sovterm.web.app import create_listener_app
from tests.btcpay.conftest import SimHarness, sim  # noqa: F401 (the spec-checked BTCPay simulator)


@dataclass
class Shop:
    services: Services
    client: TestClient
    sim: SimHarness
    store_id: str
    upstream_seen: list[dict[str, str]]

    @property
    def gate(self) -> Gate:
        assert self.services.paywall is not None
        return self.services.paywall


async def upstream_app(seen: list[dict[str, str]]) -> TestServer:
    async def echo(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "query": request.query_string, **dict(request.headers)})
        return web.json_response({"weather": "sunny", "path": request.path, "q": request.query_string})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


@pytest.fixture
async def shop(tmp_path: Path, sim: SimHarness) -> AsyncIterator[Shop]:  # noqa: F811
    seen: list[dict[str, str]] = []
    upstream = await upstream_app(seen)
    files = tmp_path / "files"
    files.mkdir()
    (files / "report.txt").write_text("quarterly report\n")
    (tmp_path / "secret.txt").write_text("not for sale\n")
    config = tmp_path / "sovterm.toml"
    config.write_text(f"""
[listener]
public_url = "https://shop.example"

[[paywall]]
name = "weather"
path = "/api/"
price = "0.25"
currency = "USD"
access_s = 600
upstream = "http://127.0.0.1:{upstream.port}/v1"
description = "Weather API"

[[paywall]]
name = "reports"
path = "/files/"
price_sats = 2100
directory = "{files}"
""")
    settings = load_settings(config, {"SOVTERM_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)})
    logs = LogSetup(ring=LogRing(), handlers=[])
    services = Services(settings, {}, Notifier({}), logs)
    db = services.db = await Database.open(tmp_path / "t.db")
    services.secrets = SecretStore(db, SecretBox(os.urandom(32)))
    sim.state.clock.set(int(time.time()))  # the poller reads a window of days back from now
    store = sim.state.create_store("Machine shop")
    api_key = sim.state.create_api_key([f"{p}:{store.id}" for p in DEMO_PERMISSIONS])
    await kv.put(db, "btcpay:connection", {"url": sim.url, "features": ["sync", "webhooks", "payouts"]})
    await services.secrets.put("btcpay:api_key", Secret(api_key))
    async with db.transaction() as conn:
        await ledger.upsert_store(conn, store.id, name=store.name, selected=True)
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stages:
        services.http = http
        for part in PARTS:
            if part.stage is not None:
                await stages.enter_async_context(part.stage(services))
        assert services.paywall is not None
        services.paywall.clock = sim.state.clock  # BTCPay's invoices and the macaroons' expiries on one clock
        assert services.links is not None
        services.links.clock = sim.state.clock
        app = create_listener_app(services)
        for part in PARTS:
            if part.routes is not None:
                part.routes(app)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Shop(services, client, sim, store.id, seen)
    await upstream.close()
    await db.close()
    logs.close()
