"""Delivery of notifications, one queue and one worker per destination, so a dead or slow destination
delays only its own messages and never the daemon nor the other destinations: apprise's senders block, so
each destination's run in two threads of its own, each attempt bounded by a timeout, failures retried with
exponential backoff.

Every queue is bounded (the oldest message goes first, counted), messages beyond a destination's hourly
limit are held back (counted, and said in the next message), and the same alert starting or clearing again
within the dedupe window is not sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import apprise

from sovterm.logs import get_logger
from sovterm.notify.destinations import Destination
from sovterm.tasks import Background

log = get_logger("notify")
QUEUE_LIMIT = 50  # messages waiting per destination; a destination down for days keeps only the newest
SENDER_THREADS = 2  # per destination: a retry can start while an abandoned attempt still times out
HOUR_S = 3600.0
CLOSE_TIMEOUT_S = 5.0  # stopping the workers never holds up the daemon's shutdown longer
NOTIFY_TYPES = {"error": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING,
                "info": apprise.NotifyType.INFO, "cleared": apprise.NotifyType.SUCCESS}

# apprise logs the hosts, paths and sometimes the tokens of the URLs it sends to; sovterm logs its own
# redacted outcome (destination name and service only) instead.
logging.getLogger("apprise").propagate = False
logging.getLogger("apprise").setLevel(logging.CRITICAL)


class DeliveryFailed(Exception):
    """A destination did not take a message (the text names no URL)."""


def deliver(url: str, title: str, body: str, kind: str) -> None:
    """Send one message through apprise (blocking: run it in the sender pool)."""
    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryFailed("apprise cannot use the destination URL")
    if not sender.notify(title=title, body=body, notify_type=NOTIFY_TYPES.get(kind, apprise.NotifyType.INFO)):
        raise DeliveryFailed("the service did not accept the message")


@dataclass(frozen=True)
class Message:
    key: str  # the alert's key ("test" for `notify test`)
    change: str  # started | cleared | test
    severity: str
    title: str
    body: str


@dataclass
class Outbox:
    """One destination's queue and what became of its messages."""

    destination: Destination
    queue: deque[Message] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    accepted_at: deque[float] = field(default_factory=deque)  # enqueue times within the last hour
    sent: int = 0
    failed_attempts: int = 0  # of the message now at the head
    given_up: int = 0
    held_back: int = 0  # over the hourly limit since the last message accepted
    held_back_total: int = 0
    dropped: int = 0  # pushed out of a full queue
    last_sent_at: float | None = None
    last_error: str | None = None
    retry_at: float | None = None
    worker: asyncio.Future[Any] | None = None
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(
        SENDER_THREADS, thread_name_prefix="sovterm-notify"))

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def state(self) -> dict[str, Any]:
        if self.retry_at is not None:
            state = "retrying"
        elif self.last_error is not None and self.sent == 0:
            state = "failing"
        else:
            state = "ok" if self.sent else "idle"
        return {"state": state, "queued": len(self.queue), "sent": self.sent, "given_up": self.given_up,
                "held_back": self.held_back_total, "dropped": self.dropped, "last_sent_at": self.last_sent_at,
                "last_error": self.last_error, "retry_at": self.retry_at}


Deliver = Callable[[str, str, str, str], None]


