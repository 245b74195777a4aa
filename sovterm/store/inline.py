"""A write transaction run on the event loop's own thread, for short batches of small statements.

aiosqlite runs every statement in its thread: each one is a queue hand-off there and a wake-up of
the loop on the way back. Under load on a small box (two cores, the loop busy) each trip costs more
than the INSERT it carries, and the transaction holds the write lock all the while. Webhook intake
writes a handful of rows per delivery and needs its COMMIT (one fsync) before it may answer, so it
runs here instead: the statements and the COMMIT run directly, and the loop waits for one fsync per
batch rather than for a dozen thread round trips (measured in `bench/webhook_ingest.py`).

`InlineConnection` offers the subset of aiosqlite's interface our write units use (`await
conn.execute(...)`, `async with conn.execute(...) as cur`, `await cur.fetchone()`, `rowcount`), so
a unit written for `Database.transaction()` runs unchanged in `Database.inline_transaction()`. The
awaits never suspend: a unit that awaits anything else (the network) must not run here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Mapping
from typing import Any, Self


class InlineCursor:
    """What `execute` returns. Like aiosqlite's, it can be awaited (giving itself) or used as an
    async context manager; awaiting it never suspends."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, Self]:
        return self
        yield  # a generator that finishes at once

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """An aiosqlite-shaped view of a plain `sqlite3.Connection`, valid inside one transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> InlineCursor:
        return InlineCursor(self._conn.execute(sql, parameters))

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction
