"""Readiness: a loop that stops beating makes /readyz 503; the event bus never blocks a publisher."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from sovterm.config import load_settings
from sovterm.events import EventBus
from sovterm.health import Heartbeats
from sovterm.logs import setup_logging
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
    logs = setup_logging(None)
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
