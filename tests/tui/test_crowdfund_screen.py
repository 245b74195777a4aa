"""The Crowdfund screen against a real daemon on the BTCPay simulator: campaigns listed, the selected one's
progress and perks, read as soon as the store is followed, and a contribution shown as it arrives."""

from __future__ import annotations

from decimal import Decimal

from textual.widgets import Button, DataTable, Input, ProgressBar, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.crowdfund import BooksScreen, CrowdfundScreen
from tests.tui.conftest import FullEnv
from tests.tui.helpers import plain, until
from tests.tui.test_screens_e2e import set_up


async def test_campaign_progress_updates_live(full_env: FullEnv) -> None:
    sim = full_env.btcpay
    app_data = sim.call(sim.state.create_crowdfund_app, full_env.store_id, "Roaster fund",
                        target_amount=Decimal("200"), perks=[{"id": "mug", "title": "Mug"}])
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        call = app.session.daemon.call
        await call("setup.btcpay.connect", url=sim.url, api_key=full_env.api_key)
        await call("setup.btcpay.select_stores", store_ids=[full_env.store_id])
        first = sim.call(sim.state.contribute, app_data.id, Decimal("50.00"), perk="mug")
        sim.call(sim.state.pay, first.id, method="BTC-LN")
        await until(pilot, lambda: full_env.sql("SELECT status FROM invoices WHERE invoice_id = ?", (first.id,))
                    == [("Settled",)], timeout=20, what="the contribution in the ledger")

        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CrowdfundScreen) and app.screen.is_mounted, what="screen")
        screen = app.screen
        # read from BTCPay as soon as the store was followed, not at the loop's next turn
        await until(pilot, lambda: screen.shown is not None, timeout=10, what="campaign shown")
        assert screen.query_one(DataTable).row_count == 1
        text = plain(screen.query_one("#crowdfund-text", Static))
        assert "50.00 / 200.00 USD" in text and "25.00 %" in text and "Mug 1" in text
        assert screen.query_one("#crowdfund-progress", ProgressBar).progress == 25

        second = sim.call(sim.state.contribute, app_data.id, Decimal("30.00"))
        sim.call(sim.state.pay, second.id, method="BTC-LN")
        await until(pilot, lambda: screen.shown and screen.shown["raised"] == "80.00", timeout=20,
                    what="the new contribution on screen")
        assert "80.00 / 200.00 USD" in plain(screen.query_one("#crowdfund-text", Static))


async def test_the_books_dialog_gives_an_app_its_own_income_account_and_class(full_env: FullEnv) -> None:
    sim = full_env.btcpay
    app_data = sim.call(sim.state.create_crowdfund_app, full_env.store_id, "School garden",
                        target_amount=Decimal("500"))
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        await set_up(app, full_env)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CrowdfundScreen) and app.screen.shown is not None,
                    timeout=10, what="campaign shown")
        screen = app.screen
        assert "books: the store's mapping" in plain(screen.query_one("#crowdfund-text", Static))
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BooksScreen), what="books dialog")
        app.screen.query_one("#crowdfund-income", Input).value = "Services"
        app.screen.query_one("#crowdfund-books-save", Button).press()
        await until(pilot, lambda: "income Services" in plain(screen.query_one("#crowdfund-text", Static)),
                    timeout=10, what="the app's books on screen")
        assert full_env.sql("SELECT names FROM crowdfund_books WHERE app_id = ?", (app_data.id,))
