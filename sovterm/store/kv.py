"""Small JSON state the daemon keeps between starts (wizard progress, cursors, modes, key lists).

`put` writes inside the caller's transaction when given `conn`, so state changes can commit together
with the rows they describe.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiosqlite

from sovterm.store.db import Database

_UPSERT = (
    "INSERT INTO kv(key, value, updated_at) VALUES(?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)


async def get(db: Database, key: str, default: Any = None) -> Any:
    row = await db.fetchone("SELECT value FROM kv WHERE key = ?", (key,))
    return default if row is None else json.loads(row[0])


async def put(
    db: Database | None, key: str, value: Any, *, conn: aiosqlite.Connection | None = None
) -> None:
    params = (key, json.dumps(value, default=str), int(time.time()))
    if conn is not None:
        await conn.execute(_UPSERT, params)
    else:
        assert db is not None
        await db.write(_UPSERT, params)


async def with_prefix(db: Database, prefix: str) -> dict[str, Any]:
    rows = await db.fetchall(
        "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
    )
    return {r[0]: json.loads(r[1]) for r in rows}
