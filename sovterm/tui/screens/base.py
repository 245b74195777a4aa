"""What every daemon-backed screen shares: it is built with the session (its only way to the daemon, the
state and the app's moves), re-renders from the state when shown or updated, runs the daemon actions bound
on it (disabled with the reason when the role or the daemon does not allow them), and calls the daemon in
workers whose results come back on the UI loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker

from sovterm.tui.actions import ACTIONS_BY_NAME, ActionSpec
from sovterm.tui.connection import ActionFailed, Daemon
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape


def render_actions(specs: tuple[ActionSpec, ...], why_not: dict[str, str | None]) -> str:
    """Action keys; disabled ones dimmed, followed by the reason(s) once."""
    parts, reasons = [], []
    for spec in specs:
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


def call_in_worker(
    node: DOMNode,
    daemon: Daemon,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    done: Callable[[Any], None],
    failed: Callable[[str], None],
    group: str | None = None,
    exclusive: bool = False,
) -> Worker[None]:
    """Call `method` in a worker of `node` (a screen or a dialog); `done(result)` or `failed(message)` run on
    the UI loop, and not at all once `node` is gone (its workers are cancelled with it)."""

    async def run() -> None:
        try:
            result = await daemon.call(method, **(params or {}))
        except ActionFailed as exc:
            if node.is_attached:
                failed(str(exc))
            return
        if node.is_attached:
            done(result)

    return node.run_worker(run, name=f"call:{method}", group=group or method, exclusive=exclusive,
                           exit_on_error=False)


class DaemonScreen(Screen[Any]):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def show_state(self, state: DaemonState) -> None:
        """Render the state; called on every connection change while this screen is on top, and on resume."""

    def daemon_event(self, event: DaemonEvent) -> None:
        """An `event` notification arrived while this screen is on top (sync progress, job done...)."""

    def render_state(self, state: DaemonState) -> None:
        """`show_state`, unless the screen is mounted but still composing (it renders in its on_mount)."""
        try:
            self.show_state(state)
        except NoMatches:
            pass

    def on_screen_resume(self) -> None:
        self.render_state(self.session.state)

    # ---- daemon actions bound as `run('<name>')` --------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run" and parameters:
            spec = ACTIONS_BY_NAME.get(str(parameters[0]))
            if spec is None:
                return False
            return True if self.session.daemon.why_not(spec.method) is None else None
        return True

    def action_run(self, name: str) -> None:
        self.session.run_action(name)

    # ---- calls whose results the screen shows -----------------------------------------------------

    def may(self, method: str) -> str | None:
        """None when this caller may call `method` now, else why not (for disabled controls)."""
        return self.session.daemon.why_not(method)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        done: Callable[[Any], None],
        failed: Callable[[str], None] | None = None,
        group: str | None = None,
        exclusive: bool = False,
    ) -> Worker[None]:
        return call_in_worker(self, self.session.daemon, method, params, done=done,
                              failed=failed or self._notify_failure, group=group, exclusive=exclusive)

    def _notify_failure(self, message: str) -> None:
        self.app.notify(message, severity="error")
