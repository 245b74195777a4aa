"""Rollback from the Sync screen (`sovterm sync rollback`): the operator gives the range, sees the dry
run's list, and must type ROLLBACK before anything is voided. Every default (focus, Enter, Esc) changes
nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

CONFIRM_WORD = "ROLLBACK"


def _month_start(today: date) -> str:
    return today.replace(day=1).isoformat()


class RollbackRangeScreen(ModalScreen[dict[str, Any] | None]):
    """Which documents: the date range (and one store, or every store). Dismisses with the dry run's
    params, or None."""

    CSS_PATH = "rollback.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, today: date) -> None:
        super().__init__()
        self.today = today

    def compose(self) -> ComposeResult:
        with Vertical(id="rollback-range", classes="dialog") as box:
            box.border_title = "Roll back postings"
            yield Static("Every invoice document sovterm posted dated in the range is voided (deleted where "
                         "QuickBooks has no void) and posted again by the next sync. You will see the list first.",
                         id="rollback-explain")
            yield Label("from (YYYY-MM-DD)")
            yield Input(value=_month_start(self.today), id="rollback-from", compact=True)
            yield Label("to (YYYY-MM-DD)")
            yield Input(value=self.today.isoformat(), id="rollback-to", compact=True)
            yield Label("store (empty: every store)")
            yield Input(id="rollback-store", compact=True)
            yield Static(id="rollback-problem", classes="problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="rollback-cancel", variant="primary")
                yield Button("List documents", id="rollback-list")

    def on_mount(self) -> None:
        self.query_one("#rollback-cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "rollback-list":
            self.dismiss(None)
            return
        values = {k: self.query_one(f"#rollback-{k}", Input).value.strip() for k in ("from", "to", "store")}
        try:
            start, end = date.fromisoformat(values["from"]), date.fromisoformat(values["to"])
        except ValueError:
            self.query_one("#rollback-problem", Static).update("dates are YYYY-MM-DD, e.g. 2026-01-31")
            return
        if end < start:
            self.query_one("#rollback-problem", Static).update("the range ends before it starts")
            return
        self.dismiss({"date_from": start.isoformat(), "date_to": end.isoformat(),
                      "store_id": values["store"] or None, "dry_run": True})


def preview_text(preview: dict[str, Any]) -> str:
    """The dry run's list, one document a line."""
    docs = preview.get("documents") or []
    lines = [f"{len(docs)} document(s) dated {preview['date_from']} to {preview['date_to']}"
             + (f", store {preview['store_id']}" if preview.get("store_id") else "") + ":"]
    for d in docs:
        lines.append(f"{d['txn_date']}  {d['invoice_id']}  {d['entity']} {d.get('qbo_id') or '-'}  "
                     f"{d['amount']} {d['currency']}  → {d['action']}")
    if preview.get("unfinished"):
        lines.append(preview["unfinished"])
    if preview.get("busy"):
        lines.append(f"{preview['busy']} document(s) are still being written: wait for the sync first")
    return "\n".join(lines)


class RollbackConfirmScreen(ModalScreen[dict[str, Any] | None]):
    """The list, and the word to type. Dismisses with the real call's params only when the operator typed
    ROLLBACK and pressed Roll back."""

    CSS_PATH = "rollback.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, preview: dict[str, Any]) -> None:
        super().__init__()
        self.preview = preview

    def compose(self) -> ComposeResult:
        with Vertical(id="rollback-confirm", classes="dialog") as box:
            box.border_title = "Confirm the rollback"
            with VerticalScroll(id="rollback-list"):
                yield Static(preview_text(self.preview), id="rollback-docs", markup=False)
            yield Label(f"type {CONFIRM_WORD} to void these documents in QuickBooks")
            yield Input(id="rollback-word", compact=True)
            yield Static(id="rollback-confirm-problem", classes="problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="rollback-no", variant="primary")
                yield Button("Roll back", id="rollback-yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#rollback-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "rollback-yes":
            self.dismiss(None)
            return
        if not self.preview.get("documents"):
            self.query_one("#rollback-confirm-problem", Static).update("nothing to roll back in this range")
            return
        if self.query_one("#rollback-word", Input).value.strip() != CONFIRM_WORD:
            self.query_one("#rollback-confirm-problem", Static).update(f"type {CONFIRM_WORD} exactly to confirm")
            return
        self.dismiss({k: self.preview[k] for k in ("date_from", "date_to", "store_id")} | {"dry_run": False})
