"""The app attached to a real `sovterm daemon` subprocess."""

from __future__ import annotations

import asyncio

from textual.widgets import Log

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.attach import AttachScreen
from sovterm.tui.screens.dashboard import DashboardScreen
from sovterm.tui.screens.logs import LogsScreen
from sovterm.tui.widgets import Panel
from tests.tui.helpers import plain, until


def on_dashboard(app: SovtermApp) -> bool:
    return isinstance(app.screen, DashboardScreen) and app.screen.is_mounted and app.session.state.status is not None


async def test_attach_shows_the_dashboard_with_version_and_loops(daemon) -> None:
    app = SovtermApp(daemon.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: on_dashboard(app), what="dashboard")
        screen = app.screen
        assert "sovterm 0.1.0" in plain(screen.query_one("#daemon", Panel))
        assert "READY" in plain(screen.query_one("#daemon", Panel))
        assert "reaper" in plain(screen.query_one("#loops", Panel))
        assert app.session.state.caps.role == "admin" and "(admin)" in app.sub_title
        # the real daemon's admin action is enabled and works
        assert screen.check_action("run", ("reload",)) is True
        assert (await app.session.daemon.call("daemon.reload"))["restart_needed"] == []
        # 80x24: every panel is on screen, whole, and the screen does not scroll
        area = screen.region
        for widget in [*screen.query(Panel), screen.query_one("#actions")]:
            r = widget.region
            assert r.height >= 1 and area.contains_region(r), widget.id
        assert all(p.region.height >= 4 for p in screen.query(Panel))
        assert screen.max_scroll_y == 0 and screen.max_scroll_x == 0


async def test_no_daemon_shows_the_fix_and_attaches_when_it_starts(daemon_factory) -> None:
    d = daemon_factory(start=False)
    app = SovtermApp(d.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.session.state.error is not None and app.screen.is_mounted, what="disconnected")
        assert isinstance(app.screen, AttachScreen)
        shown = plain(app.screen.query_one("#attach-fix"))
        assert "systemctl start sovterm" in shown
        assert "not running" in plain(app.screen.query_one("#attach-message"))
        await asyncio.to_thread(d.start)
        await until(pilot, lambda: on_dashboard(app), timeout=10, what="dashboard after start")


async def test_reconnects_by_itself_when_the_daemon_restarts(daemon) -> None:
    app = SovtermApp(daemon.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: on_dashboard(app), what="dashboard")
        first_pid = app.session.state.status["pid"]
        await asyncio.to_thread(daemon.stop)
        await until(pilot, lambda: isinstance(app.screen, AttachScreen) and app.session.state.error, what="disconnected")
        await asyncio.to_thread(daemon.start)
        await until(pilot, lambda: on_dashboard(app) and app.session.state.status["pid"] != first_pid,
                    timeout=10, what="reconnect")
        assert app.session.state.connected and app.session.state.error is None


async def test_logs_show_new_lines_and_the_level_filter_hides_debug(daemon_factory) -> None:
    d = daemon_factory({"logging": {"level": "DEBUG"}})
    app = SovtermApp(d.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: on_dashboard(app), what="dashboard")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.is_mounted, what="logs")
        log = app.screen.query_one(Log)
        result = await asyncio.to_thread(d.cli, "reload")
        assert result.returncode == 0, result.stderr
        await until(pilot, lambda: any("configuration reloaded" in x for x in log.lines), what="reload line")
        assert any(" DEBUG " in x for x in log.lines)  # the CLI's "client attached"
        await pilot.press("v")  # DEBUG -> INFO
        await pilot.pause()
        assert app.screen.filter.level == "INFO"
        assert log.lines and not any(" DEBUG " in x for x in log.lines)
        assert any("configuration reloaded" in x for x in log.lines)
