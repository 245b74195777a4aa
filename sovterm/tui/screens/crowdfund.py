"""Crowdfund: the followed stores' BTCPay Crowdfund campaigns, and the selected one's progress, perks and
contributions per day. Re-read whenever an invoice changes, so a contribution shows as it arrives. `b` sets
the income account and class the selected app's contributions are booked to (`sovterm crowdfund books`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, ProgressBar, Static
from textual_plotext import PlotextPlot

from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape

RELOAD_TOPICS = ("btcpay.invoice", "invoice.", "crowdfund.")


def goal_text(c: dict[str, Any]) -> str:
    if c["target_amount"] is None:
        return f"{c['raised']} {c['target_currency']} (no goal)"
    return f"{c['raised']} / {c['target_amount']} {c['target_currency']}"


def detail_text(c: dict[str, Any]) -> str:
    cur = escape(c["target_currency"])
    lines = [
        f"[b]{escape(c['title'])}[/]",
        f"raised [b]{goal_text(c)}[/]" + (f" · {c['percent']} %" if c["percent"] is not None else ""),
        f"pending {c['pending']} {cur} · {c['contributors']} contributor(s)",
        f"runs {escape(c['start_date'] or 'open')} to {escape(c['end_date'] or 'no end')}",
    ]
    if c["reset_every"] != "Never":
        lines.append(f"resets every {escape(c['reset_every'].lower())}, next {escape(c['next_reset'] or '?')}")
    books = c.get("books")
    lines.append("books: " + (f"income {escape(books['income_account'])}" + (
        f", class {escape(books['class'])}" if books.get("class") else "") if books else "the store's mapping"))
    if c.get("perks"):
        lines.append("perks: " + " · ".join(f"{escape(p['title'])} {p['sold']}" for p in c["perks"]))
    return "\n".join(lines)


class BooksScreen(ModalScreen[dict[str, str] | None]):
    """Where one app's contributions are booked: an income account and, optionally, a class (names or ids)."""

    CSS_PATH = "crowdfund.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.app_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="crowdfund-books-box"):
            yield Label(f"Book the contributions to {escape(self.app_title)} (a campaign is not sales)")
            yield Input(id="crowdfund-income", placeholder="QuickBooks income account, e.g. Donations")
            yield Input(id="crowdfund-class", placeholder="QuickBooks class (optional)")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="crowdfund-books-cancel", variant="primary")
                yield Button("Book here", id="crowdfund-books-save", variant="success")

    def on_mount(self) -> None:
        self.query_one("#crowdfund-income", Input).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        income = self.query_one("#crowdfund-income", Input).value.strip()
        class_name = self.query_one("#crowdfund-class", Input).value.strip()
        if event.button.id != "crowdfund-books-save" or not income:
            self.dismiss(None)
            return
        self.dismiss({"income": income} | ({"class_name": class_name} if class_name else {}))


class CrowdfundScreen(DaemonScreen):
    CSS_PATH = "crowdfund.tcss"
    BINDINGS = [Binding("f", "refresh", "Re-read from BTCPay"), Binding("b", "books", "Books")]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.campaigns: list[dict[str, Any]] = []
        self.shown: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="crowdfund-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="crowdfund-detail"):
            with Vertical(id="crowdfund-facts"):
                yield Static(id="crowdfund-text")
                yield ProgressBar(id="crowdfund-progress", total=100, show_eta=False)
            yield PlotextPlot(id="crowdfund-daily")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("campaign", "raised / goal", "%", "pending", "contributors", "ends")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def show_state(self, state: DaemonState) -> None:
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith(RELOAD_TOPICS):
            self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "refresh":
            return True if self.may("crowdfund.refresh") is None else None
        if action == "books":
            return True if self.may("crowdfund.books") is None and self.shown is not None else None
        return super().check_action(action, parameters)

    def reload(self) -> None:
        if self.may("crowdfund.list") is None:
            self.call("crowdfund.list", done=self.show_list, group="crowdfund.list", exclusive=True)

    def show_list(self, campaigns: list[dict[str, Any]]) -> None:
        self.campaigns = campaigns
        table = self.query_one(DataTable)
        selected = self.selected_id()
        table.clear()
        for c in campaigns:
            table.add_row(escape(c["title"]), goal_text(c), c["percent"] or "-", c["pending"], str(c["contributors"]),
                          escape(c["end_date"] or "-"), key=c["app_id"])
        if not campaigns:
            self.query_one("#crowdfund-text", Static).update(
                "No Crowdfund apps in the followed stores. [b]f[/] re-reads them from BTCPay.")
            return
        if selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        self.load_detail(self.selected_id())

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    @on(DataTable.RowHighlighted, "#crowdfund-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.load_detail(event.row_key.value)

    def load_detail(self, app_id: str | None) -> None:
        if app_id is not None and self.may("crowdfund.show") is None:
            self.call("crowdfund.show", {"app_id": app_id}, done=self.show_detail, group="crowdfund.show",
                      exclusive=True)

    def show_detail(self, c: dict[str, Any]) -> None:
        self.shown = c
        self.refresh_bindings()
        self.query_one("#crowdfund-text", Static).update(detail_text(c))
        self.query_one("#crowdfund-progress", ProgressBar).update(
            progress=min(float(c["percent"] or 0), 100.0))  # a bar's length, not money
        plot = self.query_one("#crowdfund-daily", PlotextPlot)
        plot.plt.clear_data()
        plot.plt.clear_figure()
        days = c["daily"][-30:]
        if days:
            plot.plt.bar([d["day"][5:] for d in days], [int(Decimal(d["amount"])) for d in days])
        plot.plt.title(f"Contributions per day ({c['target_currency']})")
        plot.refresh()

    def action_refresh(self) -> None:
        def done(result: dict[str, Any]) -> None:
            self.notify(f"read {result['apps']} app(s); {result['new_invoices']} invoice(s) newly linked",
                        title="Crowdfund")
            self.reload()

        self.call("crowdfund.refresh", done=done)

    def action_books(self) -> None:
        shown = self.shown
        if shown is None:
            return

        def answered(choice: dict[str, str] | None) -> None:
            if choice:
                self.call("crowdfund.books", {"app_id": shown["app_id"], **choice},
                          done=lambda r: self.load_detail(shown["app_id"]))

        self.app.push_screen(BooksScreen(shown["title"]), answered)
