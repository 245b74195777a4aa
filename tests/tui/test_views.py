"""The pure rules behind the new screens: progress text, payouts, link requests, wizard progress, QR size."""

from __future__ import annotations

from datetime import date, timedelta

from textual.content import Content

from sovterm.amounts import sats_to_btc as btc
from sovterm.tui.state import DaemonState
from sovterm.tui.text import ZERO_WIDTH_SPACE, escape
from sovterm.tui.views import (
    SyncProgress,
    WizardProgress,
    books_text,
    check_date,
    invoice_choice,
    invoice_option,
    last_four,
    link_request,
    missing_permissions_text,
    mode_text,
    payout_amount,
    payout_row,
    summary_text,
)
from sovterm.tui.widgets import render_volume
from tests.tui.fakes import (
    BTCPAY_STORES,
    FEEDS,
    NOW,
    OPEN_INVOICES,
    PAYOUTS,
    search_invoices,
)


def test_progress_text_has_counts_rate_and_eta_until_done() -> None:
    p = SyncProgress.from_event({"done": 1200, "total": 4800, "rate": 300.0, "eta_s": 720.0})
    assert p.text() == "Syncing 1,200 of 4,800 (25 %) · 300/min · ETA 12 min"
    assert SyncProgress(10, 10, 5.0, 0.0).text() == "Syncing 10 of 10 (100 %) · 5/min"
    assert SyncProgress.from_backfill({"state": "done", "done": 5, "total": 5}) is None
    assert SyncProgress.from_backfill(FEEDS["sync.status"]["backfill"]).text() == "Backfilling 120 of 480 (25 %)"


def test_payout_amounts_stay_exact_and_destination_tail() -> None:
    assert payout_amount(PAYOUTS[0]) == "0.0025 BTC (250,000 sats)"
    assert payout_amount(PAYOUTS[2]) == "25.00 USD"
    assert last_four(PAYOUTS[0]["destination"]) == "5mdq" and last_four(None) == ""
    row = payout_row(PAYOUTS[1], NOW)
    assert row[1] == "50,000,000 sats" and row[4] == "25 h 0 min" and row[5] == "2nd needed (bob ok)"


def test_link_request_validates_before_asking_the_daemon() -> None:
    assert link_request("1001", "", "", "").params == {"qbo_invoice": "1001"}
    assert link_request(" 12.50 ", "", "", "").params == {"qbo_invoice": "12.50"}
    assert link_request("", "12.50", "usd", " tip ").params == {"amount": "12.50", "currency": "USD", "memo": "tip"}
    assert "not both" in (link_request("1", "2", "USD", "").problem or "")
    assert "currency" in (link_request("", "2", "", "").problem or "")
    assert "not an amount" in (link_request("", "two", "USD", "").problem or "")
    assert "positive" in (link_request("", "-1", "USD", "").problem or "")
    assert "invoice number" in (link_request("", "", "", "").problem or "")


def test_wizard_resumes_at_the_first_step_not_done() -> None:
    p = WizardProgress(setup={"modes": {}})
    assert p.resume_step() == "btcpay"
    p.setup = {"btcpay": {"done": False, "step": "select_stores"}, "modes": {}}
    assert p.resume_step() == "stores"
    p.setup = {"btcpay": {"done": True, "step": "done", "stores": ["S1"]}, "qbo": {"step": "authorising"},
               "modes": {}}
    assert p.resume_step() == "qbo"
    p.setup["qbo"] = {"step": "connected", "realm_id": "R1"}
    assert p.resume_step() == "mode"
    p.setup["modes"] = {"S9": {"mode": "invoicing", "deposit_as": "salesreceipt"}}  # a store's own mode counts
    assert p.resume_step() == "accounts" and p.mappings == {"S1": False}
    p.setup["accounts"] = {"S1": {"realm_id": "R0", "auto": True}}  # saved for another company: not this one's
    assert p.resume_step() == "accounts"
    p.setup["accounts"] = {"S1": {"realm_id": "R1", "auto": True}}
    assert p.resume_step() == "backfill"
    p.setup["backfill_since"] = "2026-01-01"
    assert p.resume_step() == "summary"
    p.btcpay = {"url": "https://b", "stores": [{"id": "S1", "name": "Main"}]}
    summary = summary_text(p)
    assert summary.count("✓") == 6 and "Main (S1)" in summary and "mode: invoicing" in summary
    assert "from 2026-01-01, not started yet" in summary
    p.backfill = {"state": "done", "since": "2026-01-01", "done": 44, "total": 57, "waiting": 13}
    assert "done since 2026-01-01 (44 of 57), 13 waiting for BTCPay to confirm a payment" in summary_text(p)
    p.setup["qbo"] = {"step": "disconnected", "realm_id": "R1"}  # reconnecting starts again at QuickBooks
    assert p.resume_step() == "qbo" and not p.accounts_done


def test_saved_mode_prefers_the_default_and_names_how_deposits_are_recorded() -> None:
    p = WizardProgress(setup={"modes": {"S1": {"mode": "invoicing"},
                                        "default": {"mode": "deposit", "deposit_as": "deposit"}}})
    assert p.saved_mode == {"mode": "deposit", "deposit_as": "deposit"}
    assert mode_text(p.saved_mode) == "deposit (payments recorded as a Deposit)"
    assert mode_text({"mode": "invoicing", "deposit_as": "salesreceipt"}) == "invoicing"
    assert mode_text(None) == "not saved yet" and WizardProgress().saved_mode is None


