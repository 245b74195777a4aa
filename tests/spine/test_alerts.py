"""Alerts are worked out once (sovterm/alerts.py) and every surface renders the same list: the `status`
control method, the CLI, the web status page (HTML and JSON) and the TUI's dashboard."""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path
from typing import Any

from sovterm.alerts import AlertTracker, SyncRead, conditions
from sovterm.cli.core import format_status
from sovterm.control.client import ControlClient
from sovterm.control.roles import RolePolicy
from sovterm.control.server import ControlServer
from sovterm.events import EventBus
from sovterm.loops import Loops
from sovterm.parts.core import daemon_status, register_core_methods
from sovterm.tui.state import DaemonState, alerts_from_status
from sovterm.tui.text import escape as tui_escape
from sovterm.tui.widgets import render_alerts
from tests.ops.helpers import status_client

CHECKS: dict[str, Any] = {
    "database": "writable",
    "loops": {
        "reaper": {"interval_s": 300, "last_run_age_s": 42.0, "last_ok": False, "paused": False, "fresh": True},
        "sync": {"interval_s": 30, "last_run_age_s": 400.0, "last_ok": True, "paused": False, "fresh": False},
        "poll": {"interval_s": 60, "last_run_age_s": 10.0, "last_ok": True, "paused": True, "fresh": False},
    },
    "stale_loops": ["poll", "sync"],
    "connectors": {
        "btcpay": {"state": "connected", "detail": "store Main", "ready": True},
        "qbo": {"state": "auth_needed", "detail": "token expired", "ready": False},
    },
}


NO_SYNC = SyncRead()


def _found(ready: bool = False, checks: dict[str, Any] = CHECKS, sync: SyncRead = NO_SYNC) -> list[tuple[str, str]]:
    return [(c.severity, c.text) for c in AlertTracker().observe(conditions(ready, checks, sync), EventBus())]


def test_readiness_rules_worst_first() -> None:
    assert _found() == [
        ("error", "Loop sync is stale (runs every 30 s)"),
        ("warning", "Loop poll is paused"),
        ("warning", "Loop reaper failed its last run"),
        ("warning", "qbo not ready: auth needed (token expired)"),
    ]
    low_disk = {"database": "not writable: OperationalError", "disk": "low: 50 MB free, needs 500 MB"}
    assert _found(checks=low_disk) == [("error", "Database not writable: OperationalError"),
                                       ("error", "Disk space low: 50 MB free, needs 500 MB")]
    assert _found(True, {"database": "writable"}) == []
    assert _found(False, {"database": "writable"}) == [("error", "The daemon is not ready")]


def test_a_refresh_token_near_its_end_is_an_alert_while_still_ready() -> None:
    checks = {"database": "writable", "connectors": {
        "qbo": {"state": "refresh_expiring", "detail": "refresh token ends in 12 days", "ready": True},
        "btcpay": {"state": "connected", "detail": "", "ready": True},
    }}
    assert _found(True, checks) == [("warning", "qbo authorisation ends soon (refresh token ends in 12 days)")]


def test_sync_rules() -> None:
    summary = {"queued": 3, "dead": 1, "held": 2, "unmatched": 1, "review": 2, "paused": True,
               "held_reason": "store S1 has no QuickBooks account mapping yet"}
    found = _found(True, {"database": "writable"}, SyncRead(summary))
    assert found == [
        ("error", "1 sync job(s) failed for good"),
        ("warning", "2 sync job(s) held: nothing more is posted to QuickBooks until the cause is fixed"),
        ("warning", "1 payment(s) match no QuickBooks invoice"),
        ("info", "Sync is paused: nothing is posted to QuickBooks"),
        ("info", "2 posting(s) flagged for review (overpaid, settled below the price)"),
    ]
    assert not any("S1" in text for _, text in found)  # the page without a login shows these: no store ids
    assert _found(True, {"database": "writable"}, SyncRead({}, "sync status unavailable (TimeoutError)")) == [
        ("warning", "sync status unavailable (TimeoutError)")]


