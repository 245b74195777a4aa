"""The webhook deliveries screen against a real daemon on the BTCPay simulator: outcomes listed, and a
redelivery asked for through the yes/no question (No by default) arrives deduplicated."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.deliveries import DeliveriesScreen
from tests.tui.conftest import FullEnv
from tests.tui.helpers import plain, until


async def test_outcomes_and_redeliver(full_env: FullEnv) -> None:
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(130, 30)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        call = app.session.daemon.call
        await call("setup.btcpay.connect", url=full_env.btcpay.url, api_key=full_env.api_key)
        await call("setup.btcpay.select_stores", store_ids=[full_env.store_id])
        full_env.settled_invoices(["8.00"])
        full_env.btcpay.wait_deliveries_idle()

        await pilot.press("W")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen) and app.screen.rows, timeout=10,
                    what="deliveries listed")
        screen = app.screen
        assert {d["outcome"] for d in screen.rows} == {"verified"}
        before = len(screen.rows)
        assert f"{before} verified" in plain(screen.query_one("#deliveries-title", Static))

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("enter")  # the default answer is No: nothing is sent (the count below proves it)
        await pilot.pause()
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question again")
        await pilot.press("y")
        full_env.btcpay.wait_deliveries_idle()
        await until(pilot, lambda: len(screen.rows) == before + 1 and screen.rows[0]["outcome"] == "deduplicated",
                    timeout=10, what="the redelivery, deduplicated")
        assert screen.query_one(DataTable).row_count == before + 1
