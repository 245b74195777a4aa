"""Command palette (Ctrl+P): every screen and daemon action, with the reason when one is disabled."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from sovterm.tui.actions import ACTIONS
from sovterm.tui.catalog import SCREENS

if TYPE_CHECKING:
    from sovterm.tui.app import SovtermApp


class SovtermCommands(Provider):
    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = cast("SovtermApp", self.app)
        entries: list[tuple[str, str, Callable[[], object]]] = [
            (f"Go to {spec.title}", f"key {spec.key} · {spec.help}", partial(app.action_goto, spec.mode))
            for spec in SCREENS
        ]
        for action in ACTIONS:
            reason = app.daemon.why_not(action.method)
            where = f"key {action.key} on {action.screen} · " if action.key else ""
            help_text = f"{where}{action.help}" if reason is None else f"disabled: {reason}"
            entries.append((action.title, help_text, partial(app.run_daemon_action, action.name)))
        for step, side in (("btcpay", "BTCPay"), ("qbo", "QuickBooks")):
            entries.append((f"Reconnect {side}", f"setup wizard, {side} step", partial(app.open_setup, step)))
        entries.append(("Help", "keys of this screen (? or F1)", app.action_help))
        entries.append(("Toggle light/dark theme", "key t", app.action_toggle_theme))
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
