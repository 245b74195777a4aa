"""What a control client can see go wrong: the daemon out of reach, or a call it refused.

Shared by the asyncio client (TUI) and the blocking one (CLI) so both fail with the same messages;
the standard library and `sovterm.errors` only.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from sovterm.errors import UserFacingError


class DaemonUnavailable(UserFacingError):
    """The daemon cannot be reached; the message says why and how to fix it."""

    code = "daemon_unavailable"


class CallFailed(Exception):
    """The daemon answered with an error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def explain_connect_error(path: Path, exc: OSError) -> DaemonUnavailable:
    if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
        return DaemonUnavailable(
            f"the sovterm daemon is not running (no one listens on {path})",
            fix="start it: `systemctl start sovterm` (or `sovterm daemon` in a terminal); "
            "if it runs elsewhere, pass --config or set SOVTERM_CONFIG so the socket path matches",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DaemonUnavailable(
            f"permission denied on {path}",
            fix="add your user to the daemon's group and to sovterm-admin or sovterm-viewer "
            "(`sudo usermod -aG sovterm,sovterm-admin $USER`), then log in again",
        )
    return DaemonUnavailable(f"cannot connect to {path}: {exc.strerror}", fix="check the socket path")