def test_invoice_field_resolves_a_customer_search_to_one_invoice_or_says_why_not() -> None:
    both_acme = search_invoices("acme")
    assert invoice_choice("1002", search_invoices("1002"), complete=True) is None  # a number: sent as typed
    assert invoice_choice("brewers", search_invoices("brewers"), complete=True).params == {"qbo_invoice": "1003"}
    assert "2 open invoices match 'acme'" in (invoice_choice("acme", both_acme, complete=True).problem or "")
    assert invoice_choice("acme", both_acme, complete=False) is None  # cut at the limit: let the daemon decide
    assert "no open QuickBooks invoice" in (invoice_choice("zzz", [], complete=True).problem or "")
    assert invoice_choice("acme", None, complete=True) is None  # still searching
    assert invoice_option(OPEN_INVOICES[2]) == "[b]1003[/] Brewers \\[Co-op] · 150.00 USD · due 2026-07-20"
    assert "has link a1b2c3d4e5f60718" in invoice_option(OPEN_INVOICES[0])


def test_btc_totals_are_exact_and_shown_only_when_the_daemon_reports_them() -> None:
    assert btc(201_250) == "0.00201250" and btc(2_100_000_000_000_000) == "21000000.00000000"
    assert btc(-1) == "-0.00000001" and btc(0) == "0.00000000"
    state = DaemonState(connected=True, feeds={"sync.totals": FEEDS["sync.totals"]})
    lines = render_volume(state).splitlines()
    assert lines[0] == "today 120.50 USD · 0.00201250 BTC"
    assert lines[2] == "7 d 0.03850000 · 30 d 0.15201250 BTC"
    plain = {k: v for k, v in FEEDS["sync.totals"].items() if not k.startswith("sats_")}
    without = render_volume(DaemonState(connected=True, feeds={"sync.totals": plain}))
    assert "BTC" not in without and without.splitlines()[0] == "today 120.50 USD"
    odd = render_volume(DaemonState(connected=True, feeds={"sync.totals": {**plain, "sats_today": 1.5,
                                                                         "sats_d30": True}}))
    assert "BTC" not in odd  # only integer satoshis are money here


def test_permission_report_names_what_is_missing_and_for_which_feature() -> None:
    text = missing_permissions_text({"url": "https://b", "server_version": "2.1", "key_label": "k",
                                     "features": ["sync", "payouts"], "stores": [
        {"id": "S1", "name": "Main", "ready": True, "missing": []},
        {"id": "S2", "name": "Other", "ready": False, "missing": [
            {"permission": "btcpay.store.canmanagepullpayments", "features": ["payouts"],
             "grant": "btcpay.store.canmanagepullpayments:S2"}]}]})
    assert "Main (S1): all permissions granted" in text
    assert "btcpay.store.canmanagepullpayments:S2  [dim]for payouts" in text
    own = missing_permissions_text({"url": "https://b", "features": ["sync"], "stores": [
        {"id": "S3", "name": "Books", "ready": True, "missing": [], "api_key": "own"},
        {"id": "S4", "name": "Toys", "ready": False, "missing": [], "api_key": "own",
         "problem": "its own API key: BTCPay refused GET /api/v1/api-keys/current (401)"}]})
    assert "Books (S3) [dim](its own key)[/]: all permissions granted" in own
    assert "Toys (S4) [dim](its own key)[/]: its own API key: BTCPay refused" in own
    stored = missing_permissions_text(BTCPAY_STORES)  # `btcpay.stores`: the stored key, no version or label
    assert stored.splitlines()[0] == "Connected to BTCPay at https://btcpay.example.com; features: sync, webhooks, payouts"
    assert "Side shop (S2) lacks:" in stored


def test_permission_report_shows_the_pay_link_warnings_of_a_ready_store() -> None:
    text = missing_permissions_text({"url": "https://b", "features": ["sync"], "stores": [
        {"id": "S1", "name": "Main", "ready": True, "missing": [], "warnings": [
            {"permission": "btcpay.store.canmodifyinvoices", "features": ["paylinks"],
             "grant": "btcpay.store.canmodifyinvoices:S1",
             "consequence": "pay links cannot invalidate a superseded checkout"}]}]})
    assert "Main (S1): all permissions granted" in text
    assert ("btcpay.store.canmodifyinvoices:S1  [dim]missing: pay links cannot invalidate a superseded checkout"
            in text)


def test_backfill_date_checked() -> None:
    assert check_date("2026-01-01") is None
    assert "YYYY-MM-DD" in (check_date("01/01/2026") or "")
    assert "future" in (check_date((date.today() + timedelta(days=2)).isoformat()) or "")




def test_daemon_text_is_shown_literally_inside_markup() -> None:
    for text in ["Brewers [Co-op]", "[Main]", "QuickBooks refused [6000]", "a\\[b]", "C:\\", "[b]not bold[/b]"]:
        shown = Content.from_markup(f"[b]{escape(text)}[/] after").plain
        assert shown.replace(ZERO_WIDTH_SPACE, "") == f"{text} after"


def test_books_text_shows_payments_still_confirming_beside_the_ledger() -> None:
    wallet = {"store_id": "S", "ledger": 78_613_854, "confirming": 10_438_524, "wallet": 89_050_968,
              "difference": -1_410, "ok": False, "notes": []}
    text = books_text({"ok": False, "from": "2026-11-03", "to": "2026-12-02", "days": [], "differences": [],
                       "wallets": [wallet]})
    assert "ledger 78,613,854 sats + 10,438,524 sats confirming · wallet 89,050,968 sats" in text
    assert "(-1,410 sats)" in text
