"""The systemd notify protocol without libsystemd: one datagram of KEY=VALUE lines to $NOTIFY_SOCKET.

Outside systemd (Docker, StartOS, a terminal) NOTIFY_SOCKET is unset and every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str]) -> None:
        addr = environ.get("NOTIFY_SOCKET", "")
        self._addr = ("\0" + addr[1:]) if addr.startswith("@") else addr
        usec = environ.get("WATCHDOG_USEC", "")
        wd_pid = environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not wd_pid or wd_pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 2_000_000 if enabled else None

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def send(self, **fields: str) -> None:
        if not self._addr:
            return
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto(payload.encode(), self._addr)
            except OSError:
                pass  # systemd went away; nothing to tell

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def watchdog(self) -> None:
        self.send(watchdog="1")

    def reloading(self) -> None:
        self.send(reloading="1")

    def stopping(self) -> None:
        self.send(stopping="1", status="stopping")
