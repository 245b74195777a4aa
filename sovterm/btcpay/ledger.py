"""The invoice ledger: the latest BTCPay snapshot of every invoice we know, fed by webhooks and polls.

Ordering rule (why not status rank): BTCPay gives invoices no version or updated-at, and statuses are
not monotonic (RBF moves Processing back to New; manual marking goes Settled → Invalid → Settled). So
a snapshot's version is *when we sent the read* (`observed_at_ms`, our clock, set by `BTCPayClient`):
BTCPay is the single source of truth, so a read sent later reflects at least as much as one sent
earlier that already completed. Only reads that overlapped in flight are ambiguous; for an exact tie
we prefer the snapshot with more payments, then the higher status rank, and the next read converges
anyway. A snapshot older than the stored one is ignored; an equal-content re-read only bumps the
marker and reports "unchanged".
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from sovterm.amounts import plain
from sovterm.btcpay.models import (
    QBO_REF_METADATA_KEY,
    Invoice,
    InvoicePaymentMethod,
    InvoiceStatus,
    PaymentMethodKind,
    PaymentStatus,
    btc_to_sats_rounded,
)

FINAL_STATUSES = (InvoiceStatus.SETTLED.value, InvoiceStatus.INVALID.value)
_UPSERT_READ = (
    "observed_at_ms", "snapshot_rank", "content_hash", "status", "status_changed_at",
    "payment_methods_known",
)
INVOICE_COLUMNS = (
    "store_id", "invoice_id", "status", "additional_status", "invoice_type", "amount", "paid_amount",
    "currency", "checkout_link", "order_id", "buyer_email", "item_desc", "qbo_ref", "metadata",
    "archived", "created_at", "expires_at", "monitoring_expires_at", "paid_at", "status_changed_at",
    "observed_at_ms", "snapshot_rank", "content_hash", "payment_methods_known", "updated_at",
)
PAYMENT_COLUMNS = (
    "store_id", "invoice_id", "payment_id", "payment_method_raw", "payment_method", "currency", "txid",
    "amount", "amount_sats", "fee", "fee_sats", "status", "destination", "received_at",
)
STORE_COLUMNS = ("store_id", "name", "selected", "webhook_id", "settings", "updated_at")
_STATUS_RANK = {"New": 0, "Expired": 1, "Processing": 2, "Invalid": 3, "Settled": 4}


def _dec(value: Any) -> str | None:
    """Decimal text as stored: plain digits, never `1E-8` (see `sovterm.amounts`)."""
    return None if value is None else plain(value)


def _sats(currency: str, value: Any) -> int | None:
    if value is None or currency != "BTC":
        return None
    return btc_to_sats_rounded(value)


def _invoice_fields(invoice: Invoice) -> dict[str, Any]:
    md = invoice.metadata
    qbo = md.get(QBO_REF_METADATA_KEY)
    return {
        "status": invoice.status,
        "additional_status": invoice.additional_status,
        "invoice_type": invoice.type,
        "amount": _dec(invoice.amount),
        "paid_amount": _dec(invoice.paid_amount),
        "currency": invoice.currency,
        "checkout_link": invoice.checkout_link,
        "order_id": _str_or_none(md.get("orderId")),
        "buyer_email": _str_or_none(md.get("buyerEmail")),
        "item_desc": _str_or_none(md.get("itemDesc")),
        "qbo_ref": _str_or_none(qbo),
        "metadata": json.dumps(md, sort_keys=True, separators=(",", ":")),
        "archived": int(invoice.archived),
        "created_at": invoice.created_time,
        "expires_at": invoice.expiration_time,
        "monitoring_expires_at": invoice.monitoring_expiration,
    }


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def _method_rows(methods: Sequence[InvoicePaymentMethod]) -> tuple[list[dict], list[dict]]:
    pm_rows: list[dict] = []
    pay_rows: list[dict] = []
    for m in methods:
        cur = m.payment_currency
        pm_rows.append({
            "payment_method_raw": m.payment_method_id,
            "payment_method": m.kind.value,
            "currency": cur,
            "rate": _dec(m.rate),
            "amount": _dec(m.amount),
            "amount_sats": _sats(cur, m.amount),
            "paid": _dec(m.payment_method_paid),
            "paid_sats": _sats(cur, m.payment_method_paid),
            "due": _dec(m.due),
            "merchant_fee": _dec(m.payment_method_fee),
            "destination": m.destination,
        })
        for p in m.payments:
            txid = p.id
            if m.kind == PaymentMethodKind.ONCHAIN and "-" in p.id:
                txid = p.id.rsplit("-", 1)[0]
            pay_rows.append({
                "payment_id": p.id,
                "payment_method_raw": m.payment_method_id,
                "payment_method": m.kind.value,
                "currency": cur,
                "txid": txid,
                "amount": plain(p.value),
                "amount_sats": _sats(cur, p.value),
                "fee": plain(p.fee),
                "fee_sats": _sats(cur, p.fee),
                "status": p.status,
                "destination": p.destination,
                "received_at": p.received_date,
            })
    pm_rows.sort(key=lambda r: r["payment_method_raw"])
    pay_rows.sort(key=lambda r: (r["payment_method_raw"], r["payment_id"]))
    return pm_rows, pay_rows


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> aiosqlite.Row | None:
    async with conn.execute(sql, tuple(params)) as cur:
        return await cur.fetchone()


async def upsert_invoice(
    conn: aiosqlite.Connection,
    store_id: str,
    invoice: Invoice,
    payment_methods: Sequence[InvoicePaymentMethod] | None = None,
    *,
    observed_at_ms: int | None = None,
) -> bool:
    """Store this snapshot unless an equal-or-newer one is stored; True if anything changed.

    `payment_methods=None` means "not fetched": the stored payment rows are kept. If the invoice
    itself carries `paymentMethods` (list with includePaymentMethods), those are used.
    """
    observed = observed_at_ms if observed_at_ms is not None else invoice.observed_at_ms
    if observed is None:
        raise ValueError("upsert_invoice needs the snapshot's observed_at_ms (set by BTCPayClient)")
    if payment_methods is None:
        payment_methods = invoice.payment_methods
    fields = _invoice_fields(invoice)
    row: Any = await _one(
        conn,
        f"SELECT {', '.join(_UPSERT_READ)} FROM invoices WHERE store_id = ? AND invoice_id = ?",
        (store_id, invoice.id),
    )
    pm_rows = pay_rows = None
    if payment_methods is not None:
        pm_rows, pay_rows = _method_rows(payment_methods)
    n_payments = len(pay_rows) if pay_rows is not None else 0
    rank = n_payments * 10 + _STATUS_RANK.get(invoice.status, 0)
    if row is not None:
        row = dict(zip(_UPSERT_READ, row, strict=True))
    if row is not None and (observed, rank) <= (row["observed_at_ms"], row["snapshot_rank"]):
        return False
    inv_hash = _hash(fields)
    if pm_rows is not None:
        pm_hash = _hash([pm_rows, pay_rows])
    elif row is not None:
        pm_hash = row["content_hash"].partition(":")[2]
    else:
        pm_hash = ""
    content_hash = f"{inv_hash}:{pm_hash}"
    now_ms = int(time.time() * 1000)
    if row is not None and row["content_hash"] == content_hash:
        await conn.execute(
            "UPDATE invoices SET observed_at_ms = ?, snapshot_rank = ? WHERE store_id = ? AND invoice_id = ?",
            (observed, rank, store_id, invoice.id),
        )
        return False
    paid_at = None
    if pay_rows:
        accounted = [p["received_at"] for p in pay_rows
                     if p["status"] != PaymentStatus.INVALID.value and p["received_at"] is not None]
        paid_at = max(accounted) if accounted else None
    status_changed_at = observed
    if row is not None and row["status"] == invoice.status:
        status_changed_at = row["status_changed_at"]
    pm_known = 1 if pm_rows is not None else (row["payment_methods_known"] if row is not None else 0)
    cols = dict(fields)
    cols.update(
        store_id=store_id, invoice_id=invoice.id, status_changed_at=status_changed_at,
        observed_at_ms=observed, snapshot_rank=rank, content_hash=content_hash,
        payment_methods_known=pm_known, updated_at=now_ms // 1000,
    )
    if pay_rows is not None:
        cols["paid_at"] = paid_at
    names = list(cols)
    await conn.execute(
        f"INSERT INTO invoices({', '.join(names)}) VALUES({', '.join('?' for _ in names)}) "
        f"ON CONFLICT(store_id, invoice_id) DO UPDATE SET "
        + ", ".join(f"{n} = excluded.{n}" for n in names if n not in ("store_id", "invoice_id")),
        [cols[n] for n in names],
    )
    if pm_rows is not None and pay_rows is not None:
        await _replace_methods(conn, store_id, invoice.id, pm_rows, pay_rows)
    return True


async def _replace_methods(
    conn: aiosqlite.Connection, store_id: str, invoice_id: str, pm_rows: list[dict], pay_rows: list[dict]
) -> None:
    await conn.execute(
        "DELETE FROM invoice_payment_methods WHERE store_id = ? AND invoice_id = ?", (store_id, invoice_id)
    )
    await conn.execute(
        "DELETE FROM invoice_payments WHERE store_id = ? AND invoice_id = ?", (store_id, invoice_id)
    )
    for table, rows in (("invoice_payment_methods", pm_rows), ("invoice_payments", pay_rows)):
        for r in rows:
            names = ["store_id", "invoice_id", *r]
            await conn.execute(
                f"INSERT INTO {table}({', '.join(names)}) VALUES({', '.join('?' for _ in names)})",
                [store_id, invoice_id, *r.values()],
            )


def _non_final_sql() -> str:
    return (
        "status NOT IN ('Settled', 'Invalid') AND "
        "(status != 'Expired' OR COALESCE(monitoring_expires_at, 0) > ?)"
    )


async def non_final_invoices(db: Any, store_id: str, now_s: int) -> list[str]:
    """Invoices whose state can still change on its own: New, Processing, unknown statuses, and
    Expired ones still inside BTCPay's monitoring window (a late payment can still arrive).

    Settled/Invalid only change by manual marking, which fires a webhook; reconcile covers the rest.
    """
    rows = await db.fetchall(
        f"SELECT invoice_id FROM invoices WHERE store_id = ? AND {_non_final_sql()} ORDER BY created_at",
        (store_id, now_s),
    )
    return [r[0] for r in rows]


async def get_invoice_row(db: Any, store_id: str, invoice_id: str) -> dict[str, Any] | None:
    row = await db.fetchone(
        f"SELECT {', '.join(INVOICE_COLUMNS)} FROM invoices WHERE store_id = ? AND invoice_id = ?",
        (store_id, invoice_id),
    )
    return None if row is None else dict(zip(INVOICE_COLUMNS, row, strict=True))


async def invoice_payments(db: Any, store_id: str, invoice_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        f"SELECT {', '.join(PAYMENT_COLUMNS)} FROM invoice_payments WHERE store_id = ? AND invoice_id = ? "
        "ORDER BY received_at, payment_id",
        (store_id, invoice_id),
    )
    return [dict(zip(PAYMENT_COLUMNS, r, strict=True)) for r in rows]


async def settled_between(db: Any, store_id: str, start_s: int, end_s: int) -> list[dict[str, Any]]:
    """Settled invoices whose last accounted payment arrived in [start_s, end_s] (inclusive)."""
    rows = await db.fetchall(
        f"SELECT {', '.join(INVOICE_COLUMNS)} FROM invoices "
        "WHERE store_id = ? AND status = 'Settled' AND paid_at BETWEEN ? AND ? ORDER BY paid_at",
        (store_id, start_s, end_s),
    )
    return [dict(zip(INVOICE_COLUMNS, r, strict=True)) for r in rows]


async def count_invoices(db: Any, store_id: str) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM invoices WHERE store_id = ?", (store_id,))
    return int(row[0])


async def upsert_store(
    conn: aiosqlite.Connection,
    store_id: str,
    *,
    name: str | None = None,
    selected: bool | None = None,
    webhook_id: str | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Create or update a followed store; fields left None keep their stored value."""
    now = int(time.time())
    await conn.execute(
        "INSERT INTO btcpay_stores(store_id, name, selected, webhook_id, settings, updated_at) "
        "VALUES(?, COALESCE(?, ''), COALESCE(?, 0), ?, COALESCE(?, '{}'), ?) "
        "ON CONFLICT(store_id) DO UPDATE SET name = COALESCE(?, name), selected = COALESCE(?, selected), "
        "webhook_id = COALESCE(?, webhook_id), settings = COALESCE(?, settings), updated_at = ?",
        (
            store_id, name, None if selected is None else int(selected), webhook_id,
            None if settings is None else json.dumps(settings), now,
            name, None if selected is None else int(selected), webhook_id,
            None if settings is None else json.dumps(settings), now,
        ),
    )


async def selected_stores(db: Any) -> list[str]:
    rows = await db.fetchall("SELECT store_id FROM btcpay_stores WHERE selected = 1 ORDER BY store_id")
    return [r[0] for r in rows]


async def store_row(db: Any, store_id: str) -> dict[str, Any] | None:
    row = await db.fetchone(
        f"SELECT {', '.join(STORE_COLUMNS)} FROM btcpay_stores WHERE store_id = ?", (store_id,)
    )
    if row is None:
        return None
    out = dict(zip(STORE_COLUMNS, row, strict=True))
    out["settings"] = json.loads(out["settings"])
    return out
