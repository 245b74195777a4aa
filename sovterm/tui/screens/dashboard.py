"""The operator's overview: readiness, connectors, loops, alerts, sync and volume."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.markup import escape
from textual.widgets import Footer, Header, Static

from sovterm.tui.actions import ACTIONS, ACTIONS_BY_NAME
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.state import LinkState
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


def render_actions(state: LinkState, why_not: dict[str, str | None]) -> str:
    """Action keys; disabled ones dimmed, followed by the reason(s) once."""
    parts, reasons = [], []
    for spec in ACTIONS:
        reason = why_not.get(spec.method)
        if reason is None:
            parts.append(f"[b]{spec.key}[/] {spec.title}")
        else:
            parts.append(f"[dim]{spec.key} {spec.title}[/]")
            if reason not in reasons:
                reasons.append(reason)
    line = " · ".join(parts)
    if reasons:
        line += f" — disabled: {escape('; '.join(reasons))}"
    return line


class DashboardScreen(DaemonScreen):
    BINDINGS = [Binding(a.key, f"run('{a.name}')", a.title) for a in ACTIONS]

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="dashboard"):
            for title, fn, ident in PANELS:
                yield Panel(title, fn, id=ident)
        yield Static(id="actions")
        yield Footer()

    def on_mount(self) -> None:
        self.show_state(self.sovterm.state)

    def show_state(self, state: LinkState) -> None:
        for panel in self.query(Panel):
            panel.show(state)
        daemon = self.sovterm.daemon
        self.query_one("#actions", Static).update(
            render_actions(state, {a.method: daemon.why_not(a.method) for a in ACTIONS})
        )
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run" and parameters:
            spec = ACTIONS_BY_NAME.get(str(parameters[0]))
            if spec is None:
                return False
            return True if self.sovterm.daemon.why_not(spec.method) is None else None
        return True

    def action_run(self, name: str) -> None:
        self.sovterm.run_daemon_action(name)
