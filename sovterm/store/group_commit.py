"""Group commit: concurrent writes share one transaction, hence one fsync.

With `synchronous = FULL` (a 200 to BTCPay means the delivery is on disk) the commit's fsync is what
a delivery costs; writing each in its own transaction caps intake at one fsync per delivery and
queues everyone else behind the write lock. Here a delivery's write joins the next transaction and
its caller still hears back only after that COMMIT, so durability is exactly as before. The BTCPay
service and the sync engine share one instance, inline (see `store/inline.py`), so a job finishing
and a webhook arriving together still cost one fsync.

A unit that raises must not cost its neighbours their write: the batch is rolled back and each of
its units is run again alone, in its own transaction, so every unit ends as it would have alone (the
failing one with its exception). Units therefore write only through `conn`, and whatever they start
outside the database must be harmless to repeat and harmless after a rollback: the webhook units wake
the sync engine and schedule a payout re-read, both of which only look at what was committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

log = logging.getLogger(__name__)

T = TypeVar("T")
Unit = Callable[[aiosqlite.Connection], Awaitable[Any]]


class GroupCommit:
    def __init__(self, db: Any, *, max_batch: int = 256, inline: bool = False, gather_turns: int = 4) -> None:
        """`inline`: batches run in `db.inline_transaction()` (units must not suspend), which is
        what webhook intake wants; otherwise in `db.transaction()` (aiosqlite's thread)."""
        self.max_batch = max_batch
        self.gather_turns = gather_turns
        self._transaction = db.inline_transaction if inline else db.transaction
        self._queue: deque[tuple[Unit, asyncio.Future[Any]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # for tests and the benchmark: how many transactions carried the units
        self._last_batch = 0

    async def run(self, unit: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `unit(conn)` in a write transaction; return its result once that transaction committed.

        A caller cancelled while waiting cancels only its future: the unit still runs and commits
        (the writer skips futures already done), so a BTCPay hang-up cannot half-write a delivery."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((unit, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def close(self) -> None:
        """Wait for the writes already queued (callers are waiting on them)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        # Under load (the last transaction carried more than one unit), the loop takes a few turns
        # before a transaction opens: each polls the sockets once and runs what is ready, so
        # deliveries already on their way (read, being verified) join this transaction instead of
        # paying for an fsync of their own. This took intake from about 1.6 to 5 deliveries per
        # commit. A lone delivery (BTCPay sends one webhook's deliveries one at a time) waits for none.
        if self._last_batch > 1:
            for _ in range(self.gather_turns):
                await asyncio.sleep(0)
        # A transaction also takes in every unit that arrives while it waits for the write lock.
        while self._queue:
            taken: list[tuple[Unit, asyncio.Future[Any]]] = []
            results: list[Any] = []
            try:
                async with self._transaction() as conn:
                    while self._queue and len(taken) < self.max_batch:
                        taken.append(self._queue.popleft())
                        results.append(await taken[-1][0](conn))
            except Exception:
                log.warning("a batch of %d webhook writes failed; writing them one by one", len(taken))
                for unit, future in taken:
                    await self._alone(unit, future)
                continue
            self.batches += 1
            self._last_batch = len(taken)
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _alone(self, unit: Unit, future: asyncio.Future[Any]) -> None:
        try:
            async with self._transaction() as conn:
                result = await unit(conn)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        self.batches += 1
        if not future.done():
            future.set_result(result)
