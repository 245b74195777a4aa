"""Creating documents in QuickBooks: in batches when many wait, one by one otherwise, never twice.

This is the one way sync's documents go down to QuickBooks (`sync.documents.Documents.write`). Jobs hand
their fresh postings (ledger rows: entity, marker, exact body, requestid) to `Sender.create` and await
the result. When enough wait (a burst,
a backfill), one batch request carries up to 30 of them; while that batch waits for Intuit's batch
window (40 a minute), the others go out as single requests within the request window (500 a minute),
so both budgets are used at once. A lone posting goes out at once as a single request.

Exactly once: a posting whose document may already exist (a crashed run's `pending` row, history that
may have been posted before, an answer lost in transit) is looked up by marker first, up to 50 of one
entity at a time, and only the missing ones are created. The look-up uses only filters Intuit
documents (`qbo.postings.lookup_queries`): `DocNumber IN (...)` in one query where that filter exists;
for Payment and Transfer one query per range of dates, matched by the marker in the private note. A
batch is idempotent by its requestid (derived from its markers); a batch whose answer was lost is
never resent blindly: its postings go back through the look-up. 6140 (DocNumber taken) means "it
exists": looked up, not an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sovterm.logs import context_for, current_cid
from sovterm.qbo.client import MAX_BATCH_ITEMS, QBOClient, request_id
from sovterm.qbo.errors import (
    QBODuplicateDocNumber,
    QBOError,
    QBOUnavailable,
    QBOValidationError,
)
from sovterm.qbo.models import BatchItem, loads
from sovterm.qbo.postings import Poster, PostResult, find_documents
from sovterm.tasks import Background

log = logging.getLogger(__name__)


@dataclass
class _Item:
    row: dict[str, Any]
    future: asyncio.Future[PostResult]
    unknowns: int = 0
    # the job's log context: a request started for this item alone logs under its job's correlation id,
    # whichever job's call happened to start it
    context: contextvars.Context = field(default_factory=contextvars.copy_context)

    @property
    def cid(self) -> str | None:
        return self.context.run(current_cid)

    @property
    def marker(self) -> str:
        return str(self.row["marker"])

    @property
    def entity(self) -> str:
        return str(self.row["entity"])


class Sender:
    def __init__(
        self,
        client: Callable[[], Awaitable[QBOClient]],
        *,
        batch_size: int = MAX_BATCH_ITEMS,
        min_batch: int = 10,
        singles: int = 3,
        lookup_size: int = 50,
        linger_s: float = 0.25,
        max_unknown: int = 3,
    ) -> None:
        self._client = client
        self.batch_size = batch_size
        self.min_batch = min_batch
        self.singles = singles
        self.lookup_size = lookup_size
        self.linger_s = linger_s
        self.max_unknown = max_unknown
        self._lookups: deque[_Item] = deque()
        self._creates: deque[_Item] = deque()
        self._batch_busy = False
        self._singles_busy = 0
        self._lookups_busy = 0
        self._lingering = False
        self._background = Background(log)
        self.stats = {"batches": 0, "batched": 0, "singles": 0, "lookups": 0, "found": 0}

    async def create(self, row: dict[str, Any], *, lookup_first: bool = False) -> PostResult:
        """The document for this ledger row (with its marker, body and requestid), created once."""
        item = _Item(row, asyncio.get_running_loop().create_future())
        (self._lookups if lookup_first else self._creates).append(item)
        self._pump()
        return await item.future

    async def close(self) -> None:
        await self._background.cancel()

    # -- scheduling ---------------------------------------------------------------------------------

    @staticmethod
    def _take(queue: deque[_Item], n: int, entity: str | None = None) -> list[_Item]:
        """Up to n live items (callers that gave up are skipped), of one entity if given."""
        taken: list[_Item] = []
        rest: deque[_Item] = deque()
        while queue and len(taken) < n:
            item = queue.popleft()
            if item.future.done():
                continue
            if entity is not None and item.entity != entity:
                rest.append(item)
                continue
            taken.append(item)
        queue.extendleft(reversed(rest))
        return taken

    def _pump(self) -> None:
        # one look-up at a time, as full as possible: a short wait lets the rest of a wave join it
        if self._lookups and not self._lookups_busy:
            if len(self._lookups) >= self.lookup_size:
                self._start_lookup()
            elif not self._lingering:
                self._lingering = True
                self._background.spawn(self._linger())
        if not self._batch_busy and len(self._creates) >= self.min_batch:
            items = self._take(self._creates, self.batch_size, self._creates[0].entity)
            if items:
                self._batch_busy = True
                self._spawn_for(items, self._batch(items))
        while self._creates and self._singles_busy < self.singles and (
            self._batch_busy or len(self._creates) < self.min_batch
        ):
            items = self._take(self._creates, 1)
            if not items:
                break
            self._singles_busy += 1
            self._spawn_for(items, self._single(items[0]))

    def _spawn_for(self, items: list[_Item], work: Any) -> None:
        """Start a request for these items in their log context: one item's own, or for several (a batch,
        a look-up) one that lists all their correlation ids, never the id of the job that happened to ask."""
        context = items[0].context.copy() if len(items) == 1 else context_for(i.cid for i in items)
        self._background.spawn(asyncio.get_running_loop().create_task(work, context=context))

    async def _linger(self) -> None:
        await asyncio.sleep(self.linger_s)
        self._lingering = False
        if not self._lookups_busy:
            self._start_lookup()

    def _start_lookup(self) -> None:
        while self._lookups:
            items = self._take(self._lookups, self.lookup_size, self._lookups[0].entity)
            if items:
                self._lookups_busy += 1
                self._spawn_for(items, self._lookup(items))
                return

    # -- the three kinds of request -------------------------------------------------------------------

    async def _lookup(self, items: list[_Item]) -> None:
        try:
            entity = items[0].entity
            client = await self._client()
            found = await find_documents(client, entity, [loads(i.row["body"]) for i in items])
            self.stats["lookups"] += 1
            for item in items:
                doc = found.get(item.marker)
                if doc is not None:
                    self.stats["found"] += 1
                    item.context.run(log.info, "qbo %s %s found (Id %s): not created again", entity, item.marker,
                                     doc["Id"])
                    _resolve(item, PostResult(entity, str(doc["Id"]), str(doc["SyncToken"]), item.marker, False, doc))
                else:
                    self._creates.append(item)
        except Exception as exc:
            for item in items:
                _fail(item, exc)
        finally:
            self._lookups_busy -= 1
            self._pump()

    async def _batch(self, items: list[_Item]) -> None:
        try:
            client = await self._client()
            batch = [BatchItem(str(n), "create", i.entity, loads(i.row["body"])) for n, i in enumerate(items)]
            try:
                results = await client.batch(batch, request_id=request_id("batch", *(i.marker for i in items)),
                                             retry_unknown=False)
            except QBOUnavailable as exc:
                for item in items:
                    self._unknown(item, exc)
                return
            self.stats["batches"] += 1
            for item, res in zip(items, results, strict=True):
                if res.ok and res.data:
                    self.stats["batched"] += 1
                    data = res.data
                    item.context.run(log.info, "qbo %s %s created (Id %s) in a batch of %d", item.entity,
                                     item.marker, data["Id"], len(items))
                    _resolve(item, PostResult(item.entity, str(data["Id"]), str(data["SyncToken"]), item.marker,
                                              True, data))
                elif isinstance(res.error, QBODuplicateDocNumber):
                    self._lookups.append(item)  # it exists already: find it
                elif isinstance(res.error, QBOValidationError):
                    _fail(item, res.error)
                else:
                    self._unknown(item, res.error or QBOError("batch item without an answer"))
        except Exception as exc:
            for item in items:
                _fail(item, exc)
        finally:
            self._batch_busy = False
            self._pump()

    async def _single(self, item: _Item) -> None:
        try:
            poster = Poster(await self._client())
            result = await poster.post(item.entity, loads(item.row["body"]), request_id=item.row["request_id"])
            self.stats["singles"] += 1
            _resolve(item, result)
        except Exception as exc:
            _fail(item, exc)
        finally:
            self._singles_busy -= 1
            self._pump()

    def _unknown(self, item: _Item, exc: BaseException) -> None:
        """No answer for this posting: look it up before anything is sent again (or give up)."""
        item.unknowns += 1
        if item.unknowns >= self.max_unknown:
            _fail(item, exc)
        else:
            self._lookups.append(item)


def _resolve(item: _Item, result: PostResult) -> None:
    if not item.future.done():
        item.future.set_result(result)


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
