"""Plain state and rendering: no terminal, no daemon."""

from __future__ import annotations

import re
from decimal import Decimal

from sovterm.tui.connection import Backoff
from sovterm.tui.screens.attach import render_attach
from sovterm.tui.state import Capabilities, DaemonState, LogBuffer, LogFilter, alerts_from_status, sparkline
from sovterm.tui.widgets import render_alerts, render_loops, render_sync, render_volume
from tests.tui.fakes import FEED_METHODS, FEEDS, METHODS, STATUS


def test_capabilities_explain_why_an_action_is_disabled() -> None:
    viewer = Capabilities.from_daemon({"role": "viewer", "user": "bob"}, METHODS)
    admin = Capabilities.from_daemon({"role": "admin", "user": "root"}, METHODS)
    assert viewer.why_not("status") is None
    assert viewer.why_not("daemon.reload") == "needs the admin role; bob is viewer"
    assert admin.why_not("daemon.reload") is None
    assert admin.why_not("sync.status") == "this daemon does not offer sync.status"


def test_alerts_are_the_daemons_list_rendered_worst_first() -> None:
    alerts = alerts_from_status(STATUS)
    texts = [a.text for a in alerts]
    assert alerts[0].severity == "error" and texts[0].startswith("Loop sync is stale")
    assert "qbo not ready: auth needed (token expired)" in texts
    assert not any("btcpay" in t for t in texts)
    panel = render_alerts(DaemonState(status=STATUS))
    assert "[$error]✗[/] Loop sync" in panel and "sovterm loops run sync" in panel  # with what to do
    assert alerts_from_status({"ready": True, "checks": {"database": "writable"}, "alerts": []}) == []
    assert "nothing needs attention" in render_alerts(DaemonState(status={**STATUS, "alerts": []}))


def test_sparkline_uses_exact_amounts() -> None:
    assert sparkline([Decimal("0"), Decimal("3.5"), Decimal("7")]) == "▁▄█"
    assert sparkline([5, 5]) == "██"
    assert sparkline([]) == ""


def test_log_buffer_is_bounded_and_readers_catch_up() -> None:
    buf = LogBuffer(size=3)
    buf.extend({"msg": str(i)} for i in range(2))
    lines, redraw = buf.since(0)
    assert [x["msg"] for x in lines] == ["0", "1"] and not redraw
    seen = buf.total
    buf.extend({"msg": str(i)} for i in range(2, 7))
    assert len(buf) == 3
    lines, redraw = buf.since(seen)
    assert redraw and [x["msg"] for x in lines] == ["4", "5", "6"]
    seen = buf.total
    buf.reset([{"msg": "new"}])
    lines, redraw = buf.since(seen)
    assert redraw and [x["msg"] for x in lines] == ["new"]


def test_log_filter_level_component_search() -> None:
    line = {"level": "DEBUG", "component": "sync.worker", "msg": "Posted invoice"}
    assert LogFilter().keep(line)
    assert not LogFilter(level="INFO").keep(line)
    assert LogFilter(component="sync").keep(line) and not LogFilter(component="qbo").keep(line)
    assert LogFilter(search="posted").keep(line) and not LogFilter(search="refund").keep(line)


def test_backoff_grows_to_a_cap_and_resets() -> None:
    b = Backoff(first=0.25, cap=1.0)
    assert [b.next() for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]
    b.reset()
    assert b.next() == 0.25


def test_panels_say_no_data_until_the_daemon_offers_the_feed() -> None:
    without = DaemonState(status=STATUS, caps=Capabilities.from_daemon({"role": "admin"}, METHODS))
    assert "no data yet" in render_sync(without) and "does not offer sync.status" in render_sync(without)
    assert "no data yet" in render_volume(without)
    caps = Capabilities.from_daemon({"role": "admin"}, METHODS + FEED_METHODS)
    with_feeds = DaemonState(status=STATUS, caps=caps, feeds=dict(FEEDS))
    assert "queue 3 · dead 1" in render_sync(with_feeds)
    volume = render_volume(with_feeds)
    assert "today 120.50 USD" in volume and sparkline([Decimal(v) for v in FEEDS["sync.totals"]["daily"]]) in volume
    assert "STALE" in render_loops(with_feeds)


def test_attach_text_carries_the_fix() -> None:
    state = DaemonState(socket_path="/s", error="the daemon is not running", fix="start it", attempt=2, retry_in=0.5)
    title, message, fix, retry = render_attach(state)
    assert title == "Not attached to the sovterm daemon"
    assert "start it" in fix and "attempt 2" in retry
    assert render_attach(DaemonState(socket_path="/s"))[0].startswith("Connecting")


def test_terminal_check_fails_without_a_tty() -> None:
    import os

    from sovterm.tui.app import terminal_alive

    read, write = os.pipe()
    try:
        assert terminal_alive((read, write)) is False
    finally:
        os.close(read)
        os.close(write)


def test_loop_states_line_up_whatever_the_names() -> None:
    loops = {"btcpay.poll": {"fresh": True, "last_ok": True, "last_run_age_s": 3, "interval_s": 30},
             "sync": {"fresh": True, "last_ok": True, "last_run_age_s": 1, "interval_s": 2}}
    rendered = render_loops(DaemonState(status={"checks": {"loops": loops}}))
    lines = [re.sub(r"\[[^\]]*\]", "", line) for line in rendered.splitlines()]
    assert len(lines) == 2 and len({line.index("ok") for line in lines}) == 1, lines
