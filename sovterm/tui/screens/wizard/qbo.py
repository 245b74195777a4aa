"""Step 3: connect a QuickBooks Online company (Intuit's consent page in a browser, or the address the
browser ended on pasted back when the daemon has no public address)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, Input, Label, Static

from sovterm.qr import text as qr_text
from sovterm.tui.screens.base import call_in_worker
from sovterm.tui.screens.wizard.step import ADMIN, Step
from sovterm.tui.text import escape


class QBOStep(Step):
    KEY = "qbo"

    def compose(self) -> ComposeResult:
        yield Static("[b]3. QuickBooks Online[/]", classes="intro")
        yield Static(id="qbo-state")
        yield Button("Connect a QuickBooks company", id="qbo-start", classes=ADMIN, variant="primary")
        yield Static(id="qbo-problem", classes="problem")
        yield Static(id="qbo-waiting")
        yield Static(id="qbo-url")
        yield Static(id="qbo-qr", markup=False)
        yield Label("No public address? Paste the address your browser ended on:")
        yield Input(placeholder="https://…/oauth/qbo/callback?code=…&state=…&realmId=…",
                    id="qbo-redirected", classes=ADMIN, compact=True)
        yield Button("Complete", id="qbo-complete", classes=ADMIN)
        yield Static(id="qbo-guide", classes="hint")
        yield Button("Disconnect QuickBooks", id="qbo-disconnect", classes=ADMIN, variant="error")

    def draw(self) -> None:
        q = self.progress.qbo or {}
        if q.get("connected"):
            env = " [$warning](sandbox)[/]" if q.get("sandbox") else ""
            text = (f"[$success]connected[/] to {escape(str(q.get('company_name') or q.get('realm_id')))}{env}; "
                    f"tokens {escape(str(q.get('token_state')))}")
            if q.get("days_left") is not None:
                text += f", {q['days_left']} day(s) before reconnecting"
        elif q and not q.get("configured", True):
            text = f"[$warning]not configured[/]: {escape(str(q.get('problem')))}"
        else:
            text = "not connected yet"
        if q.get("connected") and q.get("sync_blocked"):
            text += f"\n[$warning]nothing is posted yet:[/] {escape(str(q['sync_blocked']))}"
        self.query_one("#qbo-state", Static).update(text)
        self.query_one("#qbo-disconnect", Button).display = bool(q.get("connected"))
        self.query_one("#qbo-start", Button).label = ("Connect another company (replaces this one)"
                                                      if q.get("connected") else "Connect a QuickBooks company")

    @on(Button.Pressed, "#qbo-start")
    def _start(self) -> None:
        def started(result: dict[str, Any]) -> None:
            url = str(result.get("authorization_url"))
            env = " (sandbox company)" if result.get("sandbox") else ""
            self.query_one("#qbo-url", Static).update(
                f"Open this address in a browser{env}, sign in and choose the company:\n{escape(url)}")
            self.query_one("#qbo-qr", Static).update(qr_text(url))
            self.query_one("#qbo-guide", Static).update(escape(str(result.get("intuit_app_guide") or "")))
            minutes = int(result.get("expires_in") or 600) // 60
            self.query_one("#qbo-waiting", Static).update(
                f"[b]waiting for QuickBooks to call back[/] (the address works for {minutes} min)…")
            self.wait_for_callback(result)

        self.ask("setup.qbo.start", {}, started)

    def wait_for_callback(self, started: dict[str, Any]) -> None:
        def finished(result: dict[str, Any]) -> None:
            waiting = self.query_one("#qbo-waiting", Static)
            if result.get("connected"):
                waiting.update(f"[$success]connected[/] to company {escape(str(result.get('realm_id')))}")
                self.reload()
            elif result.get("timed_out"):
                waiting.update("[$warning]the address expired without a callback[/]: connect again, or paste the "
                               "address below")

        params = {"timeout_s": float(started.get("expires_in") or 600), "since": started.get("started_at")}
        call_in_worker(self, self.session.daemon, "setup.qbo.wait", params, done=finished, failed=self.problem,
                       group="qbo-wait", exclusive=True)

    @on(Button.Pressed, "#qbo-complete")
    def _complete(self) -> None:
        url = self.query_one("#qbo-redirected", Input).value.strip()
        if not url:
            self.problem("paste the full address the browser showed after you chose the company")
            return

        def done(connected: dict[str, Any]) -> None:
            self.query_one("#qbo-redirected", Input).value = ""
            self.query_one("#qbo-waiting", Static).update(
                f"[$success]connected[/] to company {escape(str(connected.get('realm_id')))}")
            self.reload()

        self.ask("setup.qbo.complete", {"redirected_url": url}, done)

    @on(Button.Pressed, "#qbo-disconnect")
    def _disconnect(self) -> None:
        self.session.run_action("qbo_disconnect")
