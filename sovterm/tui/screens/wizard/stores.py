"""Step 2: choose the stores whose payments go to QuickBooks, from those the stored key sees."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, SelectionList, Static

from sovterm.tui.screens.wizard.step import ADMIN, Step, StoresReport
from sovterm.tui.session import Session
from sovterm.tui.text import escape


class StoresStep(Step):
    KEY = "stores"

    def __init__(self, session: Session, report: StoresReport) -> None:
        super().__init__(session)
        self.report = report

    def compose(self) -> ComposeResult:
        yield Static("[b]2. Stores[/]\nChoose the stores whose payments go to QuickBooks. sovterm "
                     "registers its webhook at each.", classes="intro")
        yield SelectionList[str](id="stores-list", classes=ADMIN)
        yield Static(id="stores-hint", classes="hint")
        yield Button("Follow the selected stores", id="stores-select", classes=ADMIN, variant="primary")
        yield Static(id="stores-problem", classes="problem")

    def draw(self) -> None:
        selection = self.query_one("#stores-list", SelectionList)
        report = self.report.result or {}
        followed = set(self.progress.followed) | set(report.get("selected") or [])
        visible = report.get("stores")
        hint = self.query_one("#stores-hint", Static)
        if visible is None:
            visible = [{**s, "ready": True} for s in self.progress.stores]
            if not self.progress.btcpay_connected:
                hint.update("connect on the BTCPay step first")
            elif self.report.problem is not None:
                hint.update(f"[$error]cannot list the stores:[/] {escape(self.report.problem)} (open this step "
                            "again to retry)")
            else:
                hint.update("[dim]asking BTCPay which stores the key can see…[/]")
        else:
            blocked = [s for s in visible if not s.get("ready")]
            hint.update(f"{len(blocked)} store(s) cannot be chosen: the key lacks permissions (see the BTCPay "
                        "step)" if blocked else "")
        chosen = set(selection.selected) or followed or {str(s["id"]) for s in visible if s.get("ready")}
        selection.clear_options()
        selection.add_options([
            (f"{s.get('name')} ({s.get('id')})" + ("" if s.get("ready") else " — missing permissions"),
             str(s.get("id")), str(s.get("id")) in chosen and bool(s.get("ready")))
            for s in visible
        ])
        for index, s in enumerate(visible):
            if not s.get("ready"):
                selection.disable_option_at_index(index)

    @on(Button.Pressed, "#stores-select")
    def _select(self) -> None:
        ids = list(self.query_one("#stores-list", SelectionList).selected)
        if not ids:
            self.problem("select at least one store (space toggles)")
            return

        def done(result: dict[str, Any]) -> None:
            if self.report.result is not None:
                self.report.result["selected"] = list(ids)
            self.reload()

        self.ask("setup.btcpay.select_stores", {"store_ids": ids}, done)
