"""The audit trail: who (Unix user from the socket credentials) did what, to what, with what outcome."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiosqlite

from sovterm.store.db import Database

log = logging.getLogger("sovterm.audit")

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


def reload_detail(answer: dict[str, Any]) -> dict[str, Any]:
    """What a reload changed, for its audit row; the error text stays in the log (it may quote a value)."""
    return {"applied": answer.get("applied", []), "restart_needed": answer.get("restart_needed", []),
            "invalid": "error" in answer}


@dataclass
class _Window:
    """What one kind of security event did within the current window."""

    started: float
    written: int = 0
    suppressed: int = 0
    count: int = 0
    reported: bool = False
    reasons: Counter[str] = field(default_factory=Counter)
    stores: Counter[str] = field(default_factory=Counter)


def _bump(counter: Counter[str], key: str, *, limit: int = 20) -> None:
    """Count `key` (truncated, never trusted) among at most `limit` distinct keys; the rest as "other"."""
    key = key[:64]
    counter[key if key in counter or len(counter) < limit else "other"] += 1


class SecurityEvents:
    """Security events into the audit trail, bounded so that a flood of them cannot fill the disk.

    Each kind of event (action, actor) writes at most `burst` rows a window; those past it are counted
    into the next row written (`detail.suppressed`). Refused webhooks, unauthenticated and many, write
    one row when `webhook_threshold` of them are refused within a window, with counts by reason and store.
    """

    WINDOW_S = 600.0
    MAX_KINDS = 256

    def __init__(self, db: Callable[[], Database | None], *, burst: int = 10, webhook_threshold: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self.burst = burst
        self.webhook_threshold = webhook_threshold
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, kind: tuple[str, str]) -> _Window:
        now = self._clock()
        window = self._windows.get(kind)
        if window is None or now - window.started >= self.WINDOW_S:
            if len(self._windows) >= self.MAX_KINDS:
                self._windows = {k: w for k, w in self._windows.items() if now - w.started < self.WINDOW_S}
            suppressed = window.suppressed if window is not None else 0
            window = self._windows[kind] = _Window(now, suppressed=suppressed)
        return window

    async def write(self, actor: str, action: str, subject: str | None, detail: dict[str, Any],
                    outcome: str = "refused", *, conn: Any = None, burst: int | None = None) -> None:
        """One security event (the control server's `AuditWriter` shape); never raises. An event anyone
        on the internet can cause passes `burst=1`: one row a window, the rest counted into it."""
        window = self._window((action, actor))
        if window.written >= (self.burst if burst is None else burst):
            window.suppressed += 1
            return
        window.written += 1
        if window.suppressed:
            detail = {**detail, "suppressed": window.suppressed}
            window.suppressed = 0
        await self._record(actor, action, subject, detail, outcome)

    async def webhook_refused(self, store_id: str, reason: str) -> None:
        """A refused BTCPay delivery: one audit row once `webhook_threshold` are refused in a window."""
        window = self._window(("btcpay.webhook_refusals", "webhook"))
        window.count += 1
        _bump(window.reasons, reason.split(":", 1)[0])
        _bump(window.stores, store_id)
        if window.count >= self.webhook_threshold and not window.reported:
            window.reported = True
            detail = {"refused": window.count, "window_s": int(self.WINDOW_S),
                      "reasons": dict(window.reasons), "stores": dict(window.stores)}
            await self._record("webhook", "btcpay.webhook_refusals", None, detail, "refused")

    async def _record(self, actor: str, action: str, subject: str | None, detail: dict[str, Any],
                      outcome: str) -> None:
        db = self._db()
        if db is None:
            return
        try:
            await record(db, actor[:64], action, subject[:200] if subject else subject, detail, outcome)
        except Exception:  # an audit row must never turn a refusal into a crash
            log.exception("could not write the security event %s", action)
