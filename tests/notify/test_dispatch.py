"""Delivery through apprise to real destinations on loopback: an SMTP server and an HTTP receiver. Each alert
goes out when it starts and when it clears, once; a destination's hourly limit holds the rest back and says
so; a dead or hanging destination is retried with backoff while the others, and the event loop, go on."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sovterm.alerts import Alert
from sovterm.notify.destinations import Destination
from sovterm.notify.dispatch import Dispatcher
from sovterm.notify.service import message_for
from sovterm.store.secrets import Secret
from tests.notify.receivers import HTTPReceiver, SMTPReceiver
from tests.support.daemon import free_port

TOKEN = "tk-9f8e7d6c5b4a3921"
CLOSE_BOUND_S = 10.0


def alert(key: str = "sync.dead", severity: str = "error", text: str = "2 sync job(s) failed for good") -> Alert:
    return Alert(key=key, severity=severity, text=text, fix="`sovterm sync dead` then `sovterm sync retry`",
                 since=1_000.0)


def dest(name: str, url: str, min_severity: str = "info") -> Destination:
    return Destination(name, url.partition("://")[0], min_severity, Secret(url))


async def until(check: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


@pytest.fixture
def http() -> Iterator[HTTPReceiver]:
    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp() -> Iterator[SMTPReceiver]:
    receiver = SMTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    made: list[Dispatcher] = []

    def build(**kw: Any) -> Dispatcher:
        options = {"max_per_hour": 20, "dedupe_s": 900, "retry_base_s": 0.2, "retry_max_s": 1.0,
                   "max_attempts": 30, "timeout_s": 2.0, **kw}
        made.append(Dispatcher(**options))
        return made[-1]

    yield build
    for d in made:
        async with asyncio.timeout(CLOSE_BOUND_S):  # a worker that will not stop fails here, never hangs
            await d.close()


async def test_an_alert_reaches_mail_and_http_when_it_starts_and_when_it_clears(make, http, smtp) -> None:
    d = make()
    d.set_destinations([dest("mail", smtp.url), dest("hook", http.url(f"hook/{TOKEN}"))])
    a = alert()
    d.offer(message_for("started", a))
    d.offer(message_for("cleared", a))
    await until(lambda: len(smtp.messages) == 2 and len(http.posts) == 2, what="both messages at both destinations")
    assert "error: 2 sync job(s) failed for good" in smtp.subjects()[0]
    assert "cleared: 2 sync job(s) failed for good" in smtp.subjects()[1]
    assert "sovterm sync retry" in http.posts[0]["message"]  # the fix travels with the alert
    assert [p["type"] for p in http.posts] == ["failure", "success"]
    assert http.paths == [f"/hook/{TOKEN}"] * 2
    # the receiver has a message a moment before the sender thread returns: wait for the count
    await until(lambda: d.outboxes["mail"].state()["sent"] == 2, what="both mails counted")
    assert d.outboxes["hook"].state()["state"] == "ok"


async def test_severity_filter_and_dedupe(make, http) -> None:
    d = make()
    d.set_destinations([dest("errors-only", http.url("errors"), "error"), dest("all", http.url("all"), "info")])
    paused = alert("loop.poll.paused", "warning", "Loop poll is paused")
    d.offer(message_for("started", paused))
    d.offer(message_for("started", paused))  # the same start again (a restart, a flap): said once
    d.offer(message_for("cleared", paused))
    d.offer(message_for("started", paused))  # flapping back within the dedupe window: not again
    await until(lambda: len(http.posts) == 2, what="start and clear at the info destination")
    await asyncio.sleep(0.3)
    assert http.paths == ["/all", "/all"]  # a warning never reaches the errors-only destination
    assert d.outboxes["errors-only"].state()["sent"] == 0


async def test_the_hourly_limit_holds_messages_back_and_the_next_one_says_how_many(make, http) -> None:
    now = [10_000.0]
    d = make(max_per_hour=2, clock=lambda: now[0])
    d.set_destinations([dest("hook", http.url("hook"))])
    for n in range(5):
        d.offer(message_for("started", alert(f"loop.l{n}.failed", "warning", f"Loop l{n} failed its last run")))
    await until(lambda: len(http.posts) == 2, what="the two messages within the limit")
    await asyncio.sleep(0.3)
    assert len(http.posts) == 2 and d.outboxes["hook"].state()["held_back"] == 3
    now[0] += 3601  # an hour later the next alert goes out, and says what was held back
    d.offer(message_for("started", alert("disk", "error", "Disk space low: 50 MB free, needs 500 MB")))
    await until(lambda: len(http.posts) == 3, what="the message after the hour")
    assert "3 more notification(s) held back by the limit of 2 per hour" in http.posts[2]["message"]


async def test_a_dead_destination_is_retried_with_backoff_and_costs_the_others_nothing(make, http) -> None:
    d = make(retry_base_s=0.2, retry_max_s=0.4, timeout_s=1.0)
    dead_port = free_port()  # nothing listens here yet
    d.set_destinations([dest("hang", http.url("hang/x")), dest("dead", f"json://127.0.0.1:{dead_port}/later"),
                        dest("ok", http.url("ok"))])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    for n in range(3):
        d.offer(message_for("started", alert(f"loop.l{n}.stale", "error", f"Loop l{n} is stale")))
    await until(lambda: len([p for p in http.paths if p == "/ok"]) == 3, what="the healthy destination's messages")
    # the hanging and the dead destination still hold theirs, failing and retrying
    await until(lambda: d.outboxes["dead"].state()["state"] in ("retrying", "failing")
                and d.outboxes["hang"].failed_attempts >= 1, what="both failing")
    assert d.outboxes["dead"].state()["queued"] == 3 and d.outboxes["hang"].state()["queued"] == 3
    assert d.outboxes["hang"].state()["last_error"] == "no answer within the timeout"
    assert ticks > 10  # the event loop kept running while they hung and failed
    # the dead destination comes up: its retries deliver what waited, in order
    late = HTTPReceiver(dead_port)
    try:
        await until(lambda: len(late.posts) == 3, what="the queued messages after the destination came back")
        assert [p["title"].rsplit(": ", 1)[1] for p in late.posts] == ["Loop l0 is stale", "Loop l1 is stale",
                                                                         "Loop l2 is stale"]
        assert d.outboxes["dead"].state()["state"] == "ok"
    finally:
        late.close()
        beat.cancel()


async def test_a_message_is_given_up_after_the_last_attempt(make) -> None:
    d = make(retry_base_s=0.05, retry_max_s=0.05, max_attempts=3)
    d.set_destinations([dest("dead", f"json://127.0.0.1:{free_port()}/x")])
    d.offer(message_for("started", alert()))
    await until(lambda: d.outboxes["dead"].state()["given_up"] == 1, what="the message given up")
    assert d.outboxes["dead"].state()["queued"] == 0


async def test_closing_as_an_attempt_ends_stops_the_worker(make) -> None:
    """The notify test that hung: on Python 3.11, `wait_for` returned the result of an attempt that ended just
    as the worker was cancelled and dropped the cancellation, so the worker waited for messages forever and
    `close()` waited for it. Here the attempt ends, then the worker is cancelled before it resumes."""
    started, finish = threading.Event(), threading.Event()

    def send(url: str, title: str, body: str, kind: str) -> None:
        started.set()
        assert finish.wait(5), "the test never let the attempt finish"

    d = make(send=send, timeout_s=5.0)
    d.set_destinations([dest("hook", "json://127.0.0.1:9/x")])
    d.offer(message_for("started", alert()))
    await until(started.is_set, what="the attempt")
    finish.set()
    time.sleep(0.05)  # noqa: ASYNC251 (blocking on purpose: the attempt's result is queued on the loop first)
    worker = d.outboxes["hook"].worker
    assert worker is not None
    async with asyncio.timeout(CLOSE_BOUND_S):
        await d.close()
    assert worker.done()