class Dispatcher:
    def __init__(self, *, max_per_hour: int, dedupe_s: float, retry_base_s: float, retry_max_s: float,
                 max_attempts: int, timeout_s: float, send: Deliver = deliver,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_per_hour = max_per_hour
        self.dedupe_s = dedupe_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._send = send
        self._clock = clock
        self._tasks = Background(log)
        self.outboxes: dict[str, Outbox] = {}
        self._last_offered: dict[tuple[str, str], float] = {}  # (alert key, change) → when

    # -- destinations ---------------------------------------------------------------------------------

    def set_destinations(self, destinations: list[Destination]) -> None:
        """Start a worker for each new destination, stop the removed ones (their queue goes with them)."""
        wanted = {d.name: d for d in destinations}
        for name in list(self.outboxes):
            if name not in wanted or wanted[name] != self.outboxes[name].destination:
                self.outboxes.pop(name).stop()
        for name, dest in wanted.items():
            if name not in self.outboxes:
                box = Outbox(dest)
                self.outboxes[name] = box
                box.worker = self._tasks.spawn(self._work(box))

    # -- offering -------------------------------------------------------------------------------------

    def offer(self, message: Message) -> None:
        """Queue a message for every destination that wants its severity; never waits."""
        now = self._clock()
        key = (message.key, message.change)
        last = self._last_offered.get(key)
        if last is not None and now - last < self.dedupe_s:
            return  # the same alert flapping: said once per window
        self._last_offered[key] = now
        if len(self._last_offered) > 10_000:  # alert keys are few; bound it anyway
            self._last_offered = {k: t for k, t in self._last_offered.items() if now - t < self.dedupe_s}
        for box in self.outboxes.values():
            if box.destination.wants(message.severity):
                self._enqueue(box, message, now)

    def _enqueue(self, box: Outbox, message: Message, now: float) -> None:
        while box.accepted_at and now - box.accepted_at[0] >= HOUR_S:
            box.accepted_at.popleft()
        if len(box.accepted_at) >= self.max_per_hour:
            box.held_back += 1
            box.held_back_total += 1
            return
        box.accepted_at.append(now)
        if box.held_back:  # the first message after a pause says what the limit held back
            message = Message(message.key, message.change, message.severity, message.title,
                              f"{message.body}\n\n({box.held_back} more notification(s) held back by the limit "
                              f"of {self.max_per_hour} per hour)")
            box.held_back = 0
        if len(box.queue) >= QUEUE_LIMIT:
            box.queue.popleft()
            box.dropped += 1
        box.queue.append(message)
        box.ready.set()

    async def send_now(self, name: str, message: Message) -> str | None:
        """Deliver one message to one destination now, outside its queue (`notify test`); the error or None."""
        box = self.outboxes.get(name)
        if box is None:
            return f"no notification destination named {name!r}"
        try:
            await self._attempt(box, message)
        except Exception as exc:  # the operator reads why; the text never holds the URL
            return _reason(exc)
        return None

    # -- delivering -----------------------------------------------------------------------------------

    async def _attempt(self, box: Outbox, message: Message) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(box.pool, self._send, box.destination.url.reveal(), message.title, message.body,
                                      "cleared" if message.change == "cleared" else message.severity)
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the attempt ends just
        # as the worker is cancelled, losing the cancellation; the worker then waited for messages forever
        # and `close()` with it (the notify test that hung)
        async with asyncio.timeout(self.timeout_s):
            await future

    async def _work(self, box: Outbox) -> None:
        dest = box.destination
        while True:
            while not box.queue:
                box.ready.clear()
                await box.ready.wait()
            message = box.queue[0]
            try:
                await self._attempt(box, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                box.failed_attempts += 1
                box.last_error = _reason(exc)
                if box.failed_attempts >= self.max_attempts:
                    log.warning("notification to %s (%s) given up after %d attempts: %s", dest.name, dest.service,
                                box.failed_attempts, box.last_error)
                    self._done(box, sent=False)
                    continue
                delay = min(self.retry_base_s * 2 ** (box.failed_attempts - 1), self.retry_max_s)
                delay *= random.uniform(0.8, 1.2)  # destinations failing together do not retry in step
                box.retry_at = self._clock() + delay
                log.info("notification to %s (%s) failed (%s); retry in %.0f s", dest.name, dest.service,
                         box.last_error, delay)
                await asyncio.sleep(delay)
                continue
            box.sent += 1
            box.last_sent_at = self._clock()
            box.last_error = None
            log.info("notification sent to %s (%s): %s %s", dest.name, dest.service, message.key, message.change)
            self._done(box, sent=True)

    @staticmethod
    def _done(box: Outbox, *, sent: bool) -> None:
        if box.queue:
            box.queue.popleft()
        box.failed_attempts = 0
        box.retry_at = None
        if not sent:
            box.given_up += 1

    async def close(self) -> None:
        """Stop every worker; bounded, so a worker that ignored its cancellation is reported, never waited for."""
        for box in self.outboxes.values():
            box.stop()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._tasks.cancel()
        except TimeoutError:
            log.error("%d notification worker(s) did not stop within %.0f s", len(self._tasks), CLOSE_TIMEOUT_S)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, DeliveryFailed):
        return str(exc)
    return type(exc).__name__  # an exception's text could quote the URL
