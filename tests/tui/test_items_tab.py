"""The Sync screen's Items tab against a real daemon: an item held by the `hold` policy is listed, and
mapping it in the dialog (`setup.items.map`, as `sovterm setup items map`) releases its posting."""

from __future__ import annotations

from decimal import Decimal

from textual.widgets import Input, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.sync import MapItemScreen, SyncScreen
from tests.tui.conftest import REALM, FullEnv
from tests.tui.helpers import plain, until
from tests.tui.test_screens_e2e import set_up, table_rows


async def test_items_tab_lists_a_held_item_and_maps_it(full_env: FullEnv) -> None:
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(110, 30)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        await set_up(app, full_env)
        await app.session.daemon.call("setup.items.policy", policy="hold")
        state = full_env.btcpay.state
        inv = full_env.btcpay.call(state.create_pos_invoice, full_env.store_id, [("hat-9", "Hat", Decimal("15"), 1)])
        full_env.btcpay.call(state.pay, inv.id, method="BTC-LN")
        await until(pilot, lambda: full_env.sql("SELECT 1 FROM sync_jobs WHERE invoice_id = ? AND state = 'held'",
                                                (inv.id,)), timeout=20, what="posting held")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.is_mounted, what="sync screen")
        sync = app.screen
        await pilot.press("7")
        await until(pilot, lambda: table_rows(sync, "#items-table"), timeout=10, what="items listed")
        assert table_rows(sync, "#items-table") == [["hat-9", "Hat", "NOT MAPPED", "1"]]
        assert "1 posting(s) held" in plain(sync.query_one("#items-text", Static))
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MapItemScreen), what="map dialog")
        app.screen.query_one("#item-qbo", Input).value = "Services"
        app.screen.query_one("#item-apply").press()  # type: ignore[attr-defined]
        await until(pilot, lambda: [d for d in full_env.qbo.documents(REALM, "SalesReceipt")
                                    if inv.id in str(d.get("PrivateNote"))], timeout=20, what="receipt posted")
        await until(pilot, lambda: table_rows(sync, "#items-table")[0][2].startswith("Services"), what="mapped")
