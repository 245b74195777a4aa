"""Readiness: a loop that stops beating makes /readyz 503; the event bus never blocks a publisher."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sovterm.config import load_settings
from sovterm.events import EventBus
from sovterm.health import Heartbeats
from sovterm.logs import LogRing, LogSetup
from sovterm.services import Services
from sovterm.store.db import Database
from sovterm.systemd import Notifier
from sovterm.web.app import create_listener_app


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_readyz_turns_unhealthy_when_a_loop_stops_beating(tmp_path: Path) -> None:
    settings = load_settings(None, {"SOVTERM_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)})
    logs = LogSetup(ring=LogRing(), handlers=[])  # not setup_logging: it reconfigures the global tree
    services = Services(settings, {}, Notifier({}), logs)
    clock = Clock()
    services.heartbeats = Heartbeats(grace_s=10, clock=clock, started_at=clock.now)
    services.heartbeats.register("sync", 5)
    services.db = await Database.open(tmp_path / "t.db")
    client = TestClient(TestServer(create_listener_app(services)))
    await client.start_server()
    try:
        services.heartbeats.started("sync")
        services.heartbeats.finished("sync", True)
        assert (await client.get("/readyz")).status == 200
        clock.now += 19  # two intervals plus grace is 20 s
        assert (await client.get("/readyz")).status == 200
        clock.now += 2
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503 and body["stale_loops"] == ["sync"]
        services.heartbeats.finished("sync", True)  # it beats again
        assert (await client.get("/readyz")).status == 200
        services.connectors.set("qbo", "reconnect_required", "invalid_grant", ready=False)
        resp = await client.get("/readyz")
        assert resp.status == 503 and (await resp.json())["connectors"]["qbo"]["state"] == "reconnect_required"
    finally:
        await client.close()
        await services.db.close()
        logs.close()


async def test_bus_drops_for_slow_subscriber_and_counts() -> None:
    bus = EventBus()
    slow = bus.subscribe(["sync"], limit=3)
    other = bus.subscribe(["payouts"], limit=3)
    for i in range(10):
        bus.publish("sync.job", n=i)
    missed, first = await slow.next()
    assert missed == 7 and first is not None and first.data == {"n": 0}
    assert other._buffer == type(other._buffer)()  # topic filter: nothing for payouts


async def test_a_request_that_overruns_its_deadline_gets_504(tmp_path: Path) -> None:
    """A stuck handler (a body that never finishes arriving, a peer that hangs) is cancelled by the
    deadline sweep and answered 504; requests that finish in time are untouched."""
    settings = load_settings(None, {"SOVTERM_DATA_DIR": str(tmp_path), "HOME": str(tmp_path),
                                    "SOVTERM_LISTENER__REQUEST_TIMEOUT_S": "0.3"})
    services = Services(settings, {}, Notifier({}), LogSetup(ring=LogRing(), handlers=[]))
    app = create_listener_app(services)
    stuck_cleaned_up = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        try:
            await asyncio.sleep(60)
        finally:
            stuck_cleaned_up.set()
        return web.Response(text="never")

    async def quick(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.Response(text="done")

    app.router.add_get("/stuck", stuck)
    app.router.add_get("/quick", quick)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        started = time.monotonic()
        resp = await client.get("/stuck")
        assert resp.status == 504 and await resp.text() == "request timed out\n"
        assert 0.3 <= time.monotonic() - started < 2
        assert stuck_cleaned_up.is_set()
        assert [(await client.get("/quick")).status for _ in range(3)] == [200, 200, 200]
        metrics = await (await client.get("/metrics")).text()
        assert 'sovterm_http_requests_total{route="/stuck",status="504"} 1.0' in metrics
    finally:
        await client.close()
