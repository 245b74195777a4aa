"""Step 1: connect to BTCPay Server with an API key; shows which permissions the key lacks per store."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, Input, Label, Static

from sovterm.tui.screens.wizard.step import ADMIN, Step, StoresReport
from sovterm.tui.session import Session
from sovterm.tui.text import escape
from sovterm.tui.views import missing_permissions_text


class BTCPayStep(Step):
    KEY = "btcpay"

    def __init__(self, session: Session, report: StoresReport) -> None:
        super().__init__(session)
        self.report = report

    def compose(self) -> ComposeResult:
        yield Static("[b]1. BTCPay Server[/]\nIn BTCPay: Account › Manage account › API keys › "
                     "Generate key, for the store(s) to follow. sovterm checks which permissions "
                     "the key has and names any that are missing.", classes="intro")
        yield Label("BTCPay address")
        yield Input(placeholder="https://btcpay.example.com", id="btcpay-url", classes=ADMIN, compact=True)
        yield Static(id="btcpay-proposed", classes="hint")
        yield Label("API key")
        yield Input(password=True, id="btcpay-key", classes=ADMIN, compact=True,
                    placeholder="paste the key (kept encrypted by the daemon)")
        yield Button("Connect", id="btcpay-connect", classes=ADMIN, variant="primary")
        yield Static(id="btcpay-problem", classes="problem")
        yield Static(id="btcpay-report")
        yield Button("Disconnect BTCPay", id="btcpay-disconnect", classes=ADMIN, variant="error")

    def draw(self) -> None:
        b = self.progress.btcpay or {}
        url = self.query_one("#btcpay-url", Input)
        if not url.value:
            url.value = b.get("url") or b.get("proposed_url") or ""
        hint = ""
        if b.get("url"):
            hint = (f"connected to {escape(str(b['url']))} (key '{escape(str(b.get('key_label') or '?'))}', state "
                    f"{escape(str(b.get('state')))}); connect again to change the key or the address")
        elif b.get("proposed_url"):
            hint = f"proposed from {escape(str(b.get('proposed_source') or 'the environment'))}"
        self.query_one("#btcpay-proposed", Static).update(hint)
        self.query_one("#btcpay-disconnect", Button).display = bool(b.get("url"))
        report = self.report.result
        self.query_one("#btcpay-report", Static).update("" if report is None else missing_permissions_text(report))

    @on(Button.Pressed, "#btcpay-connect")
    def _connect(self) -> None:
        url = self.query_one("#btcpay-url", Input).value.strip()
        key = self.query_one("#btcpay-key", Input).value.strip()
        if not url or not key:
            self.problem("give the BTCPay address and an API key")
            return

        def done(report: dict[str, Any]) -> None:
            self.report.result, self.report.problem = report, None
            self.query_one("#btcpay-key", Input).value = ""  # the daemon keeps it encrypted; the TUI forgets it
            self.reload()

        self.ask("setup.btcpay.connect", {"url": url, "api_key": key}, done)

    @on(Button.Pressed, "#btcpay-disconnect")
    def _disconnect(self) -> None:
        self.session.run_action("btcpay_disconnect")  # asks first; progress reloads on the connector event
