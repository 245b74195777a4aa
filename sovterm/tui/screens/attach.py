"""Shown while the TUI is not attached: what is wrong, how to fix it, and that it keeps retrying."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Header, Static

from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape


def render_attach(state: DaemonState) -> tuple[str, str, str, str]:
    """(title, problem, fix, retry line) for the state; pure so it is tested without a terminal."""
    if state.error is None:
        return ("Connecting to the sovterm daemon…", f"socket {escape(state.socket_path)}", "", "")
    title = "Lost the sovterm daemon" if state.hello else "Not attached to the sovterm daemon"
    fix = f"[b]fix:[/] {escape(state.fix)}" if state.fix else ""
    retry = (
        f"retrying by itself: attempt {state.attempt}, next try in {state.retry_in:.1f} s · "
        "[b]r[/] retry now · [b]q[/] quit"
    )
    return title, escape(state.error), fix, retry


class AttachScreen(DaemonScreen):
    CSS_PATH = "attach.tcss"
    BINDINGS = [Binding("r", "retry", "Retry now")]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="attach-box"):
            yield Static(id="attach-title")
            yield Static(id="attach-message")
            yield Static(id="attach-fix")
            yield Static(id="attach-retry")
        yield Footer()

    def on_mount(self) -> None:
        self.show_state(self.session.state)

    def show_state(self, state: DaemonState) -> None:
        title, message, fix, retry = render_attach(state)
        self.query_one("#attach-title", Static).update(title)
        self.query_one("#attach-message", Static).update(message)
        self.query_one("#attach-fix", Static).update(fix)
        self.query_one("#attach-retry", Static).update(retry)

    def action_retry(self) -> None:
        self.session.retry_now()
