"""Step 4: how payments are booked (deposit mode as a SalesReceipt or a Deposit, or invoicing mode)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, RadioButton, RadioSet, Static

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
        yield Static(id="mode-saved")
        yield Static(id="mode-help")
        with RadioSet(id="deposit-as", classes=ADMIN):
            yield RadioButton("record a deposit-mode payment as a SalesReceipt", id="as-salesreceipt", value=True)
            yield RadioButton("record it as a Deposit", id="as-deposit")
        yield Button("Save mode", id="mode-save", classes=ADMIN, variant="primary")
        yield Static(id="mode-problem", classes="problem")

    def on_mount(self) -> None:
        self.query_one("#mode-help", Static).update(MODE_HELP["deposit"])

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
        invoicing = saved.get("mode") == "invoicing"
        self.query_one("#mode-invoicing" if invoicing else "#mode-deposit", RadioButton).value = True
        self.query_one("#as-deposit" if saved.get("deposit_as") == "deposit" else "#as-salesreceipt",
                       RadioButton).value = True
        self.query_one("#mode-help", Static).update(MODE_HELP["invoicing" if invoicing else "deposit"])
        self.query_one("#deposit-as").display = not invoicing

    @on(RadioSet.Changed, "#mode-set")
    def _mode_changed(self, event: RadioSet.Changed) -> None:
        mode = "invoicing" if event.pressed.id == "mode-invoicing" else "deposit"
        self.query_one("#mode-help", Static).update(MODE_HELP[mode])
        self.query_one("#deposit-as").display = mode == "deposit"

    @on(Button.Pressed, "#mode-save")
    def _save(self) -> None:
        mode = "invoicing" if self.query_one("#mode-invoicing", RadioButton).value else "deposit"
        deposit_as = "deposit" if self.query_one("#as-deposit", RadioButton).value else "salesreceipt"
        self.ask("setup.mode", {"mode": mode, "deposit_as": deposit_as}, self.reload)
