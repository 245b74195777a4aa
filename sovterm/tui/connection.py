"""The TUI's only connection to the daemon.

`Connection.run()` is the body of one exclusive app worker: it connects, handshakes, subscribes to events and
follows the logs, turns every notification into a message for the app, polls `status` (and the optional
feeds the daemon offers), and reconnects with backoff when the daemon goes away. Screens never see the
socket: they call the daemon through their session's `daemon` (`Connection.daemon`), a `Daemon` facade that
checks the caller's role first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from textual.message import Message

from sovterm.control.client import CallFailed, ControlClient, DaemonUnavailable
from sovterm.errors import UserFacingError
from sovterm.tui.messages import (
    Connected,
    DaemonEvent,
    Disconnected,
    EventsMissed,
    FeedUpdated,
    LogLines,
    StatusUpdated,
)
from sovterm.tui.state import Capabilities

# Events after which the dashboard's numbers are likely to have changed.
STATUS_TOPICS = ("loop.", "connector.", "sync.", "invoice.", "payout.", "link.")

Connect = Callable[..., Awaitable[ControlClient]]


class ActionFailed(UserFacingError):
    """A daemon call from the UI did not happen or failed; the message says why."""

    code = "action_failed"


class Daemon:
    """What widgets may do with the daemon: call a method if the connection is up and the role allows it."""

    def __init__(self) -> None:
        self._client: ControlClient | None = None
        self.caps = Capabilities()

    @property
    def connected(self) -> bool:
        return self._client is not None

    def attach(self, client: ControlClient, caps: Capabilities) -> None:
        self._client, self.caps = client, caps

    def detach(self) -> None:
        self._client = None

    def why_not(self, method: str) -> str | None:
        if self._client is None:
            return "not connected to the daemon"
        return self.caps.why_not(method)

    async def call(self, method: str, **params: Any) -> Any:
        reason = self.why_not(method)
        if reason is not None:
            raise ActionFailed(f"{method}: {reason}")
        assert self._client is not None
        try:
            return await self._client.call(method, **params)
        except CallFailed as exc:
            raise ActionFailed(exc.message) from None
        except DaemonUnavailable as exc:
            raise ActionFailed(exc.message, fix=exc.fix) from None


class Backoff:
    """0.25 s, 0.5 s, 1 s ... up to `cap`: quick when the daemon is merely restarting."""

    def __init__(self, first: float = 0.25, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Connection:
    def __init__(
        self,
        socket_path: Path,
        post: Callable[[Message], Any],
        *,
        feeds: Sequence[str] = (),
        connect: Connect = ControlClient.connect,
        refresh_s: float = 5.0,
        min_refresh_s: float = 0.5,
        flush_s: float = 0.05,
        backlog: int = 2000,
        backoff: Backoff | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.daemon = Daemon()
        self.feeds = tuple(feeds)
        self._post = post
        self._connect = connect
        self.refresh_s, self.min_refresh_s, self.flush_s = refresh_s, min_refresh_s, flush_s
        self.backlog = backlog
        self.backoff = backoff or Backoff()
        self._wake = asyncio.Event()
        self._refresh = asyncio.Event()

    def retry_now(self) -> None:
        """Cut the current backoff wait short (the attach screen's `r`)."""
        self._wake.set()

    def refresh_now(self) -> None:
        """Ask for a fresh `status` (and feeds) as soon as the debounce allows."""
        self._refresh.set()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                client = await self._connect(self.socket_path, client="tui")
            except DaemonUnavailable as exc:
                attempt += 1
                await self._wait_retry(exc, attempt)
                continue
            self.backoff.reset()
            attempt = 0
            lost: UserFacingError
            try:
                await self._session(client)
                lost = DaemonUnavailable(
                    "the daemon closed the connection", fix="it is probably restarting; reconnecting by itself"
                )
            except DaemonUnavailable as exc:
                lost = exc
            except CallFailed as exc:
                lost = DaemonUnavailable(f"the daemon refused: {exc.message}")
            finally:
                self.daemon.detach()
                await client.close()
            attempt = 1
            await self._wait_retry(lost, attempt)

    async def _wait_retry(self, exc: UserFacingError, attempt: int) -> None:
        delay = self.backoff.next()
        self._post(Disconnected(exc.message, exc.fix, attempt, delay))
        self._wake.clear()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _session(self, client: ControlClient) -> None:
        methods = await client.call("methods.list")
        caps = Capabilities.from_daemon(client.hello, methods)
        status = await client.call("status")
        self.daemon.attach(client, caps)
        self._post(Connected(dict(client.hello), caps, status))
        await client.call("events.subscribe", topics=[])
        backlog = await client.call("logs.tail", lines=self.backlog, follow=True)
        self._post(LogLines(list(backlog.get("lines", [])), replace=True))
        pending: list[dict[str, Any]] = []
        self._refresh.set()  # fetch the optional feeds right away
        tasks = [
            asyncio.create_task(self._pump(client, pending)),
            asyncio.create_task(self._poll(client, caps)),
            asyncio.create_task(self._flush(pending)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if pending:
                self._post(LogLines(pending[:]))

    async def _pump(self, client: ControlClient, pending: list[dict[str, Any]]) -> None:
        """Notifications → messages, until the connection closes."""
        async for note in client.notifications():
            method, params = note["method"], dict(note.get("params") or {})
            if method == "logs.line":
                pending.append(params)
            elif method == "event":
                topic = str(params.pop("topic", ""))
                ts = params.pop("ts", 0.0)
                self._post(DaemonEvent(topic, float(ts or 0.0), params))
                if topic.startswith(STATUS_TOPICS):
                    self._refresh.set()
            elif method == "events.missed":
                self._post(EventsMissed(int(params.get("count", 0))))

    async def _poll(self, client: ControlClient, caps: Capabilities) -> None:
        """`status` every `refresh_s`, sooner after a relevant event, never more than once per `min_refresh_s`."""
        first = True
        while True:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), self.refresh_s)
            self._refresh.clear()
            if not first:
                self._post(StatusUpdated(await client.call("status")))
            first = False
            for method in self.feeds:
                if caps.why_not(method) is not None:
                    continue
                try:
                    self._post(FeedUpdated(method, await client.call(method)))
                except CallFailed as exc:
                    self._post(FeedUpdated(method, None, exc.message))
            await asyncio.sleep(self.min_refresh_s)

    async def _flush(self, pending: list[dict[str, Any]]) -> None:
        """Coalesce log lines: at most one message per `flush_s`, however fast the daemon logs."""
        while True:
            await asyncio.sleep(self.flush_s)
            if pending:
                batch = pending[:]
                pending.clear()
                self._post(LogLines(batch))
