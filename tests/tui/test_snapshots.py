"""SVG snapshots of the key screens at 80x24, on the fixed daemon (no pids, clocks or paths that vary).

Update baselines deliberately with `pytest tests/tui/test_snapshots.py --snapshot-update` and review them.
"""

from __future__ import annotations

from textual.pilot import Pilot

from sovterm.tui.screens.attach import AttachScreen
from sovterm.tui.screens.dashboard import DashboardScreen
from tests.tui.fakes import fixed_app
from tests.tui.helpers import until


async def _dashboard_shown(pilot: Pilot) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen) and pilot.app.screen.is_mounted
                and pilot.app.session.state.status is not None, what="dashboard")


async def _attach_failed(pilot: Pilot) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, AttachScreen) and pilot.app.screen.is_mounted
                and pilot.app.session.state.error is not None, what="attach screen")


def test_attach_screen(snap_compare) -> None:
    assert snap_compare(fixed_app(up=False), terminal_size=(80, 24), run_before=_attach_failed)


def test_dashboard_admin_without_sync_data(snap_compare) -> None:
    assert snap_compare(fixed_app(role="admin"), terminal_size=(80, 24), run_before=_dashboard_shown)


def test_dashboard_viewer_with_sync_data(snap_compare) -> None:
    async def shown_with_feeds(pilot: Pilot) -> None:
        await _dashboard_shown(pilot)
        await until(pilot, lambda: len(pilot.app.session.state.feeds) == 2, what="feeds")

    assert snap_compare(fixed_app(role="viewer", feeds=True), terminal_size=(80, 24), run_before=shown_with_feeds)


def _screen_with_rows(key: str, table: str, *, then: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await _dashboard_shown(pilot)
        await pilot.press(key)
        await until(pilot, lambda: app.screen.is_mounted and app.screen.query(table)
                    and app.screen.query_one(table).row_count > 0, what=f"{table} filled")
        if then:
            await pilot.press(*then)
            await pilot.pause(0.2)

    return run_before


def test_sync_screen(snap_compare) -> None:
    assert snap_compare(fixed_app(parts=True), terminal_size=(80, 24),
                        run_before=_screen_with_rows("s", "#recent-table"))


def test_payouts_screen_with_the_approval_dialog(snap_compare) -> None:
    assert snap_compare(fixed_app(parts=True), terminal_size=(80, 24),
                        run_before=_screen_with_rows("p", "#payouts-table", then=("a",)))


def test_pay_links_screen(snap_compare) -> None:
    assert snap_compare(fixed_app(parts=True), terminal_size=(80, 24),
                        run_before=_screen_with_rows("k", "#links-table"))


def test_pay_link_dialog_searching_by_customer(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await _screen_with_rows("k", "#links-table", then=("n",))(pilot)
        dialog = app.screen
        await until(pilot, lambda: dialog.found is not None, what="open invoices")
        dialog.search_delay_s = 0.0
        await pilot.press(*"acme")
        await until(pilot, lambda: dialog.found_for == "acme" and dialog.found is not None, what="search")
        await pilot.press("down", "down")  # the second Acme invoice highlighted

    assert snap_compare(fixed_app(parts=True), terminal_size=(80, 24), run_before=run_before)


def test_wizard_resumed_on_the_stores_step(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await _dashboard_shown(pilot)
        await pilot.press("w")
        await until(pilot, lambda: getattr(app.screen, "loaded", False), what="wizard progress")
        app.screen.goto("stores")
        await until(pilot, lambda: app.screen.stores_report.result is not None, what="btcpay.stores")

    assert snap_compare(fixed_app(parts=True), terminal_size=(80, 24), run_before=run_before)
