"""The audit trail: who (Unix user from the socket credentials) did what, to what, with what outcome."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from typing import Any, Protocol

import aiosqlite

from sovterm.store.db import Database

COLUMNS = ("id", "at", "actor", "action", "subject", "detail", "outcome")


class Recorder(Protocol):
    """Writes the audit row of an operator's action whose actor and action the caller already knows (a
    control call's, by the control server); inside `conn` when the row must commit with the change."""

    def __call__(self, subject: str | None, detail: dict[str, Any], outcome: str, *,
                 conn: aiosqlite.Connection | None = None) -> Awaitable[None]: ...


async def record(
    db: Database,
    actor: str,
    action: str,
    subject: str | None,
    detail: dict[str, Any],
    outcome: str,
    *,
    conn: aiosqlite.Connection | None = None,
) -> None:
    sql = "INSERT INTO audit(at, actor, action, subject, detail, outcome) VALUES(?,?,?,?,?,?)"
    params = (int(time.time()), actor, action, subject, json.dumps(detail, default=str), outcome)
    if conn is not None:
        await conn.execute(sql, params)
    else:
        await db.write(sql, params)


async def recent(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY id DESC LIMIT ?", (limit,)
    )
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
