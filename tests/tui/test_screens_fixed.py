"""Sync, payouts, pay links, setup and the palette on the fixed daemon: roles, dialogs, progress, calls made."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Button, DataTable, Input, OptionList, RadioButton, SelectionList, Static, TabbedContent

from sovterm.tui.app import SovtermApp
from sovterm.tui.commands import SovtermCommands
from sovterm.tui.connection import ActionFailed
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.help import HelpScreen
from sovterm.tui.screens.links import LinkCreateScreen, LinkShowScreen, LinksScreen
from sovterm.tui.screens.payouts import PayoutDecisionScreen, PayoutsScreen
from sovterm.tui.screens.sync import BookScreen, ResolveScreen, SyncScreen
from sovterm.tui.screens.wizard import WizardScreen
from tests.tui.fakes import DESTINATION, OPEN_INVOICES, fixed_app, search_invoices
from tests.tui.helpers import plain, until


async def goto(app: SovtermApp, pilot, key: str, kind: type) -> object:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, kind) and app.screen.is_mounted, what=kind.__name__)
    await pilot.pause()
    return app.screen


def rows(screen: object, selector: str) -> list[list[str]]:
    table = screen.query_one(selector, DataTable)  # type: ignore[attr-defined]
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


# ---- payouts ----------------------------------------------------------------------------------------------


async def test_approval_dialog_starts_on_reject_and_needs_the_last_four_characters() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "p", PayoutsScreen)
        await until(pilot, lambda: rows(screen, "#payouts-table"), what="payouts listed")
        table = rows(screen, "#payouts-table")
        assert len(table) == 2 and table[1][-1] == "2nd needed (bob ok)"  # four eyes: bob approved first
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, PayoutDecisionScreen), what="dialog")
        dialog = app.screen
        facts = plain(dialog.query_one("#payout-facts", Static))
        assert "0.0025 BTC (250,000 sats)" in facts and "Refund #1042" in facts
        assert plain(dialog.query_one("#payout-destination", Static)) == DESTINATION
        confirm = dialog.query_one("#payout-confirm", Button)
        assert dialog.focused is dialog.query_one("#payout-reject", Button) and confirm.disabled
        await pilot.press("enter")  # Enter on the initial focus rejects
        await pilot.pause()
        assert not isinstance(app.screen, PayoutDecisionScreen) and not app.connection.client.called("payouts.approve")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, PayoutDecisionScreen), what="dialog again")
        dialog = app.screen
        confirm = dialog.query_one("#payout-confirm", Button)
        dialog.query_one("#payout-last4", Input).focus()
        await pilot.press(*"5mdx")
        assert confirm.disabled  # wrong characters
        await pilot.press("backspace", "q")
        assert not confirm.disabled
        await pilot.press("enter")  # moves to the button; a second Enter confirms
        assert dialog.focused is confirm and isinstance(app.screen, PayoutDecisionScreen)
        await pilot.press("enter")
        await until(pilot, lambda: "audit #42" in plain(screen.query_one("#payouts-result", Static)), what="audit")
        assert app.connection.client.called("payouts.approve") == [{"payout_id": "PAY1aaaaaaaa"}]
        assert "payout PAY1aaaaaaaa: approved" in plain(screen.query_one("#payouts-result", Static))


async def test_cancel_is_asked_the_same_way_and_escape_keeps_the_payout() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "p", PayoutsScreen)
        await until(pilot, lambda: rows(screen, "#payouts-table"), what="payouts listed")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, PayoutDecisionScreen), what="dialog")
        assert app.screen.query_one("#payout-reject", Button).label.plain == "Keep it"
        await pilot.press("escape")
        await pilot.pause()
        assert not app.connection.client.called("payouts.cancel")
        await pilot.press("v")  # every open payout, the approved one too
        await until(pilot, lambda: len(rows(screen, "#payouts-table")) == 3, what="all payouts")
        assert rows(screen, "#payouts-table")[2][1] == "25.00 USD"


async def test_viewer_cannot_open_the_approval_dialog() -> None:
    app = fixed_app(role="viewer", parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "p", PayoutsScreen)
        await until(pilot, lambda: rows(screen, "#payouts-table"), what="payouts listed")
        assert screen.check_action("decide", ("approve",)) is None  # dimmed in the footer
        assert "needs the admin role" in plain(screen.query_one("#payouts-actions", Static))
        await pilot.press("a")
        await pilot.pause()
        screen.action_decide("approve")  # the palette / a direct call refuses too
        await pilot.pause()
        assert isinstance(app.screen, PayoutsScreen)
        assert not app.connection.client.called("payouts.approve")


# ---- sync ---------------------------------------------------------------------------------------------------


async def test_sync_shows_progress_lists_and_retries_a_dead_job() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "s", SyncScreen)
        await until(pilot, lambda: screen.dead and screen.recent, what="lists")
        assert "Backfilling 120 of 480 (25 %)" in plain(screen.query_one("#sync-progress-text", Static))
        app.post_message(DaemonEvent("sync.progress", 0.0, {"done": 240, "total": 480, "rate": 60.0,
                                                           "eta_s": 240.0, "backfill": True}))
        await until(pilot, lambda: "240 of 480" in plain(screen.query_one("#sync-progress-text", Static)),
                    what="live progress")
        assert plain(screen.query_one("#sync-progress-text", Static)) == "Backfilling 240 of 480 (50 %) · 60/min · ETA 4 min"
        assert rows(screen, "#recent-table")[0][2] == "SalesReceipt 1842"
        await pilot.press("2")
        assert "Account is inactive" in rows(screen, "#dead-table")[0][4]
        await pilot.press("r")
        await until(pilot, lambda: app.connection.client.called("sync.retry"), what="retry")
        assert app.connection.client.called("sync.retry") == [{"job_id": 17}]
        await pilot.press("n")
        await until(pilot, lambda: app.connection.client.called("sync.now"), what="sync now")


async def test_resolve_asks_why_before_ignoring() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "s", SyncScreen)
        await until(pilot, lambda: screen.unmatched, what="unmatched")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ResolveScreen), what="resolve dialog")
        dialog = app.screen
        dialog.query_one("#resolve-ignore", Button).press()
        await pilot.pause()
        assert "say why" in plain(dialog.query_one("#resolve-problem", Static))
        dialog.query_one("#resolve-reason", Input).value = "test order"
        dialog.query_one("#resolve-ignore", Button).press()
        await until(pilot, lambda: app.connection.client.called("sync.resolve"), what="resolve call")
        assert app.connection.client.called("sync.resolve") == [{"invoice_id": "INVnope", "ignore": "test order"}]


async def test_a_posting_flagged_for_review_is_listed_and_marked_reviewed() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = await goto(app, pilot, "s", SyncScreen)
        await until(pilot, lambda: screen.review, what="review list")
        await pilot.press("4")
        assert rows(screen, "#review-table")[0][1:] == ["INV3", "SalesReceipt 1844", "110.00 USD",
                                                        "customer overpaid 10.00 USD"]
        assert "To review (1)" in str(screen.query_one(TabbedContent).get_tab("review").label)
        await pilot.press("v")
        await until(pilot, lambda: app.connection.client.called("sync.reviewed"), what="reviewed call")
        assert app.connection.client.called("sync.reviewed") == [{"invoice_id": "INV3"}]


async def test_books_tab_shows_the_wallet_difference_and_books_an_unexplained_transaction() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await goto(app, pilot, "s", SyncScreen)
        await pilot.press("5")
        await until(pilot, lambda: screen.books, what="the books report")
        text = plain(screen.query_one("#books-text", Static))
        assert "BOOKS DIFFER" in text and "ledger 88,570 sats" in text and "(-20,500 sats)" in text
        assert "USD: sales BTCPay 97.50 / QuickBooks 97.50" in text and "EUR: sales BTCPay 80.00" in text
        assert rows(screen, "#books-table") == [["S1", "ab" * 32, "-20,500 sats"]]
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BookScreen), what="book dialog")
        dialog = app.screen
        dialog.query_one("#book-apply", Button).press()
        await pilot.pause()
        assert "type the account" in plain(dialog.query_one("#book-problem", Static))
        dialog.query_one("#book-account", Input).value = "Checking"
        dialog.query_one("#book-apply", Button).press()
        await until(pilot, lambda: app.connection.client.called("reconcile.book"), what="book call")
        assert app.connection.client.called("reconcile.book") == [{"txid": "ab" * 32, "account": "Checking",
                                                             "store_id": "S1"}]


async def test_viewer_sees_sync_but_cannot_act() -> None:
    app = fixed_app(role="viewer", parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "s", SyncScreen)
        await until(pilot, lambda: screen.dead, what="lists")
        for action, params in (("retry", ()), ("resolve", ()), ("reviewed", ()), ("run", ("sync_now",)),
                               ("run", ("sync_pause",))):
            assert screen.check_action(action, params) is None
        await pilot.press("r", "n", "z")
        await pilot.pause()
        assert not [m for m, _ in app.connection.client.calls if m in ("sync.retry", "sync.now", "sync.pause")]
        assert "needs the admin role" in plain(screen.query_one("#sync-actions", Static))


# ---- pay links -------------------------------------------------------------------------------------------


async def test_create_a_fixed_amount_link_and_see_its_qr() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "k", LinksScreen)
        await until(pilot, lambda: rows(screen, "#links-table"), what="links")
        assert [r[2] for r in rows(screen, "#links-table")] == ["active", "paid"]
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, LinkCreateScreen), what="create dialog")
        dialog = app.screen
        await until(pilot, lambda: dialog.query_one("#create-open").display, what="open invoices")
        dialog.query_one("#create-invoice", Input).value = "1002"
        dialog.query_one("#create-amount", Input).value = "25"
        dialog.create()
        assert "not both" in plain(dialog.query_one("#create-problem", Static))
        dialog.query_one("#create-invoice", Input).value = ""
        dialog.query_one("#create-currency", Input).value = "eur"
        dialog.query_one("#create-memo", Input).value = "Gift card"
        dialog.query_one("#create-ok", Button).press()
        await until(pilot, lambda: isinstance(app.screen, LinkShowScreen), what="link shown")
        assert app.connection.client.called("links.create") == [{"amount": "25", "currency": "EUR", "memo": "Gift card"}]
        assert "█" in str(app.screen.query_one("#link-qr", Static).content)


async def test_create_dialog_searches_as_one_types_and_creates_for_the_picked_invoice() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await goto(app, pilot, "k", LinksScreen)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, LinkCreateScreen), what="create dialog")
        dialog = app.screen
        options = dialog.query_one("#create-open", OptionList)
        await until(pilot, lambda: options.display and options.option_count == 3, what="every open invoice")
        dialog.search_delay_s = 60.0  # typing on: each keystroke replaces the pending search
        await pilot.press("a", "c")
        dialog.search_delay_s = 0.0
        await pilot.press("m")
        await until(pilot, lambda: dialog.found_for == "acm" and dialog.found is not None, what="search answered")
        assert app.connection.client.called("qbo.invoices.search") == [{"query": None, "limit": 50},
                                                                 {"query": "acm", "limit": 50}]
        assert options.option_count == 2 and "has link a1b2c3d4e5f60718" in str(options.get_option_at_index(0).prompt)
        assert "2 open invoice(s) matching 'acm'" in plain(dialog.query_one("#create-found", Static))
        await pilot.press("enter")  # the customer has two open invoices: which one?
        assert "pick one in the list" in plain(dialog.query_one("#create-problem", Static))
        assert not app.connection.client.called("links.create")
        await pilot.press("down", "down", "enter")  # into the list, to 1002, pick it
        assert dialog.query_one("#create-invoice", Input).value == "1002"
        assert dialog.focused is dialog.query_one("#create-ok", Button)
        assert "picked invoice 1002 of Acme Ltd" in plain(dialog.query_one("#create-found", Static))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LinkShowScreen), what="link shown")
        assert app.connection.client.called("links.create") == [{"qbo_invoice": "1002"}]


async def test_a_customer_with_one_open_invoice_is_enough_and_an_existing_link_is_named() -> None:
    app = fixed_app(parts=True)
    unnumbered = {**OPEN_INVOICES[1], "id": "140", "doc_number": None, "customer": "Walk-in"}
    app.connection.client.results["qbo.invoices.search"] = lambda query=None, limit=50: (
        ([] if query else [unnumbered]) + search_invoices(query, limit))
    async with app.run_test(size=(80, 24)) as pilot:
        await goto(app, pilot, "k", LinksScreen)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, LinkCreateScreen), what="create dialog")
        dialog = app.screen
        options = dialog.query_one("#create-open", OptionList)
        await until(pilot, lambda: options.option_count == 4, what="every open invoice")
        await pilot.press("down", "enter")  # an invoice without a number cannot be linked by number
        assert "has no number in QuickBooks" in plain(dialog.query_one("#create-problem", Static))
        assert dialog.query_one("#create-invoice", Input).value == "" and dialog.picked is None
        await pilot.press("down", "enter")  # 1001 (soonest due) already has a link
        found = plain(dialog.query_one("#create-found", Static))
        assert "it already has pay link a1b2c3d4e5f60718" in found and "second one" in found
        assert plain(dialog.query_one("#create-problem", Static)) == ""
        dialog.search_delay_s = 0.0
        dialog.query_one("#create-invoice", Input).value = "[co-op]"  # brackets in a name stay text
        await until(pilot, lambda: dialog.found_for == "[co-op]" and dialog.found is not None, what="search")
        assert Content.from_markup(str(options.get_option_at_index(0).prompt)).plain.startswith("1003 Brewers [Co-op]")
        dialog.query_one("#create-invoice", Input).focus()
        await pilot.press("enter")  # one match: that invoice, no need to pick it
        await until(pilot, lambda: isinstance(app.screen, LinkShowScreen), what="link shown")
        assert app.connection.client.called("links.create") == [{"qbo_invoice": "1003"}]


async def test_show_and_expire_a_link_and_viewer_may_only_look() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "k", LinksScreen)
        await until(pilot, lambda: rows(screen, "#links-table"), what="links")
        screen.query_one(DataTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LinkShowScreen), what="link shown")
        assert "shop.example.com/pay/" in plain(app.screen.query_one("#link-url", Static))
        await pilot.press("escape")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await until(pilot, lambda: app.connection.client.called("links.expire"), what="expire")
        assert app.connection.client.called("links.expire") == [{"link_id": "a1b2c3d4e5f60718"}]
    viewer = fixed_app(role="viewer", parts=True)
    async with viewer.run_test(size=(80, 24)) as pilot:
        screen = await goto(viewer, pilot, "k", LinksScreen)
        assert screen.check_action("create", ()) is None and screen.check_action("expire", ()) is None


# ---- setup wizard and the palette ------------------------------------------------------------------------


async def test_wizard_resumes_at_the_first_step_not_done_and_is_read_only_for_viewers() -> None:
    app = fixed_app(role="viewer", parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "w", WizardScreen)
        await until(pilot, lambda: screen.loaded, what="progress")
        assert screen.step == "accounts"  # setup.state: BTCPay, store, QuickBooks and mode done; mapping missing
        assert "read-only" in plain(screen.query_one("#wizard-banner", Static))
        assert all(w.disabled for w in screen.query(".admin"))
        await until(pilot, lambda: screen.query_one("#accounts-table", DataTable).row_count == 1, what="proposal")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: screen.step == "backfill", what="viewer browses on")


async def test_resumed_wizard_shows_the_saved_mode_and_the_stores_the_stored_key_sees() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "w", WizardScreen)
        await until(pilot, lambda: screen.loaded and screen.step == "accounts", what="accounts step")
        assert app.connection.client.called("setup.accounts.propose") == [{"store_id": "S1"}]  # read for the step only
        screen.goto("mode")  # saved as invoicing: chosen, with its example, not the proposed deposit mode
        await pilot.pause()
        assert screen.query_one("#mode-invoicing", RadioButton).value
        assert "saved: invoicing" in plain(screen.query_one("#mode-saved", Static))
        assert "Payment 100.00 USD linked" in plain(screen.query_one("#mode-help", Static))
        assert not screen.query_one("#deposit-as").display
        assert not app.connection.client.called("btcpay.stores")
        results = app.connection.client.results
        stores, results["btcpay.stores"] = results["btcpay.stores"], ActionFailed("cannot reach BTCPay at https://b")
        screen.goto("stores")  # asks BTCPay with the stored key: no key to paste again
        hint = screen.query_one("#stores-hint", Static)
        await until(pilot, lambda: "cannot list the stores: cannot reach BTCPay" in plain(hint), what="failure")
        assert screen.query_one("#stores-list", SelectionList).option_count == 1  # the followed store stays
        results["btcpay.stores"] = stores
        screen.goto("btcpay")  # BTCPay is back: opening the step again retries
        screen.goto("stores")
        await until(pilot, lambda: screen.query_one("#stores-list", SelectionList).option_count == 2, what="stores")
        selection = screen.query_one("#stores-list", SelectionList)
        assert list(selection.selected) == ["S1"]
        assert selection.get_option_at_index(1).disabled  # Side shop: its key lacks a permission
        assert "1 store(s) cannot be chosen" in plain(screen.query_one("#stores-hint", Static))
        screen.goto("btcpay")
        await pilot.pause()
        report = plain(screen.query_one("#btcpay-report", Static))
        assert "Side shop (S2) lacks:" in report and "canmanagepullpayments:S2" in report
        assert len(app.connection.client.called("btcpay.stores")) >= 2 and not app.connection.client.called("setup.btcpay.connect")


async def test_admin_cannot_skip_an_unfinished_step() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "w", WizardScreen)
        await until(pilot, lambda: screen.loaded and screen.step == "accounts", what="accounts step")
        assert screen.check_action("next", ()) is None and screen.query_one("#nav-next", Button).disabled
        await pilot.press("ctrl+n")
        assert screen.step == "accounts"
        await pilot.press("ctrl+g")
        assert screen.step == "mode"


async def test_palette_offers_disconnect_with_a_confirmation_and_reconnect_in_the_wizard() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        hits = {str(h.display): h for h in [hit async for hit in SovtermCommands(app.screen).discover()]}
        assert {"Go to Sync", "Go to Payouts", "Go to Pay links", "Go to Setup", "Disconnect BTCPay",
                "Disconnect QuickBooks", "Reconnect BTCPay", "Reconnect QuickBooks"} <= set(hits)
        hits["Disconnect QuickBooks"].command()
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert not app.connection.client.called("qbo.disconnect")
        hits["Reconnect QuickBooks"].command()
        await until(pilot, lambda: isinstance(app.screen, WizardScreen) and app.screen.loaded, what="wizard")
        await until(pilot, lambda: app.screen.step == "qbo", what="QuickBooks step")


async def test_palette_help_and_theme_and_its_entries_over_a_dialog() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        hits = {str(h.display): h for h in [hit async for hit in SovtermCommands(app.screen).discover()]}
        app.call_later(hits["Toggle light/dark theme"].command)  # as the palette runs a chosen command
        await until(pilot, lambda: app.theme == "textual-light", what="light theme")
        app.call_later(hits["Help"].command)
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        over_help = {str(h.display) for h in [hit async for hit in SovtermCommands(app.screen).discover()]}
        assert set(hits) == over_help  # the palette over a dialog offers the daemon screen's entries


async def test_an_update_reaching_a_screen_still_composing_does_not_crash_the_app() -> None:
    from sovterm.tui.messages import StatusUpdated
    from sovterm.tui.screens.base import DaemonScreen

    class Composing(DaemonScreen):
        def show_state(self, state: object) -> None:
            self.query_one("#not-yet-there")

    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
        app.push_screen(Composing(app.session))
        await pilot.pause()
        app.post_message(StatusUpdated({"ready": True}))
        app.post_message(DaemonEvent("sync.job", 0.0, {}))
        await pilot.pause()
        assert app.is_running and app.session.state.status == {"ready": True}


async def test_disconnect_from_the_wizard_asks_first() -> None:
    app = fixed_app(parts=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await goto(app, pilot, "w", WizardScreen)
        await until(pilot, lambda: screen.loaded, what="progress")
        screen.goto("btcpay")
        await pilot.pause()
        assert "connected to https://btcpay.example.com" in plain(screen.query_one("#btcpay-proposed", Static))
        screen.query_one("#btcpay-disconnect", Button).press()
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.connection.client.called("btcpay.disconnect"), what="disconnect call")


async def test_the_mode_step_saves_daily_summary_mode_with_its_first_day_and_time_zone() -> None:
    """Issue 15, point 1: summary mode in the wizard, as `sovterm setup mode summary --from --timezone`."""
    app = fixed_app(parts=True)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await goto(app, pilot, "w", WizardScreen)
        await until(pilot, lambda: screen.loaded, what="progress")
        screen.goto("mode")
        await pilot.pause()
        assert not screen.query_one("#summary-settings").display  # saved as invoicing: no summary fields
        screen.query_one("#mode-summary", RadioButton).value = True
        await pilot.pause()
        assert screen.query_one("#summary-settings").display and not screen.query_one("#deposit-as").display
        assert "one document per currency and day" in plain(screen.query_one("#mode-help", Static))
        screen.query_one("#summary-from", Input).value = "2026-02-01"
        screen.query_one("#summary-timezone", Input).value = "Europe/Berlin"
        screen.query_one("#mode-save", Button).press()
        await until(pilot, lambda: app.connection.client.called("setup.mode"), what="setup.mode")
        assert app.connection.client.called("setup.mode") == [
            {"mode": "summary", "deposit_as": "salesreceipt", "summary_from": "2026-02-01",
             "timezone": "Europe/Berlin"}]
