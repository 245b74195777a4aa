"""What every daemon-backed screen shares: it re-renders from the app's state when shown or updated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen

from sovterm.tui.messages import DaemonEvent
from sovterm.tui.state import LinkState

if TYPE_CHECKING:
    from sovterm.tui.app import SovtermApp


class DaemonScreen(Screen[Any]):
    @property
    def sovterm(self) -> SovtermApp:
        return cast("SovtermApp", self.app)

    def show_state(self, state: LinkState) -> None:
        """Render the state; called on every link change while this screen is on top, and on resume."""

    def daemon_event(self, event: DaemonEvent) -> None:
        """An `event` notification arrived while this screen is on top (sync progress, job done...)."""

    def on_screen_resume(self) -> None:
        self.show_state(self.sovterm.state)
