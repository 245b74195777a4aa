"""The app against a fixed daemon facade: roles, actions, confirmation, log following, help, palette."""

from __future__ import annotations

from textual.widgets import Button, Log, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.commands import SovtermCommands
from sovterm.tui.messages import ActionDone, DaemonEvent, FeedUpdated, LogLines
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.help import HelpScreen
from sovterm.tui.screens.logs import LogsScreen
from tests.tui.fakes import SOCKET, FixedConnection, fixed_app
from tests.tui.helpers import plain, until


async def test_viewer_sees_everything_but_admin_actions_are_disabled_with_the_reason() -> None:
    app = fixed_app(role="viewer")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        screen = app.screen
        assert "viewer" in app.sub_title
        assert screen.check_action("run", ("reload",)) is None  # dimmed in the footer
        actions = plain(screen.query_one("#actions"))
        assert "needs the admin role; alice is viewer" in actions
        await pilot.press("r")
        await pilot.pause()
        assert app.connection.client.calls == []
        app.run_daemon_action("reload")  # the palette path refuses too
        await pilot.pause()
        assert app.connection.client.calls == []


async def test_admin_reload_calls_the_daemon_and_reports() -> None:
    done: list[ActionDone] = []
    app = fixed_app(role="admin")
    async with app.run_test(size=(80, 24), message_hook=lambda m: done.append(m) if isinstance(m, ActionDone) else None) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        assert app.screen.check_action("run", ("reload",)) is True
        await pilot.press("r")
        await until(pilot, lambda: done, what="action result")
        assert app.connection.client.calls == [("daemon.reload", {})]
        assert done[0].text.startswith("configuration reloaded")


async def test_rotate_key_asks_first_and_defaults_to_no() -> None:
    app = fixed_app(role="admin")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        focused = app.screen.focused
        assert isinstance(focused, Button) and focused.id == "no"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.connection.client.calls == []
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.connection.client.calls, what="rotate call")
        assert app.connection.client.calls == [("secrets.rotate", {})]


async def test_logs_follow_unless_scrolled_back_then_show_how_many_are_new() -> None:
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.is_mounted, what="logs")
        screen = app.screen
        log = screen.query_one(Log)
        batch = [{"ts": "2026-07-01T12:01:00.000Z", "level": "INFO", "component": "sync", "msg": f"line {i}"}
                 for i in range(200)]
        app.post_message(LogLines(batch))
        await until(pilot, lambda: log.line_count == 204, what="200 lines written")
        assert log.is_vertical_scroll_end  # following
        await pilot.press("home")
        await until(pilot, lambda: not log.is_vertical_scroll_end, what="scrolled back")
        app.post_message(LogLines(batch[:7]))
        await until(pilot, lambda: screen.unseen == 7, what="unseen count")
        assert "7 new lines — press End to follow" in plain(screen.query_one("#log-indicator"))
        await pilot.press("end")  # the scroll lands a refresh or two later on a busy machine
        await until(pilot, lambda: log.is_vertical_scroll_end and screen.unseen == 0, what="following again")
        # filters: search narrows, component narrows, typing does not trigger screen keys
        await pilot.press("slash", *"line 19")
        await pilot.pause()
        assert app.current_mode == "logs"
        assert all("line 19" in line for line in log.lines) and len(log.lines) == 11  # 19, 190..199
        await pilot.press("escape")
        assert isinstance(app.focused, Log)


async def test_help_lists_keys_and_disabled_reasons() -> None:
    app = fixed_app(role="viewer")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = app.screen.text
        assert "Logs" in text and "disabled: needs the admin role" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_mode == "dashboard" and not isinstance(app.screen, HelpScreen)


async def test_command_palette_lists_screens_and_actions() -> None:
    app = fixed_app(role="viewer")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        provider = SovtermCommands(app.screen)
        hits = [hit async for hit in provider.discover()]
        by_text = {str(h.display): h for h in hits}
        assert "Go to Logs" in by_text
        assert by_text["Reload config"].help.startswith("disabled: needs the admin role")
        by_text["Go to Logs"].command()
        await pilot.pause()
        assert app.current_mode == "logs"


async def test_theme_toggles_between_light_and_dark() -> None:
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        assert app.theme == "textual-dark"
        await pilot.press("t")
        assert app.theme == "textual-light"


async def test_a_crashing_connection_is_shown_and_restarted() -> None:
    class CrashOnce(FixedConnection):
        runs = 0

        async def run(self) -> None:
            CrashOnce.runs += 1
            if CrashOnce.runs == 1:
                raise RuntimeError("boom")
            await super().run()

    app = SovtermApp(SOCKET, connection_factory=lambda post: CrashOnce(post))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.session.state.error is not None, what="connection failure shown")
        assert "RuntimeError('boom')" in app.session.state.error
        await until(pilot, lambda: app.current_mode == "dashboard", what="restarted connection attached")


def test_connection_messages_arriving_after_the_last_screen_is_gone_are_dropped() -> None:
    """At shutdown (here: before any screen exists) a feed update or event finds no screen stack."""
    app = fixed_app()
    assert app.top_daemon_screen() is None
    app.on_feed_updated(FeedUpdated("sync.status", {"queued": 1}))
    app.on_daemon_event(DaemonEvent("sync.job", 0.0, {}))
    assert app.session.state.feeds["sync.status"] == {"queued": 1}


async def test_dashboard_lists_each_followed_store_with_its_mode_class_and_key(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.tui import fakes

    two = [
        {"id": "S1", "name": "Coffee", "mode": "deposit", "mapping": {"class": "Coffee"}, "api_key": "server",
         "error": None},
        {"id": "S2", "name": "Books", "mode": "invoicing", "mapping": None, "api_key": "own",
         "error": "BTCPay refuses store S2's own API key"},
    ]
    monkeypatch.setattr(fakes, "STATUS", {**fakes.STATUS, "stores": two})
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        await until(pilot, lambda: "store Books" in plain(app.screen.query_one("#connectors", Static)),
                    what="stores in the connectors panel")
        text = plain(app.screen.query_one("#connectors", Static))
        assert "store Coffee: deposit · class Coffee" in text and "own key" not in text.split("store Books")[0]
        assert "store Books: invoicing · no accounts mapped · own key BTCPay refuses store S2's own API key" in text
