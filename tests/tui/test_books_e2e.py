"""The Sync screen's books actions against a real daemon on the simulators: rollback (the range, the dry
run's list, and nothing voided until the operator typed ROLLBACK) and the Holdings tab."""

from __future__ import annotations

from decimal import Decimal

from textual.widgets import Button, DataTable, Input, Static

from sovterm.formatting import holding_cells
from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.rollback import RollbackConfirmScreen, RollbackRangeScreen
from sovterm.tui.screens.sync import SyncScreen
from tests.tui.conftest import REALM, FullEnv
from tests.tui.helpers import plain, until
from tests.tui.test_screens_e2e import set_up


def _receipts(env: FullEnv) -> list[dict]:
    return env.qbo.documents(REALM, "SalesReceipt")


async def test_rollback_needs_the_typed_word_then_voids_and_reposts(full_env: FullEnv) -> None:
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(110, 34)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        await set_up(app, full_env)
        full_env.settled_invoices(["30.00"])
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.is_mounted, what="sync screen")
        await until(pilot, lambda: len(_receipts(full_env)) == 1, timeout=20, what="the receipt posted")
        await until(pilot, lambda: full_env.sql("SELECT status FROM sync_postings") == [("posted",)],
                    timeout=20, what="the posting recorded")

        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, RollbackRangeScreen), what="the range dialog")
        assert app.screen.focused is app.screen.query_one("#rollback-cancel", Button)  # the default does nothing
        app.screen.query_one("#rollback-list", Button).press()
        await until(pilot, lambda: isinstance(app.screen, RollbackConfirmScreen), timeout=10, what="the list")
        confirm = app.screen
        listed = plain(confirm.query_one("#rollback-docs", Static))
        receipt = _receipts(full_env)[0]
        assert "1 document(s)" in listed and f"SalesReceipt {receipt['Id']}" in listed and "void" in listed

        confirm.query_one("#rollback-yes", Button).press()  # nothing typed: refused
        await pilot.pause()
        assert "type ROLLBACK" in plain(confirm.query_one("#rollback-confirm-problem", Static))
        confirm.query_one("#rollback-word", Input).value = "rollback"  # not the word
        confirm.query_one("#rollback-yes", Button).press()
        await pilot.pause()
        assert app.screen is confirm and _receipts(full_env)[0].get("TxnStatus") != "Voided"

        confirm.query_one("#rollback-word", Input).value = "ROLLBACK"
        confirm.query_one("#rollback-yes", Button).press()
        await until(pilot, lambda: isinstance(app.screen, SyncScreen), what="back on the sync screen")

        def reposted() -> bool:
            docs = _receipts(full_env)
            live = [d for d in docs if d.get("TxnStatus") != "Voided"]
            return len(docs) == 2 and len(live) == 1 and Decimal(str(live[0]["TotalAmt"])) == Decimal("30.00")

        await until(pilot, reposted, timeout=20, what="voided and posted again once")
        assert full_env.sql("SELECT state, created_by FROM sync_rollbacks")[0][0] == "done"


async def test_holdings_tab_shows_the_same_table_as_the_cli(full_env: FullEnv) -> None:
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(140, 34)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        await set_up(app, full_env)
        full_env.settled_invoices(["65.00"])  # 100,000 sats at the simulator's 65,000 USD/BTC
        await until(pilot, lambda: full_env.sql("SELECT status FROM sync_postings") == [("posted",)],
                    timeout=20, what="the posting recorded")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.is_mounted, what="sync screen")
        sync = app.screen
        await pilot.press("6")
        await until(pilot, lambda: sync.holdings, timeout=15, what="the holdings")
        table = sync.query_one("#holdings-table", DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        expected = await app.session.daemon.call("books.holdings")
        assert row == list(holding_cells(expected[0]))
        assert row[1] == "100,000 sats" and row[2] == "65.00 USD" and row[4] == "65.00 USD"
        assert "BTCPay store" in plain(sync.query_one("#holdings-text", Static))
