"""The whole setup wizard against a real daemon on the BTCPay and QuickBooks simulators.

Driven through the widgets as an operator would (fields, buttons, ctrl+n), including refusals shown in
the step and a resume in a second TUI session. (The viewer's read-only view is tested on the fixed daemon:
a real viewer needs another Unix user.)
"""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Button, DataTable, Input, SelectionList, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.wizard import WizardScreen
from tests.tui.conftest import REALM, FullEnv
from tests.tui.helpers import plain, until


def wizard(app: SovtermApp) -> WizardScreen | None:
    screen = app.screen
    return screen if isinstance(screen, WizardScreen) and screen.is_mounted and screen.loaded else None


async def open_wizard(app: SovtermApp, pilot) -> WizardScreen:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
    await pilot.press("w")
    await until(pilot, lambda: wizard(app) is not None, what="wizard with progress")
    screen = wizard(app)
    assert screen is not None
    return screen


def problem(screen: WizardScreen, step: str) -> str:
    return plain(screen.query_one(f"#{step}-problem", Static))


async def press(pilot, screen: WizardScreen, button_id: str) -> None:  # type: ignore[no-untyped-def]
    screen.query_one(f"#{button_id}", Button).press()
    await pilot.pause()


@pytest.mark.slow
async def test_the_whole_wizard_on_the_simulators(full_env: FullEnv) -> None:
    socket = full_env.daemon.socket_path
    # ---- first session: BTCPay and the store, then the operator leaves ----
    app = SovtermApp(socket)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_wizard(app, pilot)
        assert screen.step == "btcpay" and screen.check_action("next", ()) is None  # validates before moving on
        screen.query_one("#btcpay-url", Input).value = full_env.btcpay.url
        screen.query_one("#btcpay-key", Input).value = "not-a-key"
        await press(pilot, screen, "btcpay-connect")
        await until(pilot, lambda: "refused the API key" in problem(screen, "btcpay"), what="inline refusal")
        assert app.screen is screen and screen.step == "btcpay"
        screen.query_one("#btcpay-key", Input).value = full_env.api_key
        await press(pilot, screen, "btcpay-connect")
        await until(pilot, lambda: screen.progress.btcpay_connected, what="BTCPay connected")
        report = plain(screen.query_one("#btcpay-report", Static))
        assert "Corner Coffee" in report and "all permissions granted" in report
        assert screen.query_one("#btcpay-key", Input).value == ""  # the TUI does not keep the key
        await pilot.press("ctrl+n")
        await until(pilot, lambda: screen.step == "stores", what="stores step")
        selection = screen.query_one("#stores-list", SelectionList)
        assert list(selection.selected) == [full_env.store_id]  # the ready store is proposed
        await press(pilot, screen, "stores-select")
        await until(pilot, lambda: screen.progress.stores_selected, timeout=15, what="store followed")

    # ---- second session resumes at QuickBooks ----
    full_env.settled_invoices(["100.00", "42.50"])
    app = SovtermApp(socket)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_wizard(app, pilot)
        assert screen.step == "qbo"
        screen.goto("stores")  # the stores the stored key sees, without pasting the key again
        await until(pilot, lambda: screen.stores_report.result is not None, what="btcpay.stores")
        selection = screen.query_one("#stores-list", SelectionList)
        assert list(selection.selected) == [full_env.store_id] and selection.option_count == 1
        screen.goto("btcpay")
        assert "Corner Coffee" in plain(screen.query_one("#btcpay-report", Static))
        assert screen.query_one("#btcpay-key", Input).value == ""
        screen.goto("qbo")
        screen.query_one("#qbo-redirected", Input).value = "https://example.com/callback?code=x&state=forged"
        await press(pilot, screen, "qbo-complete")
        await until(pilot, lambda: problem(screen, "qbo") not in ("", "asking the daemon…"), what="paste-back refusal")
        assert app.screen is screen and not screen.progress.qbo_connected
        await press(pilot, screen, "qbo-start")
        await until(pilot, lambda: "/connect/oauth2?" in plain(screen.query_one("#qbo-url", Static)), what="auth URL")
        url = next(line for line in plain(screen.query_one("#qbo-url", Static)).splitlines() if "/connect/oauth2?" in line)
        assert "█" in str(screen.query_one("#qbo-qr", Static).content)  # the QR code of the same address
        assert "waiting for QuickBooks" in plain(screen.query_one("#qbo-waiting", Static))
        callback = await asyncio.to_thread(full_env.consent, url)
        status, page = await asyncio.to_thread(full_env.browser_get, callback)  # the browser returns to the daemon
        assert status == 200, page
        await until(pilot, lambda: screen.progress.qbo_connected, timeout=15, what="connected via the callback")
        assert "sandbox" in plain(screen.query_one("#qbo-state", Static))
        await pilot.press("ctrl+n")
        await until(pilot, lambda: screen.step == "mode", what="mode step")
        assert "SalesReceipt 100.00 USD" in plain(screen.query_one("#mode-help", Static))
        await pilot.click("#mode-invoicing")
        await pilot.pause()
        assert "Payment 100.00 USD linked to QuickBooks invoice 1001" in plain(screen.query_one("#mode-help", Static))
        await pilot.click("#mode-deposit")
        await press(pilot, screen, "mode-save")
        await until(pilot, lambda: screen.progress.done("mode"), what="mode saved")
        assert screen.progress.saved_mode == {"mode": "deposit", "deposit_as": "salesreceipt"}  # read back
        assert "saved: deposit" in plain(screen.query_one("#mode-saved", Static))
        assert full_env.sql("SELECT value FROM kv WHERE key = 'sync:mode:default'")[0][0].find('"deposit"') >= 0
        await pilot.press("ctrl+n")
        await until(pilot, lambda: screen.step == "accounts" and screen.query_one("#accounts-table", DataTable).row_count,
                    what="proposed accounts")
        screen.query_one("#accounts-class", Input).value = "Nowhere"  # checked like an account: refused
        await press(pilot, screen, "accounts-apply")
        await until(pilot, lambda: "no Class named or numbered 'Nowhere'" in problem(screen, "accounts"),
                    timeout=15, what="unknown class refused")
        screen.query_one("#accounts-class", Input).value = "Online"
        screen.query_one("#accounts-location", Input).value = "Main Street"
        await press(pilot, screen, "accounts-apply")
        await until(pilot, lambda: screen.progress.accounts_done, timeout=15, what="mapping saved")
        assert full_env.sql("SELECT class_id IS NOT NULL, department_id IS NOT NULL FROM qbo_mappings") == [(1, 1)]
        await pilot.press("ctrl+n")
        await until(pilot, lambda: screen.step == "backfill", what="backfill step")
        screen.query_one("#backfill-since", Input).value = "last week"
        await press(pilot, screen, "backfill-start")
        assert "not a date" in problem(screen, "backfill")
        screen.query_one("#backfill-since", Input).value = "2026-01-01"
        await press(pilot, screen, "backfill-start")
        await until(pilot, lambda: screen.progress.backfill_done, what="backfill started")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: screen.step == "summary", what="summary")
        summary = plain(screen.query_one("#summary-text", Static))
        assert summary.count("✓") == 6 and "Corner Coffee" in summary and full_env.btcpay.url in summary
        assert "automatic" in summary  # a sandbox company: nothing is posted until the operator says so
        await press(pilot, screen, "summary-auto-sync")
        await until(pilot, lambda: (screen.progress.qbo or {}).get("auto_sync"), what="auto sync on")
        assert not screen.query_one("#summary-auto-sync", Button).display
        # the settled invoices reach QuickBooks (live queue or backfill, each once)
        await until(pilot, lambda: len(full_env.qbo.documents(REALM, "SalesReceipt")) == 2,
                    timeout=20, what="two sales receipts in QuickBooks")

