"""Command palette (Ctrl+P): every screen and daemon action, with the reason when one is disabled."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from sovterm.tui.actions import ACTIONS
from sovterm.tui.catalog import SCREENS
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.session import Session


class SovtermCommands(Provider):
    def _session(self) -> Session:
        """The session of the screen the palette was opened on, or of the daemon screen under a dialog."""
        screens = (self.screen, *reversed(self.app.screen_stack))
        return next(screen.session for screen in screens if isinstance(screen, DaemonScreen))

    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        session = self._session()
        entries: list[tuple[str, str, Callable[[], object]]] = [
            (f"Go to {spec.title}", f"key {spec.key} · {spec.help}", partial(session.goto, spec.mode))
            for spec in SCREENS
        ]
        for action in ACTIONS:
            reason = session.daemon.why_not(action.method)
            where = f"key {action.key} on {action.screen} · " if action.key else ""
            help_text = f"{where}{action.help}" if reason is None else f"disabled: {reason}"
            entries.append((action.title, help_text, partial(session.run_action, action.name)))
        for step, side in (("btcpay", "BTCPay"), ("qbo", "QuickBooks")):
            entries.append((f"Reconnect {side}", f"setup wizard, {side} step", partial(session.open_setup, step)))
        entries.append(("Help", "keys of this screen (? or F1)", partial(self.app.run_action, "help")))
        entries.append(("Toggle light/dark theme", "key t", partial(self.app.run_action, "toggle_theme")))
        return entries

    async def discover(self) -> Hits:
        for title, help_text, callback in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
