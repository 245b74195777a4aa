"""In-process event bus: parts publish, control-socket subscribers receive.

Each subscriber has a bounded buffer. A slow subscriber never slows the publisher: when its buffer is
full, events are dropped for it and counted, and the next event it gets is preceded by how many it missed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    topic: str
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)


@dataclass(eq=False)
class Subscription:
    topics: frozenset[str]  # empty = everything
    limit: int
    _buffer: deque[Event] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    missed: int = 0
    closed: bool = False

    def wants(self, topic: str) -> bool:
        return not self.topics or topic in self.topics or topic.split(".")[0] in self.topics

    def offer(self, event: Event) -> None:
        if len(self._buffer) >= self.limit:
            self.missed += 1
        else:
            self._buffer.append(event)
        self._ready.set()

    async def next(self) -> tuple[int, Event | None]:
        """Wait for the next event; returns (missed since last call, event or None if closed)."""
        while not self._buffer and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        missed, self.missed = self.missed, 0
        return missed, (self._buffer.popleft() if self._buffer else None)

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def publish(self, topic: str, **data: Any) -> None:
        if not self._subs:  # the usual case for a headless daemon: no TUI attached
            return
        event = Event(topic, data)
        for sub in self._subs:
            if sub.wants(topic):
                sub.offer(event)

    def subscribe(self, topics: list[str] | None = None, *, limit: int = 1000) -> Subscription:
        sub = Subscription(frozenset(topics or ()), limit)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self._subs.discard(sub)
