"""Group commit: concurrent writes share transactions, a failing unit costs only itself, and no
caller hears back before its write is committed."""

from __future__ import annotations

import asyncio

import pytest

from sovterm.store.group_commit import GroupCommit


@pytest.mark.parametrize("inline", [False, True], ids=["threaded", "inline"])
async def test_concurrent_units_share_transactions_and_a_failure_stays_alone(db, inline):
    commit = GroupCommit(db, inline=inline)
    committed_when_answered: list[bool] = []

    def unit(n: int):
        async def write(conn) -> int:
            await conn.execute("INSERT INTO kv(key, value, updated_at) VALUES(?, '1', 0)", (f"k{n}",))
            if n == 7:
                raise RuntimeError("handler bug")
            return n
        return write

    async def call(n: int):
        try:
            result = await commit.run(unit(n))
        except RuntimeError:
            return "failed"
        row = await db.fetchone("SELECT 1 FROM kv WHERE key = ?", (f"k{n}",))  # reader sees committed data only
        committed_when_answered.append(row is not None)
        return result

    results = await asyncio.gather(*(call(n) for n in range(20)))
    assert results == [n if n != 7 else "failed" for n in range(20)]
    assert all(committed_when_answered) and len(committed_when_answered) == 19
    keys = {r[0] for r in await db.fetchall("SELECT key FROM kv WHERE key LIKE 'k%'")}
    assert keys == {f"k{n}" for n in range(20) if n != 7}
    # the units taken with the failing one were replayed alone; the others still shared a transaction
    assert commit.batches < 19


@pytest.mark.parametrize("inline", [False, True], ids=["threaded", "inline"])
async def test_units_in_one_batch_share_one_commit(db, inline):
    commit = GroupCommit(db, inline=inline)

    async def write(conn) -> None:
        await conn.execute("INSERT INTO kv(key, value, updated_at) VALUES(hex(randomblob(8)), '1', 0)")

    await asyncio.gather(*(commit.run(write) for _ in range(50)))
    assert commit.batches == 1
    await commit.close()
