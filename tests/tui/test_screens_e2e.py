"""The sync, payouts and pay-links screens against a real daemon on the BTCPay and QuickBooks simulators."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from textual.widgets import Button, DataTable, Input, OptionList, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.links import LinkCreateScreen, LinkShowScreen, LinksScreen
from sovterm.tui.screens.payouts import PayoutDecisionScreen, PayoutsScreen
from sovterm.tui.screens.sync import ResolveScreen, SyncScreen
from tests.tui.conftest import REALM, FullEnv
from tests.tui.helpers import plain, until


async def set_up(app: SovtermApp, env: FullEnv) -> None:
    """Everything the wizard does (tested on its own), through the same daemon facade, to reach the screens."""
    call = app.session.daemon.call
    await call("setup.btcpay.connect", url=env.btcpay.url, api_key=env.api_key)
    await call("setup.btcpay.select_stores", store_ids=[env.store_id])
    started = await call("setup.qbo.start")
    callback = await asyncio.to_thread(env.consent, started["authorization_url"])
    assert (await asyncio.to_thread(env.browser_get, callback))[0] == 200
    await call("setup.accounts.apply", store_id=env.store_id, auto=True)
    await call("qbo.auto_sync", enabled=True)


def table_rows(screen: Any, selector: str) -> list[list[str]]:
    table = screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.slow
async def test_sync_payouts_and_links_screens(full_env: FullEnv) -> None:
    app = SovtermApp(full_env.daemon.socket_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected, what="dashboard")
        await set_up(app, full_env)

        # ---- sync: a posting with its QuickBooks id; an unmatched payment resolved as a deposit ----
        full_env.settled_invoices(["100.00"])
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.is_mounted, what="sync screen")
        sync = app.screen
        await until(pilot, lambda: any("SalesReceipt" in r[2] and "—" not in r[2]
                                       for r in table_rows(sync, "#recent-table")), timeout=20, what="posting")
        receipt = full_env.qbo.documents(REALM, "SalesReceipt")[0]
        assert any(r[2] == f"SalesReceipt {receipt['Id']}" for r in table_rows(sync, "#recent-table"))
        await app.session.daemon.call("setup.mode", mode="invoicing")
        inv = full_env.btcpay.call(full_env.btcpay.state.create_invoice, full_env.store_id,
                                   Decimal("42.00"), "USD", metadata={"orderId": "nope"})
        full_env.btcpay.call(full_env.btcpay.state.pay, inv.id, method="BTC-LN")
        await until(pilot, lambda: sync.unmatched, timeout=20, what="unmatched payment listed")
        await pilot.press("3", "e")
        await until(pilot, lambda: isinstance(app.screen, ResolveScreen), what="resolve dialog")
        assert app.screen.focused is app.screen.query_one("#resolve-cancel", Button)
        app.screen.query_one("#resolve-deposit", Button).press()
        await until(pilot, lambda: len(full_env.qbo.documents(REALM, "SalesReceipt")) == 2, timeout=20,
                    what="resolved as a deposit-mode sale")
        await until(pilot, lambda: not sync.unmatched, what="unmatched list emptied")
        audit = await app.session.daemon.call("audit.list", limit=5)
        assert any(a["action"] == "sync.resolve" and a["subject"] == inv.id for a in audit)

        # ---- payouts: approve through the dialog; the result and the audit entry appear ----
        payout = full_env.payout("0.0025")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PayoutsScreen) and app.screen.is_mounted, what="payouts")
        payouts = app.screen
        await until(pilot, lambda: payouts.payouts, timeout=15, what="payout mirrored")
        assert "250,000 sats" in table_rows(payouts, "#payouts-table")[0]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, PayoutDecisionScreen), what="approval dialog")
        dialog = app.screen
        assert dialog.focused is dialog.query_one("#payout-reject", Button)
        confirm = dialog.query_one("#payout-confirm", Button)
        assert confirm.disabled
        dialog.query_one("#payout-last4", Input).focus()
        await pilot.press(*payout.destination[-4:])  # type: ignore[attr-defined]
        assert not confirm.disabled
        await pilot.click("#payout-confirm")
        await until(pilot, lambda: "approve" in payouts.last_result and "audit #" in
                    plain(payouts.query_one("#payouts-result", Static)), timeout=15, what="result and audit entry")
        shown = plain(payouts.query_one("#payouts-result", Static))
        assert "approved" in shown and f"payout.approve {payout.id} → approved" in shown  # type: ignore[attr-defined]
        assert full_env.btcpay.call(lambda: full_env.btcpay.state.payouts[payout.id].state) == "AwaitingPayment"  # type: ignore[attr-defined]
        await until(pilot, lambda: table_rows(payouts, "#payouts-table") == [], what="no longer awaiting")

        # ---- pay links: find QuickBooks invoice 1001 by its customer, see the link with its QR, expire it ----
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, LinksScreen) and app.screen.is_mounted, what="links")
        links = app.screen
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, LinkCreateScreen), what="create dialog")
        create = app.screen
        options = create.query_one("#create-open", OptionList)
        await until(pilot, lambda: options.option_count == 3, what="the company's open invoices listed")
        create.search_delay_s = 60.0  # no search answers before Enter: the number goes to the daemon as typed
        await pilot.press("9", "9", "9", "9", "enter")  # no such invoice: the daemon's refusal, inline
        await until(pilot, lambda: "no invoice number 9999" in plain(create.query_one("#create-problem", Static)),
                    what="inline refusal")
        create.search_delay_s = 0.0
        create.query_one("#create-invoice", Input).value = "bird"
        await until(pilot, lambda: create.found_for == "bird" and create.found is not None, what="search by customer")
        assert [(i["doc_number"], i["customer"], i["link_id"]) for i in create.found] == [
            ("1001", "Amy's Bird Sanctuary", None)]
        await pilot.press("enter")  # one open invoice of that customer: no need to pick it
        await until(pilot, lambda: isinstance(app.screen, LinkShowScreen), what="the new link")
        shown = app.screen
        url = plain(shown.query_one("#link-url", Static))
        assert url.startswith(full_env.daemon.url + "/pay/")
        assert "█" in str(shown.query_one("#link-qr", Static).content)
        await pilot.press("escape")
        await until(pilot, lambda: [r[2] for r in table_rows(links, "#links-table")] == ["active"], what="listed")
        link_id = table_rows(links, "#links-table")[0][0]
        await pilot.press("n")  # the search now names the invoice's link
        await until(pilot, lambda: isinstance(app.screen, LinkCreateScreen) and app.screen.found, what="dialog")
        assert {i["doc_number"]: i["link_id"] for i in app.screen.found}["1001"] == link_id
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is links, what="back on the links")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="expire confirmation")
        await pilot.press("y")
        await until(pilot, lambda: [r[2] for r in table_rows(links, "#links-table")] == ["expired"], what="expired")
