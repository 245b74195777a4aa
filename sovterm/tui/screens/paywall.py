"""Paywall: what machines bought over HTTP 402, per resource (each priced path, and the pay links together):
settled sales and totals, challenges, paid requests, refusals; below, the priced paths. Refresh with `f`.
Adding and removing paths is `sovterm paywall add|remove` (the same socket methods)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.session import Session
from sovterm.tui.text import escape


def sales_row(s: dict[str, Any]) -> tuple[str, ...]:
    total = f"{s['total']} {s['currency']}" if s.get("currency") else "-"
    refusals = ", ".join(f"{k} {v}" for k, v in (s.get("refusals") or {}).items())
    return (s["resource"], str(s["sold"]), total, str(s["challenges"]), str(s["paid_requests"]), str(s["refused"]),
            refusals)


def path_row(p: dict[str, Any]) -> tuple[str, ...]:
    return (p["name"], p["path"], p["price"], f"{p['access_s']} s", p["target"], p["source"])


class PaywallScreen(DaemonScreen):
    CSS_PATH = "paywall.tcss"
    BINDINGS = [Binding("f", "refresh", "Refresh")]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.sales: list[dict[str, Any]] = []
        self.paths: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="paywall-title")
        yield DataTable(id="paywall-sales", cursor_type="row", zebra_stripes=True)
        yield Static("[b]Priced paths[/] (sovterm paywall add|remove)", id="paywall-paths-title")
        yield DataTable(id="paywall-paths", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#paywall-sales", DataTable).add_columns(
            "resource", "sold", "total", "challenges", "paid req", "refused", "refusals")
        self.query_one("#paywall-paths", DataTable).add_columns("name", "path", "price", "access", "serves", "from")
        self.reload()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def action_refresh(self) -> None:
        self.reload()

    def reload(self) -> None:
        def sales_done(result: Any) -> None:
            self.sales = list(result or [])
            self.show()

        def paths_done(result: Any) -> None:
            self.paths = list(result or [])
            self.show()

        if self.may("paywall.sales") is None:
            self.call("paywall.sales", done=sales_done)
        if self.may("paywall.list") is None:
            self.call("paywall.list", done=paths_done)

    def show(self) -> None:
        sales = self.query_one("#paywall-sales", DataTable)
        sales.clear()
        for n, s in enumerate(self.sales):
            sales.add_row(*(escape(c) for c in sales_row(s)), key=f"{s['resource']}|{s.get('currency')}|{n}")
        paths = self.query_one("#paywall-paths", DataTable)
        paths.clear()
        for p in self.paths:
            paths.add_row(*(escape(c) for c in path_row(p)), key=p["name"])
        sold = sum(s["sold"] for s in self.sales)
        self.query_one("#paywall-title", Static).update(
            f"[b]{sold}[/] paid access(es) sold over HTTP 402 · {len(self.paths)} priced path(s)")
