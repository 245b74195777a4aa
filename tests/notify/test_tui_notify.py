"""The TUI's Notifications page on a real daemon: add a destination through the masked dialog, see it
listed by name and service only, send a test that reaches an HTTP receiver, remove it."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.notify import AddDestinationScreen, NotifyScreen
from tests.notify.receivers import HTTPReceiver
from tests.tui.helpers import plain, until

TOKEN = "tk-Pv5Rt8Yu1Io4"


async def test_add_test_and_remove_a_destination_from_the_notifications_page(daemon) -> None:
    http = HTTPReceiver()
    app = SovtermApp(daemon.socket_path)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.session.state.status is not None and app.screen.is_mounted, what="attach")
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, NotifyScreen) and app.screen.is_mounted, what="page")
            screen = app.screen
            await until(pilot, lambda: "no destinations yet" in plain(screen.query_one("#notify-title")),
                        what="the empty list")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AddDestinationScreen), what="the add dialog")
            dialog = app.screen
            dialog.query_one("#notify-name", Input).value = "hook"
            url = dialog.query_one("#notify-url", Input)
            url.value = http.url(f"hook/{TOKEN}")
            assert url.password  # the URL carries a token: masked while typed
            await pilot.click("#notify-save")
            await until(pilot, lambda: app.screen is screen and screen.query_one(DataTable).row_count == 1,
                        what="the destination listed")
            row = screen.query_one(DataTable).get_row_at(0)
            assert row[:3] == ["hook", "json://…", "warning"] and TOKEN not in " ".join(map(str, row))
            await pilot.press("e")
            await until(pilot, lambda: "hook: delivered" in plain(screen.query_one("#notify-result")),
                        timeout=20, what="the test delivered")
            assert http.paths == [f"/hook/{TOKEN}"] and http.titles()[0].endswith("test notification")
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("y")
            await until(pilot, lambda: app.screen is screen and screen.query_one(DataTable).row_count == 0,
                        what="removed")
        assert "hook" not in daemon.cli("notify", "list").stdout
    finally:
        http.close()
