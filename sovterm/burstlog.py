"""A log that stays short under a flood: the first of a burst is logged at once, the rest are counted
and summed up in one line per window.

Whoever reaches the public listener decides how often we refuse something (forged webhooks, tampered
pay tokens, accept() failing for lack of descriptors); a line per event let one client write 86,000
identical lines. Here a burst of any size costs two lines a window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

#: Distinct clients remembered per window (the summary names the busiest); more are counted, not named.
MAX_CLIENTS = 64


class BurstLog:
    def __init__(self, logger: logging.Logger, what: str, *, window_s: float = 60.0,
                 level: int = logging.WARNING, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.window_s = window_s
        self.level = level
        self.clock = clock
        self._window_end: float | None = None
        self._reasons: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()
        self._flush: asyncio.TimerHandle | None = None
        self.total = 0  # every event noted, logged or summed up

    def note(self, reason: str, detail: str, client: str | None = None) -> None:
        """One event; `detail` (already free of secrets and of untrusted bytes) is logged only for the
        first of a burst."""
        self.total += 1
        now = self.clock()
        if self._window_end is not None and now >= self._window_end:
            self.flush()
        if self._window_end is None:
            self._window_end = now + self.window_s
            self.logger.log(self.level, "%s: %s", self.what, detail)
            return
        self._reasons[reason] += 1
        if client is not None and (client in self._clients or len(self._clients) < MAX_CLIENTS):
            self._clients[client] += 1
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a plain call): the next note after the window writes the summary
            self._flush = loop.call_at(loop.time() + max(0.0, self._window_end - now), self.flush)

    def flush(self) -> None:
        """Write the summary of what the current window held beyond its first event, and close it."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        suppressed = sum(self._reasons.values())
        if suppressed:
            reasons = ", ".join(f"{r} {n:,}" for r, n in self._reasons.most_common(8))
            busiest = ", ".join(f"{c} ({n:,})" for c, n in self._clients.most_common(3))
            self.logger.log(self.level, "%s: %s more in the last %.0f s (%s)%s", self.what, f"{suppressed:,}",
                            self.window_s, reasons, f"; most from {busiest}" if busiest else "")
        self._reasons.clear()
        self._clients.clear()
        self._window_end = None
