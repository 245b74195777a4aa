"""The TUI's Mints screen on a real daemon: trust a mint through the dialog, check it, see its state and
history, stop checking it."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.mints import AddMintScreen, MintsScreen
from tests.support.daemon import free_port
from tests.tui.helpers import plain, until


async def test_trust_check_and_remove_a_mint_from_the_mints_screen(daemon) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the mint is down
    app = SovtermApp(daemon.socket_path)
    async with app.run_test(size=(110, 30)) as pilot:
        await until(pilot, lambda: app.session.state.status is not None and app.screen.is_mounted, what="attach")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, MintsScreen) and app.screen.is_mounted, what="screen")
        screen = app.screen
        await until(pilot, lambda: "no trusted mints" in plain(screen.query_one("#mints-title")), what="empty")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddMintScreen), what="the dialog")
        app.screen.query_one(Input).value = url + "/"
        await pilot.click("#mint-save")
        await until(pilot, lambda: app.screen is screen and screen.query_one(DataTable).row_count == 1,
                    timeout=20, what="the mint listed")
        row = screen.query_one(DataTable).get_row_at(0)
        assert row[0] == url and row[1] == "down" and "unreachable" in row[6]
        detail = plain(screen.query_one("#mints-detail"))
        assert "DOWN" in detail and "first check: down" in detail and "trusted by operator" in detail
        assert "1 down" in plain(screen.query_one("#mints-title"))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.screen is screen and screen.query_one(DataTable).row_count == 0, what="gone")
