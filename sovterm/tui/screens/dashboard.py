"""The operator's overview: readiness, connectors, loops, alerts, sync and volume."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Footer, Header, Static

from sovterm.tui.actions import actions_for
from sovterm.tui.screens.base import DaemonScreen, render_actions
from sovterm.tui.state import DaemonState
from sovterm.tui.widgets import (
    Panel,
    render_alerts,
    render_connectors,
    render_daemon,
    render_loops,
    render_sync,
    render_volume,
)

PANELS = (
    ("Daemon", render_daemon, "daemon"),
    ("Alerts", render_alerts, "alerts"),
    ("Connectors", render_connectors, "connectors"),
    ("Loops", render_loops, "loops"),
    ("Sync", render_sync, "sync"),
    ("Volume (30 d)", render_volume, "volume"),
)


ACTIONS = actions_for("dashboard")


class DashboardScreen(DaemonScreen):
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [Binding(a.key, f"run('{a.name}')", a.title) for a in ACTIONS]

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="dashboard"):
            for title, fn, ident in PANELS:
                yield Panel(title, fn, id=ident)
        yield Static(id="actions")
        yield Footer()

    def on_mount(self) -> None:
        self.show_state(self.session.state)

    def show_state(self, state: DaemonState) -> None:
        for panel in self.query(Panel):
            panel.show(state)
        daemon = self.session.daemon
        self.query_one("#actions", Static).update(
            render_actions(ACTIONS, {a.method: daemon.why_not(a.method) for a in ACTIONS})
        )
        self.refresh_bindings()
