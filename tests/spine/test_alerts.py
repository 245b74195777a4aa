"""Alerts are worked out once (sovterm/alerts.py) and every surface renders the same list: the `status`
control method, the CLI, the web status page (HTML and JSON) and the TUI's dashboard."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

from sovterm.alerts import BOOKS_CHECK_KEY, DAY_S, AlertTracker, SyncRead, Upkeep, conditions
from sovterm.cli.core import format_status
from sovterm.control.client import ControlClient
from sovterm.control.roles import RolePolicy
from sovterm.control.server import ControlServer
from sovterm.events import EventBus
from sovterm.loops import Loops
from sovterm.parts import ops as ops_part
from sovterm.parts.core import daemon_status, register_core_methods
from sovterm.parts.notify import check_books
from sovterm.payouts.service import PayoutService
from sovterm.store import keyring, kv
from sovterm.sync.reconcile import Report
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


def _found(ready: bool = False, checks: dict[str, Any] = CHECKS, sync: SyncRead = NO_SYNC,
           upkeep: Upkeep | None = None) -> list[tuple[str, str]]:
    return [(c.severity, c.text) for c in AlertTracker().observe(conditions(ready, checks, sync, upkeep), EventBus())]


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
    unreachable = {"database": "writable", "connectors": {"btcpay": {
        "state": "unreachable", "detail": "BTCPay at https://btcpay.example: connection refused", "ready": False}}}
    assert _found(False, unreachable) == [
        ("warning", "btcpay not ready: unreachable (BTCPay at https://btcpay.example: connection refused)")]
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


NOW = 1_800_000_000.0
FRESH = Upkeep(NOW, database_since=NOW - DAY_S)  # a day-old database, nothing waiting, books never checked


def test_upkeep_rules_payouts_books_backup() -> None:
    def found(up: Upkeep) -> list[tuple[str, str]]:
        return _found(True, {"database": "writable"}, NO_SYNC, up)

    assert found(FRESH) == []
    waiting = replace(FRESH, payouts_waiting=3, oldest_payout_at=NOW - 3 * 3600)
    assert found(waiting) == [("warning", "3 payout(s) awaiting approval, the oldest for 3 h 0 min")]
    assert found(replace(waiting, oldest_payout_at=NOW - 300)) == []  # under [alerts] payout_wait_min (10)
    books = {"at": NOW - 7200, "from": "2026-11-26", "to": "2026-12-02", "ok": False, "differences": 2,
             "wallets_off": 1}
    assert found(replace(FRESH, books=books)) == [
        ("error", "The books do not match for 2026-11-26 to 2026-12-02: 2 difference(s), 1 wallet(s) off "
                  "(checked 2 h 0 min ago)")]
    assert found(replace(FRESH, books={**books, "ok": True, "differences": 0, "wallets_off": 0})) == []
    assert found(replace(FRESH, backup_at=NOW - 9 * DAY_S)) == [("warning", "No backup for 9 d 0 h")]
    assert found(replace(FRESH, backup_at=NOW - 6 * DAY_S, database_since=NOW - 90 * DAY_S)) == []
    assert found(replace(FRESH, database_since=NOW - 12 * DAY_S)) == [
        ("warning", "No backup yet (the database is 12 d 0 h old)")]
    assert found(replace(FRESH, database_since=NOW - 12 * DAY_S, backup_max_age_s=None)) == []  # turned off
    unread = replace(FRESH, error="upkeep checks unavailable (OperationalError)")
    assert found(unread) == [("warning", "upkeep checks unavailable (OperationalError)")]


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
        db = services.require_db()
        services.payouts = PayoutService(db, _no_btcpay, _no_stores, lambda: None, completed=None)
        await _waiting_payout(db, "p1", age_s=2 * 3600)
        await kv.put(db, BOOKS_CHECK_KEY, {"at": time.time() - 3 * 3600, "from": "2026-11-26", "to": "2026-12-02",
                                           "ok": False, "differences": 1, "wallets_off": 0})
        await db.write("UPDATE schema_version SET applied_at = ?", (int(time.time() - 12 * DAY_S),))

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
            ("error", "The books do not match for 2026-11-26 to 2026-12-02: 1 difference(s) (checked 3 h 0 min ago)"),
            ("warning", "Loop reaper failed its last run"),
            ("warning", "qbo not ready: reconnect required (refresh token <revoked>; run `sovterm setup qbo`)"),
            ("warning", "1 sync job(s) held: nothing more is posted to QuickBooks until the cause is fixed"),
            ("warning", "3 payment(s) match no QuickBooks invoice"),
            ("warning", "1 payout(s) awaiting approval, the oldest for 2 h 0 min"),
            ("warning", "No backup yet (the database is 12 d 0 h old)"),
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


async def _no_reload() -> dict[str, Any]:
    return {}


async def _no_btcpay(store_id: str) -> Any:
    raise AssertionError("the alerts read the payout mirror, never BTCPay")


async def _no_stores() -> list[str]:
    return []


async def _waiting_payout(db: Any, payout_id: str, age_s: float) -> None:
    await db.write("INSERT INTO payouts(store_id, payout_id, state, revision, created_at, updated_at) "
                   "VALUES('S1', ?, 'AwaitingApproval', 0, ?, ?)", (payout_id, int(time.time() - age_s), 0))


class ConnectedQBO:
    async def can_sync(self) -> tuple[bool, str]:
        return True, ""

    async def client(self) -> str:
        return "the QuickBooks client"

    async def currency_context(self) -> Any:
        return type("Currency", (), {"home": "USD"})()


class ConnectedBTCPay:
    def client_for_store(self, store_id: str) -> Any:
        raise AssertionError("not reached: the report is a stand-in")


async def test_upkeep_alerts_start_and_clear_so_notifications_go_out(tmp_path: Path) -> None:
    """Payouts waiting, books that differ and no backup each start an alert (the notify part's listener hears
    it) and clear it once handled: approved, the books checked again and matching, a backup made."""
    async with status_client(tmp_path) as (_, services):
        db = services.require_db()
        heard: list[tuple[str, str]] = []
        services.alerts.listeners.append(lambda change, alert: heard.append((change, alert.key)))
        services.payouts = PayoutService(db, _no_btcpay, _no_stores, lambda: None, completed=None)
        services.qbo, services.btcpay = ConnectedQBO(), ConnectedBTCPay()  # type: ignore[assignment]
        await db.write("UPDATE schema_version SET applied_at = ?", (int(time.time() - 8 * DAY_S),))
        await _waiting_payout(db, "p1", age_s=3600)
        asked: list[tuple[str, str]] = []

        async def differing(db: Any, client: Any, date_from: str, date_to: str, home: str, btcpay: Any) -> Report:
            asked.append((date_from, date_to))
            return Report(date_from, date_to, differences=[{"invoice_id": "inv1", "problem": "no document"}])

        verdict = await check_books(services, differing)
        assert verdict["ok"] is False and verdict["differences"] == 1
        (day_from, day_to), = asked  # the last seven closed days, today left out
        assert (day_to > day_from) and services.settings.alerts.books_check_days == 7
        status = (await daemon_status(services)).model_dump(mode="json")
        keys = {a["key"] for a in status["alerts"]}
        assert {"payouts.awaiting", "books.differ", "backup.old"} <= keys
        assert "inv1" not in str(status["alerts"])  # counts only: the status page needs no login
        assert sorted(heard) == [("started", "backup.old"), ("started", "books.differ"),
                                 ("started", "payouts.awaiting")]

        await db.write("UPDATE payouts SET state = 'AwaitingPayment' WHERE payout_id = 'p1'")  # approved

        async def matching(db: Any, client: Any, date_from: str, date_to: str, home: str, btcpay: Any) -> Report:
            return Report(date_from, date_to)

        assert (await check_books(services, matching))["ok"] is True
        services.secrets = await keyring.unlock(db, tmp_path)  # the key file a backup carries

        async def audit_ok(*args: Any, **kwargs: Any) -> None:
            return None

        server = ControlServer(tmp_path / "run" / "c.sock", RolePolicy(os.geteuid(), None, None),
                               parts=lambda name: getattr(services, name), audit=audit_ok, version="t")
        register_core_methods(server, services, reload=_no_reload, loops=Loops(services))
        ops_part.register(server, services)
        await server.start()
        try:
            async with await ControlClient.connect(server.path) as control:
                await control.call("backup.create", include_key=False)
        finally:
            await server.stop()
        status = (await daemon_status(services)).model_dump(mode="json")
        assert not {"payouts.awaiting", "books.differ", "backup.old"} & {a["key"] for a in status["alerts"]}
        assert sorted(heard[3:]) == [("cleared", "backup.old"), ("cleared", "books.differ"),
                                     ("cleared", "payouts.awaiting")]


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
