"""Reading snapshots and writing the postings ledger (the sync part's tables in SQLite).

The postings ledger is what makes a crash harmless: a `pending` row (with the exact body, marker and
requestid) is committed before the QuickBooks call, so after any crash the next run knows a document
*may* exist and looks its marker up before sending the same request again.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import aiosqlite

from sovterm.amounts import plain
from sovterm.sync.rules import InvoiceSnap, PaymentSnap, PostedDoc, RefundSnap, Resolution

POSTING_COLUMNS = (
    "store_id", "invoice_id", "kind", "seq", "entity", "amount", "currency", "ref", "marker", "request_id",
    "body", "status", "qbo_id", "sync_token", "txn_date", "review", "void_reason", "created_at", "posted_at",
    "updated_at",
)
MODE_KEY = "sync:mode:"
SINCE_KEY = "sync:since"  # when the sync part first ran: what was paid before is history
BACKFILL_KEY = "sync:backfill"  # the backfill's progress (sync.backfill); summary days wait while it runs
DEFAULT_MODE = {"mode": "deposit", "deposit_as": "salesreceipt"}


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


async def load_snapshot(db: Any, store_id: str, invoice_id: str) -> InvoiceSnap | None:
    row = await db.fetchone(
        "SELECT status, additional_status, currency, amount, paid_amount, created_at, paid_at, order_id, qbo_ref "
        "FROM invoices WHERE store_id = ? AND invoice_id = ?",
        (store_id, invoice_id),
    )
    if row is None:
        return None
    pays = await db.fetchall(
        "SELECT payment_id, payment_method, currency, amount, amount_sats, status, received_at, "
        "COALESCE(fee_sats, 0) FROM invoice_payments "
        "WHERE store_id = ? AND invoice_id = ? ORDER BY received_at, payment_id",
        (store_id, invoice_id),
    )
    rates = await db.fetchall(
        "SELECT rate, paid FROM invoice_payment_methods WHERE store_id = ? AND invoice_id = ? AND currency = 'BTC' "
        "AND rate IS NOT NULL ORDER BY (CAST(COALESCE(paid, '0') AS REAL) > 0) DESC, payment_method_raw",
        (store_id, invoice_id),
    )
    refunds = await db.fetchall(
        "SELECT pull_payment_id, currency, amount, created_at FROM sync_refunds WHERE store_id = ? AND invoice_id = ? "
        "ORDER BY created_at, pull_payment_id",
        (store_id, invoice_id),
    )
    return InvoiceSnap(
        store_id=store_id, invoice_id=invoice_id, status=row[0], additional_status=row[1] or "None",
        currency=(row[2] or "USD").upper(), amount=_dec(row[3]), paid_amount=_dec(row[4]),
        rate=_dec(rates[0][0]) if rates else None, created_at=int(row[5]), paid_at=row[6], order_id=row[7],
        qbo_ref=row[8],
        payments=tuple(PaymentSnap(p[0], p[1], p[2], Decimal(p[3]), p[4], p[5], p[6], p[7]) for p in pays),
        refunds=tuple(RefundSnap(r[0], r[1], _dec(r[2]), r[3]) for r in refunds),
    )


async def load_postings(db: Any, store_id: str, invoice_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        f"SELECT {', '.join(POSTING_COLUMNS)} FROM sync_postings WHERE store_id = ? AND invoice_id = ? "
        "ORDER BY kind, seq",
        (store_id, invoice_id),
    )
    return [dict(zip(POSTING_COLUMNS, r, strict=True)) for r in rows]


def as_posted(rows: list[dict[str, Any]]) -> list[PostedDoc]:
    return [PostedDoc(r["kind"], r["seq"], r["status"], Decimal(r["amount"]), r["entity"], r["ref"]) for r in rows]


async def insert_pending(conn: aiosqlite.Connection, row: dict[str, Any]) -> bool:
    """The intent, committed before the call; False if this exact posting already exists."""
    now = int(time.time())
    full = {**row, "status": "pending", "created_at": now, "updated_at": now}
    names = list(full)
    cur = await conn.execute(
        f"INSERT INTO sync_postings({', '.join(names)}) VALUES({', '.join('?' for _ in names)}) "
        "ON CONFLICT DO NOTHING",
        [full[n] for n in names],
    )
    return cur.rowcount == 1


async def mark_posted(conn: aiosqlite.Connection, store_id: str, invoice_id: str, kind: str, seq: int,
                      qbo_id: str, sync_token: str) -> None:
    now = int(time.time())
    await conn.execute(
        "UPDATE sync_postings SET status = 'posted', qbo_id = ?, sync_token = ?, posted_at = COALESCE(posted_at, ?), "
        "updated_at = ? WHERE store_id = ? AND invoice_id = ? AND kind = ? AND seq = ? AND status = 'pending'",
        (qbo_id, sync_token, now, now, store_id, invoice_id, kind, seq),
    )


async def mark_voiding(conn: aiosqlite.Connection, store_id: str, invoice_id: str, kind: str, seq: int,
                       reason: str) -> None:
    await conn.execute(
        "UPDATE sync_postings SET status = 'voiding', void_reason = ?, updated_at = ? "
        "WHERE store_id = ? AND invoice_id = ? AND kind = ? AND seq = ? AND status = 'posted'",
        (reason, int(time.time()), store_id, invoice_id, kind, seq),
    )


async def mark_voided(conn: aiosqlite.Connection, store_id: str, invoice_id: str, kind: str, seq: int,
                      sync_token: str | None) -> None:
    await conn.execute(
        "UPDATE sync_postings SET status = 'voided', sync_token = COALESCE(?, sync_token), updated_at = ? "
        "WHERE store_id = ? AND invoice_id = ? AND kind = ? AND seq = ?",
        (sync_token, int(time.time()), store_id, invoice_id, kind, seq),
    )


async def drop_pending(conn: aiosqlite.Connection, store_id: str, invoice_id: str, kind: str, seq: int) -> None:
    """QuickBooks refused the create outright: no document exists, forget the intent (a retry rebuilds it)."""
    await conn.execute(
        "DELETE FROM sync_postings WHERE store_id = ? AND invoice_id = ? AND kind = ? AND seq = ? AND status = 'pending'",
        (store_id, invoice_id, kind, seq),
    )


# -- store mode ------------------------------------------------------------------------------------


async def get_mode(db: Any, store_id: str) -> dict[str, Any]:
    for key in (MODE_KEY + store_id, MODE_KEY + "default"):
        row = await db.fetchone("SELECT value FROM kv WHERE key = ?", (key,))
        if row is not None:
            return {**DEFAULT_MODE, **json.loads(row[0])}
    return dict(DEFAULT_MODE)


async def set_mode(db: Any, mode: str, deposit_as: str | None = None, store_id: str | None = None,
                   summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store a mode; `summary` (summary mode only) holds its cut-over `summary_from`, `timezone` and
    `close_after_s`."""
    if mode not in ("deposit", "invoicing", "summary"):
        raise ValueError("mode is deposit, invoicing or summary")
    if deposit_as not in (None, "salesreceipt", "deposit"):
        raise ValueError("deposit_as is salesreceipt or deposit")
    current = await get_mode(db, store_id or "default")
    kept = {k: current[k] for k in ("timezone", "close_after_s") if k in current}  # days already summarised
    value = {"mode": mode, "deposit_as": deposit_as or current["deposit_as"], **kept, **(summary or {})}
    await kv_put(db, MODE_KEY + (store_id or "default"), value)
    return value


