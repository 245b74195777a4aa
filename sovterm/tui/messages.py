"""Everything the daemon connection tells the app, as Textual messages (posted to the app, thread-safe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from sovterm.tui.state import Capabilities


@dataclass
class Connected(Message):
    """Connected and handshaken: who we are, what the daemon offers, its first status."""

    hello: dict[str, Any]
    caps: Capabilities
    status: dict[str, Any]


@dataclass
class Disconnected(Message):
    """Not connected (never was, or lost it); the connection retries by itself after `retry_in` seconds."""

    message: str
    fix: str | None
    attempt: int
    retry_in: float


@dataclass
class StatusUpdated(Message):
    status: dict[str, Any]


@dataclass
class FeedUpdated(Message):
    """The result of an optional daemon method the app polls when the daemon offers it."""

    method: str
    result: Any
    error: str | None = None


@dataclass
class LogLines(Message):
    """A batch of log lines; `replace` when it is the daemon's backlog after (re)connecting."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    replace: bool = False


@dataclass
class DaemonEvent(Message):
    """An `event` notification: `topic` (e.g. `loop.run`, `sync.progress`), `ts` and its data."""

    topic: str
    ts: float
    data: dict[str, Any]


@dataclass
class EventsMissed(Message):
    """The daemon dropped notifications because we read too slowly."""

    count: int


@dataclass
class ActionDone(Message):
    """A daemon action the operator started has finished (or failed); `severity` as for notifications."""

    name: str
    text: str
    severity: str
