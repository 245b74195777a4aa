"""Analytics: KPI cards, volume over time and the status distribution, for a store and a date range.

Everything comes from one `analytics.report` call (the CLI's `sovterm analytics` makes the same one). The
export key writes the series as CSV and a picture of the screen (SVG) that a bookkeeper can open.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Footer, Header, Input, Select, Static
from textual_plotext import PlotextPlot

from sovterm.formatting import analytics_csv, money_text, percent, sats_text
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape

RELOAD_TOPICS = ("btcpay.invoice", "sync.job")
ALL_STORES = "*"
BUCKETS = (("by day", "day"), ("by week", "week"), ("by month", "month"))


def cards(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(id, title, text) of each KPI card."""
    k, cur = report["kpis"], report["currency"]
    return [
        ("kpi-volume", "Volume", f"[b]{escape(money_text(Decimal(k['volume']), cur))}[/]\n"
                                 f"{sats_text(k['volume_sats'])}"),
        ("kpi-settled", "Settled", f"[b]{k['settled']}[/] of {k['created']} created\n"
                                   f"conversion {percent(k['conversion'])}"),
        ("kpi-ticket", "Average ticket", f"[b]{escape(money_text(Decimal(k['average_ticket']), cur))}[/]"),
        ("kpi-problems", "Not paid as asked", f"expired {percent(k['expired_rate'])}\n"
                                              f"partial {percent(k['partial_rate'])} · over {percent(k['overpaid_rate'])}"),
        ("kpi-out", "Refunds · payouts", f"{k['refunds']} refund(s)\n{k['payouts']} payout(s), "
                                         f"{sats_text(k['paid_out_sats'])}"),
    ]


class AnalyticsScreen(DaemonScreen):
    CSS_PATH = "analytics.tcss"
    BINDINGS = [
        Binding("e", "export", "Export CSV + SVG"),
        Binding("f", "reload", "Refresh"),
    ]

    def __init__(self, session: Session, *, export_dir: Path | None = None) -> None:
        super().__init__(session)
        self.report: dict[str, Any] | None = None
        self.export_dir = export_dir or Path.cwd()  # where the operator started the TUI

    def compose(self) -> ComposeResult:
        today = date.today()
        yield Header()
        with Horizontal(id="analytics-filters"):
            yield Select([("All stores", ALL_STORES)], value=ALL_STORES, allow_blank=False, id="analytics-store",
                         compact=True)
            yield Input((today - timedelta(days=29)).isoformat(), placeholder="from YYYY-MM-DD",
                        id="analytics-from", compact=True, max_length=10)
            yield Input(today.isoformat(), placeholder="to YYYY-MM-DD", id="analytics-to", compact=True,
                        max_length=10)
            yield Select(BUCKETS, value="day", allow_blank=False, id="analytics-by", compact=True)
        with Grid(id="analytics-cards"):
            for ident, title, _ in cards(EMPTY):
                card = Static(id=ident, classes="card")
                card.border_title = title
                yield card
        with Horizontal(id="analytics-charts"):
            yield PlotextPlot(id="analytics-series")
            yield PlotextPlot(id="analytics-statuses")
        yield Static(id="analytics-note")
        yield Footer()

    def on_mount(self) -> None:
        if self.may("analytics.stores") is None:
            self.call("analytics.stores", done=self._stores)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.action_reload()

    def show_state(self, state: DaemonState) -> None:
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith(RELOAD_TOPICS):
            self.action_reload()

    def _stores(self, stores: list[dict[str, Any]]) -> None:
        choices = [("All stores", ALL_STORES)] + [(s["name"] or s["store_id"], s["store_id"]) for s in stores]
        self.query_one("#analytics-store", Select).set_options(choices)

    def params(self) -> dict[str, Any] | str:
        """The report's parameters from the filters, or what is wrong with them."""
        out: dict[str, Any] = {"by": self.query_one("#analytics-by", Select).value}
        store = self.query_one("#analytics-store", Select).value
        if store not in (ALL_STORES, Select.BLANK):
            out["store_id"] = store
        for key in ("from", "to"):
            text = self.query_one(f"#analytics-{key}", Input).value.strip()
            try:
                out[key] = date.fromisoformat(text).isoformat()
            except ValueError:
                return f"'{key}' must be a date like {date.today().isoformat()}"
        return out

    @on(Select.Changed)
    @on(Input.Submitted)
    def _filters_changed(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        params = self.params()
        if isinstance(params, str):
            self.query_one("#analytics-note", Static).update(f"[$error]{escape(params)}[/]")
            return
        if self.may("analytics.report") is None:
            self.call("analytics.report", params, done=self.show_report, failed=self._failed, exclusive=True)

    def _failed(self, message: str) -> None:
        self.query_one("#analytics-note", Static).update(f"[$error]{escape(message)}[/]")

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        for ident, _, text in cards(report):
            self.query_one(f"#{ident}", Static).update(text)
        series = report["series"]
        plot = self.query_one("#analytics-series", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        labels = [b["period"][5:] if report["by"] == "day" else b["period"] for b in series]
        cents = [int(Decimal(b["volume"]) * 100) for b in series]  # plotext draws numbers; money stays exact
        plt.bar(labels, cents)
        top = max(cents, default=0)
        ticks = [top * n // 4 for n in range(5)] if top else [0]
        plt.yticks(ticks, [f"{Decimal(t) / 100:,.2f}" for t in ticks])
        plt.title(f"Settled volume ({report['currency']}) by {report['by']}")
        plot.refresh()
        dist = self.query_one("#analytics-statuses", PlotextPlot)
        statuses = report["statuses"] or {"none": 0}
        dist.plt.clear_data()
        dist.plt.clear_figure()
        dist.plt.bar(list(statuses), list(statuses.values()), orientation="horizontal")
        dist.plt.title("Invoices by status")
        dist.refresh()
        others = {c: v for c, v in report["kpis"]["volume_by_currency"].items() if c != report["currency"]}
        note = f"{report['from']} to {report['to']} ({escape(report['tz'])})"
        if others:
            note += " · also settled: " + ", ".join(f"{v} {escape(c)}" for c, v in others.items())
        methods = ", ".join(f"{escape(m['method'])} {m['volume']}" for m in report["methods"])
        self.query_one("#analytics-note", Static).update(note + (f" · by method: {methods}" if methods else ""))

    def action_export(self) -> None:
        if self.report is None:
            self.notify("nothing to export yet", severity="warning")
            return
        stem = f"sovterm-analytics-{self.report['from']}-{self.report['to']}"
        csv_path = self.export_dir / f"{stem}.csv"
        csv_path.write_text(analytics_csv(self.report))
        svg = self.app.save_screenshot(filename=f"{stem}.svg", path=str(self.export_dir))
        self.notify(f"wrote {csv_path} and {svg}", title="Analytics export")


EMPTY: dict[str, Any] = {
    "currency": "", "kpis": {"volume": "0", "volume_sats": 0, "settled": 0, "created": 0, "conversion": "0",
                             "average_ticket": "0", "expired_rate": "0", "partial_rate": "0",
                             "overpaid_rate": "0", "refunds": 0, "payouts": 0, "paid_out_sats": 0},
}