async def test_tracker_keeps_first_seen_forgets_cleared_and_publishes_new_ones() -> None:
    clock = [1000.0]
    tracker, bus = AlertTracker(clock=lambda: clock[0]), EventBus()
    events = bus.subscribe(["alert"])
    dead = conditions(True, {"database": "writable"}, SyncRead({"dead": 1}))
    assert [a.since for a in tracker.observe(dead, bus)] == [1000.0]
    _, event = await events.next()
    assert event is not None and event.data["key"] == "sync.dead" and event.data["source"] == "sync"
    assert event.data["severity"] == "error" and event.data["text"] == "1 sync job(s) failed for good"
    clock[0] = 1060.0
    assert [a.since for a in tracker.observe(dead, bus)] == [1000.0]  # still the same condition
    heard: list[tuple[str, str, float]] = []
    tracker.listeners.append(lambda change, alert: heard.append((change, alert.key, alert.since)))
    assert tracker.observe([], bus) == []
    _, cleared = await events.next()  # the clear is published too (notifications send it)
    assert cleared is not None and cleared.topic == "alert.cleared" and cleared.data["key"] == "sync.dead"
    clock[0] = 1120.0
    assert [a.since for a in tracker.observe(dead, bus)] == [1120.0]  # it cleared: a new one
    _, again = await events.next()
    assert again is not None and again.topic == "alert" and again.data["since"] == 1120.0
    assert heard == [("cleared", "sync.dead", 1000.0), ("started", "sync.dead", 1120.0)]


class TroubledSync:
    async def status(self) -> dict[str, Any]:
        return {"queued": 4, "running": 0, "dead": 2, "held": 1, "unmatched": 3, "review": 1, "paused": False,
                "held_reason": "QuickBooks must be reconnected"}

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return []


async def test_every_surface_shows_the_daemons_alerts(tmp_path: Path) -> None:
    async with status_client(tmp_path, TroubledSync()) as (client, services):
        services.connectors.set("btcpay", "connected", "https://btcpay.example", ready=True)
        services.connectors.set("qbo", "reconnect_required", "refresh token <revoked>; run `sovterm setup qbo`",
                                ready=False)
        services.heartbeats.register("reaper", 30)
        services.heartbeats.finished("reaper", False, "boom")
        services.heartbeats.register("sync", 1)
        services.heartbeats.started_at -= 3600  # never ran since start-up, an hour ago: stale
        async def refuse_audit(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("status is not audited")

        server = ControlServer(tmp_path / "run" / "c.sock", RolePolicy(os.geteuid(), None, None),
                               parts=lambda name: getattr(services, name), audit=refuse_audit, version="t")

        async def no_reload() -> dict[str, Any]:
            return {}

        register_core_methods(server, services, reload=no_reload, loops=Loops(services))
        await server.start()
        try:
            async with await ControlClient.connect(server.path) as control:
                status = await control.call("status")
        finally:
            await server.stop()

        expected = [(a["severity"], a["text"]) for a in status["alerts"]]
        assert expected == [
            ("error", "Loop sync is stale (runs every 1 s)"),
            ("error", "2 sync job(s) failed for good"),
            ("warning", "Loop reaper failed its last run"),
            ("warning", "qbo not ready: reconnect required (refresh token <revoked>; run `sovterm setup qbo`)"),
            ("warning", "1 sync job(s) held: nothing more is posted to QuickBooks until the cause is fixed"),
            ("warning", "3 payment(s) match no QuickBooks invoice"),
            ("info", "1 posting(s) flagged for review (overpaid, settled below the price)"),
        ]

        web = await (await client.get("/status.json")).json()
        assert [(a["severity"], a["text"]) for a in web["alerts"]] == expected
        assert [a["since"] for a in web["alerts"]] == [a["since"] for a in status["alerts"]]  # one tracker
        page = await (await client.get("/")).text()
        shown = re.findall(r'<li><span class="badge \w+">(\w+)</span> (.*?) <span', page)
        assert [(severity, text) for severity, text in shown] == [(s, escape(t)) for s, t in expected]
        assert all(escape(a["fix"]) in page for a in status["alerts"])

        cli = format_status(status)
        for severity, text in expected:
            assert f"{severity.upper():<7} {text}" in cli
        assert all(a["fix"] in cli for a in status["alerts"])

        assert [(a.severity, a.text) for a in alerts_from_status(status)] == expected
        panel = render_alerts(DaemonState(status=status))
        for _, text in expected:
            assert tui_escape(text) in panel
        assert all(tui_escape(a["fix"]) in panel for a in status["alerts"])


async def test_status_answers_loop_summaries_as_objects(tmp_path: Path) -> None:
    async with status_client(tmp_path) as (_, services):
        services.heartbeats.register("sync", 30)
        await services.require_db().write(
            "INSERT INTO loop_runs(loop, last_start, last_end, last_ok, summary) VALUES('sync', 1, 2, 1, ?)",
            ('{"requeued": 0, "held": 1}',),
        )
        status = (await daemon_status(services)).model_dump(mode="json")
        assert status["last_runs"]["sync"] == {"last_start": 1, "last_end": 2, "ok": True,
                                               "summary": {"requeued": 0, "held": 1}}
        assert 'last run never  {"requeued": 0, "held": 1}' in format_status(status)  # not an escaped string
