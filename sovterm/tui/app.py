"""`sovterm tui`: a thin client attached to the running daemon over the control socket.

The app holds no state of its own beyond what the connection reports (`DaemonState`, `LogBuffer`); one worker
runs the connection, its messages update that state, and the screen on top re-renders from it. Screens reach
all of this through the `Session` they are built with, never through this class: this module is the entry
point, and no other module of the TUI imports it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import termios
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ScreenStackError, UnknownModeError
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.worker import Worker, WorkerState

from sovterm.tui.actions import ACTIONS, ACTIONS_BY_NAME, FEEDS, ActionSpec
from sovterm.tui.catalog import SCREENS
from sovterm.tui.commands import SovtermCommands
from sovterm.tui.connection import ActionFailed, Connection
from sovterm.tui.messages import (
    ActionDone,
    Connected,
    DaemonEvent,
    Disconnected,
    EventsMissed,
    FeedUpdated,
    LogLines,
    StatusUpdated,
)
from sovterm.tui.screens.attach import AttachScreen
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.screens.help import HelpScreen
from sovterm.tui.screens.wizard import WizardScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState, LogBuffer

SCREENS_BY_MODE = {spec.mode: spec for spec in SCREENS}
TERMINAL_CHECK_S = 5.0
LIGHT, DARK = "textual-light", "textual-dark"


def terminal_alive(fds: tuple[int, ...] = (0, 1)) -> bool:
    """False once the controlling terminal is gone (SSH dropped): a hung-up tty fails tcgetattr."""
    for fd in fds:
        try:
            if not os.isatty(fd):
                return False
            termios.tcgetattr(fd)
        except (OSError, termios.error):
            return False
    return True


class SovtermApp(App[int]):
    TITLE = "sovterm"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(s.key, f"goto('{s.mode}')", s.title) for s in SCREENS),
        Binding("question_mark", "help", "Help"),
        Binding("f1", "help", "Help", show=False),
        Binding("t", "toggle_theme", "Theme"),
        Binding("q", "quit", "Quit"),
    ]
    COMMANDS = App.COMMANDS | {SovtermCommands}

    def __init__(
        self,
        socket_path: Path,
        *,
        connection_factory: Callable[[Callable[[Message], Any]], Connection] | None = None,
        watch_terminal: bool = False,
        log_buffer_size: int = 10_000,
    ) -> None:
        super().__init__()
        make_connection = connection_factory or (lambda post: Connection(socket_path, post, feeds=FEEDS))
        self.connection = make_connection(self.post_message)
        self.session = Session(
            self.connection, DaemonState(socket_path=str(socket_path)), LogBuffer(log_buffer_size),
            goto=self.action_goto, run_action=self.run_daemon_action, open_setup=self.open_setup,
        )
        self.add_mode("attach", partial(AttachScreen, self.session))
        for spec in SCREENS:
            self.add_mode(spec.mode, partial(spec.screen, self.session))
        self.watch_terminal = watch_terminal
        self._resume_mode = "dashboard"
        self.sub_title = "not attached"

    # ---- lifecycle --------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.theme = DARK
        self.switch_mode("attach")
        self._start_connection()
        if self.watch_terminal:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(sig, self.exit)
            self.set_interval(TERMINAL_CHECK_S, self._check_terminal)

    def _start_connection(self) -> None:
        self.run_worker(self.connection.run(), name="daemon-connection", group="connection", exclusive=True,
                        exit_on_error=False)

    def _check_terminal(self) -> None:
        if not terminal_alive():
            self.exit(1)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug in the connection must not leave a frozen screen: show it and start the connection again."""
        if event.worker.name == "daemon-connection" and event.state is WorkerState.ERROR:
            self.post_message(Disconnected(
                f"the TUI's daemon connection failed: {event.worker.error!r}",
                "this is a bug in sovterm; the connection restarts by itself",
                self.session.state.attempt + 1, 1.0,
            ))
            self.set_timer(1.0, self._start_connection)

    # ---- connection messages ----------------------------------------------------------------------

    def on_connected(self, msg: Connected) -> None:
        st = self.session.state
        st.connected, st.hello, st.caps, st.status = True, msg.hello, msg.caps, msg.status
        st.error = st.fix = None
        st.attempt, st.feeds, st.missed_events = 0, {}, 0
        role = msg.caps.role
        self.sub_title = f"{msg.hello.get('version', '?')} · {msg.caps.user} ({role})" + (
            " · read-only" if role == "viewer" else ""
        )
        if self.current_mode == "attach":
            self.switch_mode(self._resume_mode)
        self._fanout()

    def on_disconnected(self, msg: Disconnected) -> None:
        st = self.session.state
        was_connected = st.connected
        st.connected = False
        st.error, st.fix, st.attempt, st.retry_in = msg.message, msg.fix, msg.attempt, msg.retry_in
        self.sub_title = "not attached"
        if was_connected and self.current_mode != "attach":
            self._resume_mode = self.current_mode
            self.switch_mode("attach")
        self._fanout()

    def on_status_updated(self, msg: StatusUpdated) -> None:
        self.session.state.status = msg.status
        self._fanout()

    def on_feed_updated(self, msg: FeedUpdated) -> None:
        if msg.error is None:
            self.session.state.feeds[msg.method] = msg.result
        else:
            self.session.state.feeds.pop(msg.method, None)
        self._fanout()

    def on_log_lines(self, msg: LogLines) -> None:
        if msg.replace:
            self.session.log_buffer.reset(msg.lines)
        else:
            self.session.log_buffer.extend(msg.lines)

    def on_daemon_event(self, msg: DaemonEvent) -> None:
        screen = self.top_daemon_screen()
        if screen is not None:
            try:
                screen.daemon_event(msg)
            except NoMatches:
                pass  # still composing: it loads what it shows on its mount

    def on_events_missed(self, msg: EventsMissed) -> None:
        self.session.state.missed_events += msg.count
        self._fanout()

    def on_action_done(self, msg: ActionDone) -> None:
        self.notify(msg.text, title=ACTIONS_BY_NAME[msg.name].title, severity=msg.severity)  # type: ignore[arg-type]

    def _fanout(self) -> None:
        """Re-render the screen on top; screens below catch up on resume (a new one on its mount)."""
        screen = self.top_daemon_screen()
        if screen is not None:
            screen.render_state(self.session.state)

    def top_daemon_screen(self) -> DaemonScreen | None:
        """The screen on top if it shows daemon state; None also while the app shuts down (a connection message
        may still arrive after the last screen is gone)."""
        try:
            screen = self.screen
        except (ScreenStackError, UnknownModeError):
            return None
        return screen if isinstance(screen, DaemonScreen) and screen.is_mounted else None

    # ---- actions ----------------------------------------------------------------------------------

    def action_goto(self, mode: str) -> None:
        spec = SCREENS_BY_MODE[mode]
        missing = [m for m in spec.requires if self.session.state.connected and not self.session.state.caps.offers(m)]
        if missing:
            self.notify(f"{spec.title}: this daemon does not offer {', '.join(missing)}", severity="warning")
            return
        if self.current_mode == "attach" and not self.session.state.connected:
            self._resume_mode = mode
        self.switch_mode(mode)

    def run_daemon_action(self, name: str) -> None:
        spec = ACTIONS_BY_NAME[name]
        reason = self.session.daemon.why_not(spec.method)
        if reason is not None:
            self.notify(f"{spec.title} is disabled: {reason}", severity="warning")
            return
        if spec.confirm is None:
            self._start_action(spec)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._start_action(spec)

        self.push_screen(ConfirmScreen(spec.confirm), answered)

    def _start_action(self, spec: ActionSpec) -> None:
        self.run_worker(self._call_action(spec), name=f"action:{spec.name}", group="actions")

    async def _call_action(self, spec: ActionSpec) -> None:
        try:
            result = await self.session.daemon.call(spec.method)
        except ActionFailed as exc:
            self.post_message(ActionDone(spec.name, str(exc), "error"))
            return
        text, severity = spec.describe(result)
        self.post_message(ActionDone(spec.name, text, severity))
        self.connection.refresh_now()

    def open_setup(self, step: str) -> None:
        """The setup wizard at one step (reconnecting BTCPay or QuickBooks after setup)."""
        self.action_goto("setup")
        if self.current_mode == "setup" and isinstance(self.screen, WizardScreen):
            self.screen.open_at(step)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_text()))

    def help_text(self) -> str:
        lines = ["[b]Screens[/]"]
        lines += [f"  [b]{s.key}[/]  {s.title}: {s.help}" for s in SCREENS]
        screen_keys = [b for b in getattr(self.screen, "BINDINGS", []) if isinstance(b, Binding) and b.show]
        if screen_keys:
            lines += ["", "[b]This screen[/]"]
            lines += [f"  [b]{b.key_display or b.key}[/]  {b.description}" for b in screen_keys]
        lines += ["", "[b]Daemon actions[/] (key on the screen named; all in ctrl+p)"]
        for action in ACTIONS:
            reason = self.session.daemon.why_not(action.method)
            suffix = "" if reason is None else f" [dim](disabled: {reason})[/]"
            key = f"{action.key} ({action.screen})" if action.key else "ctrl+p"
            lines.append(f"  [b]{key}[/]  {action.title}: {action.help}{suffix}")
        lines += [
            "", "[b]Everywhere[/]",
            "  [b]ctrl+p[/]  command palette", "  [b]?[/] / [b]f1[/]  this help",
            "  [b]t[/]  light/dark theme", "  [b]tab[/]  next field", "  [b]q[/] / [b]ctrl+q[/]  quit",
        ]
        return "\n".join(lines)

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK


def run_tui(socket_path: Path) -> int:
    """Run the TUI until the operator quits or the terminal goes away; the exit status for the CLI."""
    if not sys.stdout.isatty():
        print("sovterm tui needs a terminal; use `sovterm status` or `sovterm logs` in scripts", file=sys.stderr)
        return 2
    app = SovtermApp(socket_path, watch_terminal=True)
    app.run()
    return int(app.return_code or 0)
