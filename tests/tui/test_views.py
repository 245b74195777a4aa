"""The pure rules behind the new screens: progress text, payouts, link requests, wizard progress, QR size."""

from __future__ import annotations

from datetime import date, timedelta

from sovterm.tui.qr import qr_lines
from sovterm.tui.views import (
    SyncProgress,
    WizardProgress,
    check_date,
    last_four,
    link_request,
    missing_permissions_text,
    payout_amount,
    payout_row,
    summary_text,
)
from sovterm.tui.widgets import sync_alerts
from tests.tui.fakes import FEEDS, NOW, PAYOUTS


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
    p = WizardProgress(btcpay={"state": "not_configured", "proposed_url": "http://10.21.21.9:3003", "stores": []})
    assert p.resume_step() == "btcpay"
    p.btcpay = {"state": "connected", "url": "u", "setup": {"done": False, "step": "select_stores"}, "stores": []}
    assert p.resume_step() == "stores"
    p.btcpay = {"state": "connected", "url": "u", "setup": {"done": True, "stores": ["S1"]},
                "stores": [{"id": "S1", "name": "Main"}]}
    assert p.resume_step() == "qbo"
    p.qbo = {"connected": True}
    assert p.resume_step() == "mode"
    p.mode_saved = True
    p.mappings = {"S1": False}
    assert p.resume_step() == "accounts"
    p.mappings = {"S1": True}
    assert p.resume_step() == "backfill"
    p.backfill = {"state": "running", "since": "2026-01-01", "done": 1, "total": 3}
    assert p.resume_step() == "summary"
    assert summary_text(p, "deposit").count("✓") == 6


def test_permission_report_names_what_is_missing_and_for_which_feature() -> None:
    text = missing_permissions_text({"url": "https://b", "server_version": "2.1", "key_label": "k",
                                     "features": ["sync", "payouts"], "stores": [
        {"id": "S1", "name": "Main", "ready": True, "missing": []},
        {"id": "S2", "name": "Other", "ready": False, "missing": [
            {"permission": "btcpay.store.canmanagepullpayments", "features": ["payouts"],
             "grant": "btcpay.store.canmanagepullpayments:S2"}]}]})
    assert "Main (S1): all permissions granted" in text
    assert "btcpay.store.canmanagepullpayments:S2  [dim]for payouts" in text


def test_backfill_date_checked() -> None:
    assert check_date("2026-01-01") is None
    assert "YYYY-MM-DD" in (check_date("01/01/2026") or "")
    assert "future" in (check_date((date.today() + timedelta(days=2)).isoformat()) or "")


def test_sync_feed_alerts() -> None:
    texts = [a.text for a in sync_alerts({**FEEDS["sync.status"], "paused": True})]
    assert texts[0].startswith("1 sync job(s) dead-lettered") and "match no QuickBooks invoice" in texts[1]
    assert texts[-1].startswith("sync is paused")
    assert sync_alerts(None) == []


def test_qr_of_a_pay_link_fits_a_small_terminal() -> None:
    lines = qr_lines("https://shop.example.com/pay/" + "x" * 120)
    assert len(lines) <= 25 and all(len(line) == len(lines[0]) <= 60 for line in lines)
