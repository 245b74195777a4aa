"""Per-company request pacing that keeps sovterm under Intuit's throttles.

Intuit allows 500 requests/min per company per app (batches included), 40 batch requests/min and
10 concurrent requests; going over returns HTTP 429 (or an XML `ThrottleExceeded` fault). We pace
with sliding-window logs a little under those numbers, so that no 60-second window ever holds more
than the limit (a token bucket would allow a burst of twice the rate across a window edge), and cap
concurrency well below 10 to leave room for the merchant's other apps.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

INTUIT_REQUESTS_PER_MIN = 500
INTUIT_BATCHES_PER_MIN = 40
INTUIT_MAX_CONCURRENT = 10


class SlidingWindow:
    """At most `limit` acquisitions in any `window_s` interval."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: waiters keep their order
            while True:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window_s:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self._stamps[0] + self.window_s - now + 1e-4)


class RealmLimiter:
    """Requests, batches and concurrency for one company."""

    def __init__(
        self,
        *,
        requests_per_min: int = 450,
        batches_per_min: int = 36,
        concurrency: int = 4,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= concurrency <= INTUIT_MAX_CONCURRENT:
            raise ValueError(f"concurrency must be 1..{INTUIT_MAX_CONCURRENT}")
        if requests_per_min > INTUIT_REQUESTS_PER_MIN or batches_per_min > INTUIT_BATCHES_PER_MIN:
            raise ValueError("limits above Intuit's documented throttles would be refused with 429")
        self._requests = SlidingWindow(requests_per_min, window_s, clock)
        self._batches = SlidingWindow(batches_per_min, window_s, clock)
        self._slots = asyncio.Semaphore(concurrency)

    @asynccontextmanager
    async def slot(self, *, batch: bool = False) -> AsyncIterator[None]:
        """Hold one request slot; a batch also counts against the batch window."""
        async with self._slots:
            if batch:
                await self._batches.acquire()
            await self._requests.acquire()
            yield


class LimiterRegistry:
    """One `RealmLimiter` per company, shared by every client of that company in the process."""

    def __init__(self, factory: Callable[[], RealmLimiter] = RealmLimiter) -> None:
        self._factory = factory
        self._limiters: dict[str, RealmLimiter] = {}

    def for_realm(self, realm_id: str) -> RealmLimiter:
        if realm_id not in self._limiters:
            self._limiters[realm_id] = self._factory()
        return self._limiters[realm_id]
