"""Step 7: what is set up; a sandbox company's automatic posting is switched on here, deliberately."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, Static

from sovterm.tui.screens.wizard.step import ADMIN, Step
from sovterm.tui.views import summary_text


class SummaryStep(Step):
    KEY = "summary"

    def compose(self) -> ComposeResult:
        yield Static("[b]7. Summary[/]", classes="intro")
        yield Static(id="summary-text")
        yield Button("Start posting to this sandbox company", id="summary-auto-sync", classes=ADMIN,
                     variant="warning")
        yield Static(id="summary-problem", classes="problem")
        yield Button("Done: go to the dashboard", id="summary-done", variant="success")

    def draw(self) -> None:
        self.query_one("#summary-text", Static).update(summary_text(self.progress))
        q = self.progress.qbo or {}
        # a sandbox company starts with automatic posting off; switching it on is the last, deliberate step
        self.query_one("#summary-auto-sync", Button).display = bool(q.get("connected")) and not q.get("auto_sync")

    @on(Button.Pressed, "#summary-auto-sync")
    def _auto_sync(self) -> None:
        self.ask("qbo.auto_sync", {"enabled": True}, self.reload)

    @on(Button.Pressed, "#summary-done")
    def _done(self) -> None:
        self.session.goto("dashboard")
