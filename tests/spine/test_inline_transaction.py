"""`Database.inline_transaction`: the same write units as `transaction()`, run on the loop's thread."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sovterm.store.db import Database


async def _unit(conn: Any, key: str) -> list[Any]:
    """A unit written for aiosqlite: awaited execute, named parameters, a cursor as context manager."""
    cur = await conn.execute("INSERT INTO kv(key, value, updated_at) VALUES(?, '1', 0)", (key,))
    assert cur.rowcount == 1
    async with conn.execute("SELECT key FROM kv WHERE key = :key", {"key": key}) as found:
        return list(await found.fetchall())


async def test_a_unit_runs_unchanged_inline_and_commits(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    try:
        async with db.inline_transaction() as conn:
            assert conn.in_transaction
            assert await _unit(conn, "inline") == [("inline",)]
        async with db.transaction() as conn:  # the aiosqlite writer sees it: it was committed
            assert await _unit(conn, "threaded") == [("threaded",)]
        rows = await db.fetchall("SELECT key FROM kv WHERE key IN ('inline', 'threaded') ORDER BY key")
        assert [tuple(r) for r in rows] == [("inline",), ("threaded",)]
    finally:
        await db.close()


async def test_an_error_rolls_everything_back(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    try:
        with pytest.raises(RuntimeError):
            async with db.inline_transaction() as conn:
                await _unit(conn, "a")
                raise RuntimeError("crash between two writes")
        assert await db.fetchone("SELECT 1 FROM kv WHERE key = 'a'") is None
        async with db.inline_transaction() as conn:  # and the connection is usable again
            await _unit(conn, "a")
        assert await db.fetchone("SELECT 1 FROM kv WHERE key = 'a'") is not None
    finally:
        await db.close()


async def test_it_waits_for_the_threaded_writer(tmp_path: Path) -> None:
    """Both writers share one lock: an inline transaction never starts inside a threaded one."""
    db = await Database.open(tmp_path / "s.db")
    order: list[str] = []
    try:
        async def threaded() -> None:
            async with db.transaction() as conn:
                order.append("threaded begins")
                await asyncio.sleep(0.05)
                await conn.execute("INSERT INTO kv(key, value, updated_at) VALUES('t', '1', 0)")
                order.append("threaded commits")

        async def inline() -> None:
            await asyncio.sleep(0.01)
            async with db.inline_transaction() as conn:
                order.append("inline begins")
                await conn.execute("UPDATE kv SET value = '2' WHERE key = 't'")

        await asyncio.gather(threaded(), inline())
        assert order == ["threaded begins", "threaded commits", "inline begins"]
        row = await db.fetchone("SELECT value FROM kv WHERE key = 't'")
        assert row is not None and row[0] == "2"
    finally:
        await db.close()
