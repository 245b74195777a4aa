"""Background tasks a service starts and must not lose.

asyncio keeps only a weak reference to a running task, so a fire-and-forget task can vanish mid-flight;
a service that stops must also cancel and await what it started. `Background` does both, and logs a task
that failed so the failure is never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any


class Background:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log  # the owning service's logger, where a failed task is reported
        self._tasks: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("background task failed", exc_info=task.exception())

    async def idle(self) -> None:
        """Wait until every task (including those the tasks start) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel what is running and wait for it to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
