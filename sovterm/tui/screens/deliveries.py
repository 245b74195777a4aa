"""Webhook deliveries: what BTCPay sent to our webhook and what became of each (verified, deduplicated,
refused and why, not delivered), with BTCPay's redeliver behind a yes/no question."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape

RELOAD_TOPICS = ("btcpay.",)
OUTCOME_STYLE = {"verified": "green", "deduplicated": "dim", "refused": "bold red", "not delivered": "yellow"}


def delivery_row(d: dict[str, Any]) -> tuple[Text, ...]:
    """Cells as Rich text (a table cell never interprets markup in what BTCPay or a sender wrote)."""
    when = time.strftime("%m-%d %H:%M:%S", time.localtime(d["at"])) if d.get("at") else "-"
    what = " ".join(x for x in (d.get("event_type"), d.get("invoice_id") or d.get("payout_id")) if x)
    return (Text(when), Text(d["delivery_id"]), Text(d["outcome"], style=OUTCOME_STYLE[d["outcome"]]),
            Text(str(d.get("http_code") or "-")), Text(what or "-"), Text(d["reason"] or ""))


class DeliveriesScreen(DaemonScreen):
    CSS_PATH = "deliveries.tcss"
    BINDINGS = [
        Binding("r", "redeliver", "Redeliver"),
        Binding("f", "reload", "Refresh"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="deliveries-title")
        yield DataTable(id="deliveries-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("when", "delivery", "outcome", "HTTP", "event", "why")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.action_reload()

    def show_state(self, state: DaemonState) -> None:
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith(RELOAD_TOPICS):
            self.action_reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "redeliver":
            return True if self.may("webhooks.redeliver") is None else None
        return super().check_action(action, parameters)

    def action_reload(self) -> None:
        if self.may("webhooks.deliveries") is None:
            self.call("webhooks.deliveries", {"count": 100}, done=self.show_rows, failed=self._failed,
                      exclusive=True)

    def _failed(self, message: str) -> None:
        self.query_one("#deliveries-title", Static).update(f"[$error]{escape(message)}[/]")

    def show_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for d in rows:
            table.add_row(*delivery_row(d), key=d["delivery_id"])
        counts = {o: sum(1 for d in rows if d["outcome"] == o) for o in OUTCOME_STYLE}
        self.query_one("#deliveries-title", Static).update(
            f"BTCPay's latest {len(rows)} deliveries: " + " · ".join(f"{n} {o}" for o, n in counts.items() if n)
            + " — [b]r[/] asks BTCPay to send the selected one again")

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return next((d for d in self.rows if d["delivery_id"] == key.value), None)

    def action_redeliver(self) -> None:
        d = self.selected()
        if d is None:
            self.notify("no delivery selected", severity="information")
            return

        def sent(result: dict[str, Any]) -> None:
            self.notify(f"BTCPay sends it again as {result['new_delivery_id']}", title="Redeliver")
            self.action_reload()

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("webhooks.redeliver", {"delivery_id": d["delivery_id"], "store_id": d["store_id"]},
                          done=sent)

        self.app.push_screen(ConfirmScreen(f"Ask BTCPay to send delivery {d['delivery_id']} "
                                           f"({d['outcome']}) again?"), answered)
