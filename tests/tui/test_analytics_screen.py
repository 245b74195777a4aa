"""The Analytics screen against a real daemon on the simulators: KPI cards from the ledger, the filters,
and an export a bookkeeper can open (CSV and an SVG picture)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from textual.widgets import Input, Select, Static
from textual_plotext import PlotextPlot

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.analytics import AnalyticsScreen
from tests.tui.conftest import FullEnv
from tests.tui.helpers import plain, until


async def test_cards_filters_and_export(full_env: FullEnv, tmp_path: Path) -> None:
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        call = app.session.daemon.call
        await call("setup.btcpay.connect", url=full_env.btcpay.url, api_key=full_env.api_key)
        await call("setup.btcpay.select_stores", store_ids=[full_env.store_id])
        ids = full_env.settled_invoices(["10.00", "15.50"])
        await until(pilot, lambda: len(full_env.sql("SELECT 1 FROM invoices WHERE status = 'Settled'")) == len(ids),
                    timeout=20, what="both invoices in the ledger")

        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AnalyticsScreen) and app.screen.report is not None,
                    timeout=10, what="analytics report")
        screen = app.screen
        assert "25.50 USD" in plain(screen.query_one("#kpi-volume", Static))
        assert "2 of 2 created" in plain(screen.query_one("#kpi-settled", Static))
        assert "12.75 USD" in plain(screen.query_one("#kpi-ticket", Static))
        await until(pilot, lambda: len(screen.query_one("#analytics-store", Select)._options) == 2, what="stores")
        assert screen.query_one("#analytics-series", PlotextPlot).plt is not None

        # a range with nothing in it, then the store picker and months
        screen.query_one("#analytics-from", Input).value = "2020-01-01"
        screen.query_one("#analytics-to", Input).value = "2020-01-31"
        screen.query_one("#analytics-to", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: screen.report and screen.report["to"] == "2020-01-31", what="empty range")
        assert screen.report["kpis"]["created"] == 0 and "0 of 0 created" in plain(screen.query_one("#kpi-settled"))
        screen.query_one("#analytics-from", Input).value = "not a date"
        screen.query_one("#analytics-from", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "'from' must be a date" in plain(screen.query_one("#analytics-note", Static))

        today = screen.query_one("#analytics-to", Input)
        screen.query_one("#analytics-from", Input).value = "2026-06-01"
        today.value = "2027-05-31"
        screen.query_one("#analytics-store", Select).value = full_env.store_id
        screen.query_one("#analytics-by", Select).value = "month"
        await until(pilot, lambda: screen.report and screen.report["by"] == "month"
                    and screen.report["store_id"] == full_env.store_id, what="monthly report for the store")
        assert screen.report["kpis"]["volume"] == "25.50"

        screen.export_dir = tmp_path
        screen.set_focus(None)  # keys typed into a date field are the date's; the export key works elsewhere
        await pilot.press("e")
        await until(pilot, lambda: list(tmp_path.glob("*.svg")), what="export written")
        rows = list(csv.DictReader(io.StringIO(next(tmp_path.glob("*.csv")).read_text())))
        assert rows[-1]["period"] == "total" and rows[-1]["volume_USD"] == "25.50"
        assert "Volume" in next(tmp_path.glob("*.svg")).read_text()
