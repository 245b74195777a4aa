"""What a screen may reach of the running TUI, handed to every screen when it is built.

Screens never see the app class (that would be an import circle: the app imports the screens). They get
this session: the daemon (calls checked against the caller's role), what is known about it, the log
buffer, the clock ages are shown against, and the few moves that belong to the app (show another screen,
run a daemon action with its confirmation, open the setup wizard at a step).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sovterm.tui.connection import Connection, Daemon
from sovterm.tui.state import DaemonState, LogBuffer


class Session:
    def __init__(
        self,
        connection: Connection,
        state: DaemonState,
        log_buffer: LogBuffer,
        *,
        goto: Callable[[str], None],
        run_action: Callable[[str], None],
        open_setup: Callable[[str], None],
    ) -> None:
        self._connection = connection
        self.state = state
        self.log_buffer = log_buffer
        self.clock: Callable[[], float] = time.time  # for ages shown on screens; tests pin it
        self.goto = goto  # show the screen of a mode ("dashboard", "sync", ...), refused with the reason
        self.run_action = run_action  # a daemon action of `actions.ACTIONS` by name, asking first if it must
        self.open_setup = open_setup  # the setup wizard at one step ("btcpay", "qbo")

    @property
    def daemon(self) -> Daemon:
        return self._connection.daemon

    def refresh_now(self) -> None:
        """Ask the daemon for a fresh `status` (and feeds) after a change a screen made."""
        self._connection.refresh_now()

    def retry_now(self) -> None:
        """Reconnect now instead of waiting out the backoff."""
        self._connection.retry_now()