async def mark_first_run(db: Any) -> None:
    """Remember when the sync part first ran (kept across restarts)."""
    if await kv_get(db, SINCE_KEY) is None:
        await kv_put(db, SINCE_KEY, int(time.time()))


async def kv_get(db: Any, key: str) -> Any:
    row = await db.fetchone("SELECT value FROM kv WHERE key = ?", (key,))
    return None if row is None else json.loads(row[0])


async def kv_put(db: Any, key: str, value: Any, conn: aiosqlite.Connection | None = None) -> None:
    sql = ("INSERT INTO kv(key, value, updated_at) VALUES(?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
           "value = excluded.value, updated_at = excluded.updated_at")
    params = (key, json.dumps(value, default=str), int(time.time()))
    if conn is not None:
        await conn.execute(sql, params)
    else:
        await db.write(sql, params)


# -- refunds and unmatched ---------------------------------------------------------------------------


async def record_refund(conn: aiosqlite.Connection, store_id: str, invoice_id: str, pull_payment_id: str) -> None:
    await conn.execute(
        "INSERT INTO sync_refunds(store_id, invoice_id, pull_payment_id, created_at) VALUES(?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (store_id, invoice_id, pull_payment_id, int(time.time())),
    )


async def set_refund_amount(commit: Any, store_id: str, invoice_id: str, pull_payment_id: str, currency: str,
                            amount: Decimal) -> None:
    """Through the engine's group commit (`commit.run(unit)`)."""
    async def unit(conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "UPDATE sync_refunds SET currency = ?, amount = ? WHERE store_id = ? AND invoice_id = ? "
            "AND pull_payment_id = ?",
            (currency, plain(amount), store_id, invoice_id, pull_payment_id),  # a BTC refund: never 1E-8
        )

    await commit.run(unit)


async def get_resolution(db: Any, store_id: str, invoice_id: str) -> Resolution | None:
    row = await db.fetchone(
        "SELECT resolution FROM sync_unmatched WHERE store_id = ? AND invoice_id = ? AND resolution IS NOT NULL",
        (store_id, invoice_id),
    )
    if row is None:
        return None
    data = json.loads(row[0])
    if "qbo_invoice" in data:
        return Resolution("qbo_invoice", str(data["qbo_invoice"]))
    if data.get("as_deposit"):
        return Resolution("as_deposit")
    return Resolution("ignore", str(data.get("ignore", "")))


async def set_unmatched(conn: aiosqlite.Connection, store_id: str, invoice_id: str, reason: str | None,
                        amount: Decimal | None, currency: str) -> None:
    """Record (or clear, with reason None) that an invoice waits for the operator."""
    if reason is None:
        await conn.execute(
            "DELETE FROM sync_unmatched WHERE store_id = ? AND invoice_id = ? AND resolution IS NULL",
            (store_id, invoice_id),
        )
        return
    await conn.execute(
        "INSERT INTO sync_unmatched(store_id, invoice_id, reason, amount, currency, created_at) VALUES(?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(store_id, invoice_id) DO UPDATE SET reason = excluded.reason, amount = excluded.amount "
        "WHERE resolution IS NULL",
        (store_id, invoice_id, reason, None if amount is None else str(amount), currency, int(time.time())),
    )


async def resolve(conn: aiosqlite.Connection, store_id: str, invoice_id: str, resolution: dict[str, Any],
                  actor: str) -> None:
    await conn.execute(
        "INSERT INTO sync_unmatched(store_id, invoice_id, reason, created_at, resolution, resolved_by, resolved_at) "
        "VALUES(?, ?, 'resolved by the operator', ?, ?, ?, ?) ON CONFLICT(store_id, invoice_id) DO UPDATE SET "
        "resolution = excluded.resolution, resolved_by = excluded.resolved_by, resolved_at = excluded.resolved_at",
        (store_id, invoice_id, int(time.time()), json.dumps(resolution), actor, int(time.time())),
    )
