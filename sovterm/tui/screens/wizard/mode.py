"""Step 4: how payments are booked (deposit mode as a SalesReceipt or a Deposit, invoicing mode, or daily
summary mode from a cut-over day in the store's time zone)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, RadioButton, RadioSet, Static

from sovterm.tui.screens.wizard.step import ADMIN, Step
from sovterm.tui.session import Session
from sovterm.tui.text import escape
from sovterm.tui.views import MODE_HELP, WizardProgress, mode_text


class ModeStep(Step):
    KEY = "mode"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.shown_mode: dict[str, Any] | None = None  # the saved mode last put into the radio buttons

    def compose(self) -> ComposeResult:
        yield Static("[b]4. How payments are booked[/]", classes="intro")
        with RadioSet(id="mode-set", classes=ADMIN):
            yield RadioButton("Deposit mode: each payment is a sale", id="mode-deposit", value=True)
            yield RadioButton("Invoicing mode: payments settle QuickBooks invoices", id="mode-invoicing")
            yield RadioButton("Daily summary mode: one document per day", id="mode-summary")
        yield Static(id="mode-saved")
        yield Static(id="mode-help")
        with RadioSet(id="deposit-as", classes=ADMIN):
            yield RadioButton("record a deposit-mode payment as a SalesReceipt", id="as-salesreceipt", value=True)
            yield RadioButton("record it as a Deposit", id="as-deposit")
        with Horizontal(id="summary-settings", classes="row"):
            yield Input(placeholder="first day YYYY-MM-DD (default today)", id="summary-from", classes=ADMIN)
            yield Input(placeholder="time zone, e.g. Europe/Berlin (default UTC)", id="summary-timezone",
                        classes=ADMIN)
        yield Button("Save mode", id="mode-save", classes=ADMIN, variant="primary")
        yield Static(id="mode-problem", classes="problem")

    def on_mount(self) -> None:
        self._show("deposit")

    def _show(self, mode: str) -> None:
        """The chosen mode's example, and the settings that belong to it."""
        self.query_one("#mode-help", Static).update(MODE_HELP[mode])
        self.query_one("#deposit-as").display = mode == "deposit"
        self.query_one("#summary-settings").display = mode == "summary"

    def draw(self) -> None:
        saved = self.progress.saved_mode
        self.query_one("#mode-saved", Static).update(
            f"[$success]saved:[/] {escape(mode_text(saved))}" if saved
            else "[dim]not saved yet: deposit mode is proposed[/]")

    def show_saved(self, progress: WizardProgress) -> None:
        """Put the saved mode into the radio buttons, once per change at the daemon (a choice the operator is
        making is not overwritten by a reload)."""
        saved = progress.saved_mode
        if saved is None or saved == self.shown_mode:
            return
        self.shown_mode = saved
        mode = saved.get("mode") if saved.get("mode") in MODE_HELP else "deposit"
        self.query_one(f"#mode-{mode}", RadioButton).value = True
        self.query_one("#as-deposit" if saved.get("deposit_as") == "deposit" else "#as-salesreceipt",
                       RadioButton).value = True
        if mode == "summary":
            self.query_one("#summary-from", Input).value = str(saved.get("summary_from") or "")
            self.query_one("#summary-timezone", Input).value = str(saved.get("timezone") or "")
        self._show(mode)

    def _chosen(self) -> str:
        return next(m for m in MODE_HELP if self.query_one(f"#mode-{m}", RadioButton).value)

    @on(RadioSet.Changed, "#mode-set")
    def _mode_changed(self, event: RadioSet.Changed) -> None:
        self._show(str(event.pressed.id).removeprefix("mode-"))

    @on(Button.Pressed, "#mode-save")
    def _save(self) -> None:
        mode = self._chosen()
        deposit_as = "deposit" if self.query_one("#as-deposit", RadioButton).value else "salesreceipt"
        params: dict[str, Any] = {"mode": mode, "deposit_as": deposit_as}
        if mode == "summary":  # empty fields: the daemon's defaults (today, the zone set before or UTC)
            params["summary_from"] = self.query_one("#summary-from", Input).value.strip() or None
            params["timezone"] = self.query_one("#summary-timezone", Input).value.strip() or None
        self.ask("setup.mode", params, self.reload)
