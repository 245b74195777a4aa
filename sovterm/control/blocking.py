"""A blocking client of the control API for the CLI: a plain Unix socket, no event loop.

A CLI command makes a call or two and exits; importing asyncio alone takes longer (about 70 ms) than the
rest of such a command, and an operator over SSH runs these all day. The TUI, which keeps its connection
open beside its screens, uses the asyncio `ControlClient`. Both speak `protocol` and fail with the same
`control.errors`.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sovterm.control import protocol as rpc
from sovterm.control.errors import CallFailed, DaemonUnavailable, explain_connect_error


class BlockingClient:
    """One connection; `call` waits for its own reply, keeping notifications that arrive meanwhile."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lines = sock.makefile("rb")
        self._ids = itertools.count(1)
        self._notes: deque[dict[str, Any]] = deque()
        self.hello: dict[str, Any] = {}

    @classmethod
    def connect(cls, path: Path, *, client: str = "cli", timeout: float = 5.0) -> BlockingClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except TimeoutError:
            sock.close()
            raise DaemonUnavailable(
                f"the daemon at {path} did not answer in {timeout:.0f} s",
                fix="check `systemctl status sovterm` and the daemon log",
            ) from None
        except OSError as exc:
            sock.close()
            raise explain_connect_error(path, exc) from None
        self = cls(sock)
        try:
            self.hello = self.call("hello", client=client, protocol=rpc.PROTOCOL_VERSION)
        except CallFailed as exc:
            self.close()
            raise DaemonUnavailable(exc.message, fix="ask an administrator for access") from None
        except (TimeoutError, DaemonUnavailable) as exc:
            self.close()
            raise DaemonUnavailable(f"the daemon at {path} did not complete the handshake: {exc}") from None
        sock.settimeout(None)  # a call may rightly take long (`setup.qbo.wait`); Ctrl-C interrupts it
        return self

    @property
    def role(self) -> str:
        return str(self.hello.get("role", "none"))

    def call(self, method: str, **params: Any) -> Any:
        req_id = next(self._ids)
        try:
            self._sock.sendall(rpc.request(req_id, method, params))
        except OSError as exc:
            raise DaemonUnavailable(f"lost the connection to the daemon: {exc}") from None
        while True:
            msg = self._receive()
            if msg is None:
                raise DaemonUnavailable("the daemon closed the connection")
            if "method" in msg and "id" not in msg:
                self._notes.append({"method": msg["method"], "params": msg.get("params", {})})
            elif "error" in msg and msg.get("id") in (req_id, None):  # no id: refused at connect
                err = msg["error"]
                raise CallFailed(err.get("code", rpc.INTERNAL_ERROR), err.get("message", ""), err.get("data"))
            elif msg.get("id") == req_id:
                return msg.get("result")

    def notifications(self) -> Iterator[dict[str, Any]]:
        """Server-pushed messages ({"method", "params"}) until the connection closes."""
        while True:
            while self._notes:
                yield self._notes.popleft()
            msg = self._receive()
            if msg is None:
                return
            if "method" in msg and "id" not in msg:
                self._notes.append({"method": msg["method"], "params": msg.get("params", {})})

    def _receive(self) -> dict[str, Any] | None:
        """The next message, or None once the daemon has closed the connection."""
        try:
            line = self._lines.readline(rpc.MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise DaemonUnavailable(f"lost the connection to the daemon: {exc}") from None
        if not line:
            return None
        try:
            msg = json.loads(line)
        except ValueError as exc:
            raise DaemonUnavailable(f"lost the connection to the daemon: {exc}") from None
        if not isinstance(msg, dict):
            raise DaemonUnavailable(f"lost the connection to the daemon: not a JSON-RPC message: {line[:80]!r}")
        return msg

    def close(self) -> None:
        self._lines.close()
        self._sock.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
