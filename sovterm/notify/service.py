"""The notify part's service: listens to the daemon's alert tracker and hands each alert that starts or
clears to the dispatcher; adds, lists, removes and tests destinations."""

from __future__ import annotations

import socket
import time
from typing import Any

from sovterm.alerts import Alert
from sovterm.config import NotifySettings
from sovterm.formatting import duration
from sovterm.notify import destinations
from sovterm.notify.dispatch import Deliver, Dispatcher, Message, deliver
from sovterm.store.secrets import SecretStore


def message_for(change: str, alert: Alert) -> Message:
    """What the operator reads: the alert's text and its fix (the same words as every other surface)."""
    host = socket.gethostname()
    if change == "cleared":
        return Message(alert.key, change, alert.severity, f"sovterm on {host}: cleared: {alert.text}",
                       f"Cleared after {duration(time.time() - alert.since)}: {alert.text}")
    return Message(alert.key, change, alert.severity, f"sovterm on {host}: {alert.severity}: {alert.text}",
                   f"{alert.text}\n\nWhat to do: {alert.fix}")


class NotifyService:
    def __init__(self, secrets: SecretStore, settings: NotifySettings, *, send: Deliver = deliver) -> None:
        self._secrets = secrets
        self.dispatcher = Dispatcher(max_per_hour=settings.max_per_hour, dedupe_s=settings.dedupe_s,
                                     retry_base_s=settings.retry_base_s, retry_max_s=settings.retry_max_s,
                                     max_attempts=settings.max_attempts, timeout_s=settings.timeout_s, send=send)

    async def start(self) -> None:
        self.dispatcher.set_destinations(await destinations.load(self._secrets))

    def on_alert(self, change: str, alert: Alert) -> None:
        """The alert tracker's listener: queue and return at once."""
        self.dispatcher.offer(message_for(change, alert))

    async def add(self, name: str, url: str, min_severity: str) -> dict[str, Any]:
        await destinations.add(self._secrets, name, url, min_severity)
        await self.start()
        return self._row(name)

    async def remove(self, name: str) -> None:
        await destinations.remove(self._secrets, name)
        await self.start()

    def list(self) -> list[dict[str, Any]]:
        return [self._row(name) for name in sorted(self.dispatcher.outboxes)]

    async def test(self, name: str) -> dict[str, Any]:
        message = Message("test", "test", "info", f"sovterm on {socket.gethostname()}: test notification",
                          "This is a test from `sovterm notify test`: alerts will reach you here.")
        error = await self.dispatcher.send_now(name, message)
        return {"name": name, "delivered": error is None, "error": error}

    def _row(self, name: str) -> dict[str, Any]:
        box = self.dispatcher.outboxes[name]
        dest = box.destination
        return {"name": dest.name, "service": dest.service, "min_severity": dest.min_severity, **box.state()}

    async def close(self) -> None:
        await self.dispatcher.close()
