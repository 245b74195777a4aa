"""Completed BTCPay payouts become one QuickBooks Transfer each, and their network fee an expense
(see docs/accounting.md, "Payouts").

Bitcoin leaving through a payout leaves the bitcoin asset account for a clearing account ("Bitcoin
Payouts Clearing", created on first use by `sync.documents`) from which the accountant books where it went (an exchange,
a supplier, the owner). A payout is queued as a sync job keyed `payout:<id>` in the transaction that
first records it as Completed, so it goes through the same ledger, markers and retries as invoices.

Refund payouts get no Transfer: the RefundReceipt for the refund already took that value out of the
asset account, and a Transfer on top would count it twice. A payout is a refund payout when its pull
payment is one BTCPay created for an invoice refund (`sync_refunds`, filled by `InvoiceRefund`).

Every payout's network fee (refunds too: the wallet paid it) is a Purchase out of the asset account to
the mapped fee account. BTCPay's payout has no fee field: it is read from the wallet (`WalletFees`, see
`FeeLookup`). A transaction paying several payouts has its fee booked once, whole, with the first of them
sovterm books (its marker is the transaction's); the fee is never split or guessed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiosqlite

from sovterm.amounts import msats_to_sats, plain
from sovterm.sync import queue, records, rules

log = logging.getLogger("sovterm.sync.payouts")

PREFIX = "payout:"
TRANSFER = "transfer"
FEE = "networkfee"
SATS_PER_BTC = Decimal(100_000_000)
MSATS_PER_BTC = Decimal(100_000_000_000)


def job_key(payout_id: str) -> str:
    return PREFIX + payout_id


def is_payout_key(key: str) -> bool:
    return key.startswith(PREFIX)


@dataclass(frozen=True)
class PayoutSnap:
    store_id: str
    payout_id: str
    state: str
    original_amount: Decimal | None
    original_currency: str | None
    payout_amount: Decimal | None
    payout_currency: str | None
    pull_payment_id: str | None
    destination: str | None
    completed_at: int | None
    payout_method: str | None = None


def _dec(v: Any) -> Decimal | None:
    return None if v in (None, "") else Decimal(str(v))


async def load(db: Any, store_id: str, payout_id: str) -> PayoutSnap | None:
    row = await db.fetchone(
        "SELECT state, original_amount, original_currency, payout_amount, payout_currency, pull_payment_id, "
        "destination, completed_at, payment_method FROM payouts WHERE store_id = ? AND payout_id = ?",
        (store_id, payout_id),
    )
    if row is None:
        return None
    return PayoutSnap(store_id, payout_id, row[0], _dec(row[1]), (row[2] or "").upper() or None, _dec(row[3]),
                      (row[4] or "").upper() or None, row[5], row[6], row[7], row[8])


async def is_refund(db: Any, store_id: str, pull_payment_id: str | None) -> bool:
    if not pull_payment_id:
        return False
    sql = "SELECT 1 FROM sync_refunds WHERE store_id = ? AND pull_payment_id = ?"
    return await db.fetchone(sql, (store_id, pull_payment_id)) is not None


async def on_completed(conn: aiosqlite.Connection, row: dict[str, Any]) -> bool:
    """Inside the transaction that first records the payout as Completed: queue its Transfer and fee (a
    refund's payout: its fee only). Payouts created before sovterm's sync first ran are history (the
    mirror's first poll sees them all)."""
    async with conn.execute("SELECT value FROM kv WHERE key = ?", (records.SINCE_KEY,)) as cur:
        since = await cur.fetchone()
    if since is None or int(row.get("created_at") or 0) < int(json.loads(since[0])):
        return False
    return await queue.enqueue(conn, row["store_id"], job_key(row["payout_id"]), payload={"cause": "payout completed"})


async def catch_up(db: Any) -> int:
    """Queue Transfers for completed payouts (created since the sync part first ran) that have neither a
    job nor a posting: covers a payout completed while the daemon started, before the hook was attached."""
    since = await records.kv_get(db, records.SINCE_KEY)
    if since is None:
        return 0
    rows = await db.fetchall(
        "SELECT p.store_id, p.payout_id, p.pull_payment_id, p.created_at FROM payouts p WHERE p.state = 'Completed' "
        "AND COALESCE(p.created_at, 0) >= ? AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.store_id = p.store_id "
        "AND j.invoice_id = 'payout:' || p.payout_id) AND NOT EXISTS (SELECT 1 FROM sync_postings s "
        "WHERE s.store_id = p.store_id AND s.invoice_id = 'payout:' || p.payout_id)",
        (int(since),),
    )
    n = 0
    if rows:
        async with db.transaction() as conn:
            for store_id, payout_id, pp, created in rows:
                n += await on_completed(conn, {"store_id": store_id, "payout_id": payout_id, "pull_payment_id": pp,
                                               "created_at": created})
    return n


async def store_btc_rate(db: Any, store_id: str, currency: str, before: int | None) -> tuple[Decimal, str] | None:
    """The BTC rate (in `currency`) of the store's latest settled invoice up to `before`: the value the
    books last gave one bitcoin of this store."""
    row = await db.fetchone(
        "SELECT m.rate, i.invoice_id FROM invoices i JOIN invoice_payment_methods m ON m.store_id = i.store_id "
        "AND m.invoice_id = i.invoice_id WHERE i.store_id = ? AND i.status = 'Settled' AND upper(i.currency) = ? "
        "AND m.currency = 'BTC' AND m.rate IS NOT NULL AND COALESCE(i.paid_at, i.created_at) <= ? "
        "ORDER BY COALESCE(i.paid_at, i.created_at) DESC LIMIT 1",
        (store_id, currency.upper(), before if before is not None else int(time.time())),
    )
    return None if row is None else (Decimal(str(row[0])), str(row[1]))


def describe(p: PayoutSnap, note: str) -> str:
    btc = f"{plain(p.payout_amount)} {p.payout_currency}" if p.payout_amount is not None else "amount unknown"
    text = (f"BTCPay payout {p.payout_id} (store {p.store_id}): {btc} to {p.destination or 'unknown destination'}"
            f"; {note}")
    return text[:4000]


@dataclass(frozen=True)
class FeeLookup:
    """What the wallet says a payout's transaction cost in network fees. `msats` None: unknown, `reason`
    says why (no proof, the key may not read the wallet, the numbers do not add up)."""

    reference: str | None  # on-chain txid or Lightning payment hash (the proof)
    msats: int | None
    payout_ids: tuple[str, ...] = ()  # every payout the transaction paid
    reason: str | None = None

    @property
    def sats(self) -> int | None:
        return None if self.msats is None else msats_to_sats(self.msats)


def onchain_fee_msats(balance_change_sats: int, paid_out_sats: list[int | None]) -> tuple[int | None, str | None]:
    """The miner fee of a wallet transaction that paid payouts: what left the wallet beyond the payouts'
    amounts (the change output came back, so it is not in the balance change). (msats, None) or (None, why)."""
    if any(s is None for s in paid_out_sats):
        return None, "a payout of the transaction has no amount in BTC"
    fee = -balance_change_sats - sum(s for s in paid_out_sats if s is not None)
    if fee < 0:
        return None, (f"the transaction changed the wallet by {balance_change_sats} sats, less than its payouts "
                      f"({sum(s for s in paid_out_sats if s is not None)} sats): it also received, so its fee "
                      "cannot be told")
    return fee * 1000, None


async def record_fee(conn: aiosqlite.Connection, store_id: str, fee: FeeLookup, payout_id: str) -> None:
    """The wallet entry of a payout transaction's fee, once per transaction (kept if an earlier run or another
    payout of the same batch recorded it). An unknown fee is recorded too (NULL sats, with why)."""
    reference = fee.reference or job_key(payout_id)
    note = (f"network fee of payout(s) {', '.join(fee.payout_ids or (payout_id,))}" if fee.sats is not None
            else f"network fee of payout {payout_id} unknown: {fee.reason}")
    await conn.execute(
        "INSERT INTO wallet_entries(store_id, reference, kind, sats, note, created_at) VALUES(?, ?, 'fee', ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (store_id, reference, None if fee.sats is None else -fee.sats, note, int(time.time())),
    )


def fee_value(fee: FeeLookup, p: PayoutSnap, payout_value: Decimal) -> Decimal | None:
    """The fee in the home currency at the payout's own rate (its book value per BTC paid out); None when
    the fee or the payout's BTC amount is unknown."""
    if fee.msats is None or p.payout_currency != "BTC" or not p.payout_amount:
        return None
    return rules.cents(Decimal(fee.msats) / MSATS_PER_BTC * payout_value / p.payout_amount)


def describe_fee(p: PayoutSnap, fee: FeeLookup, value: Decimal, home: str) -> str:
    what = "routing fee of Lightning payment" if (p.payout_method or "").upper().endswith("LN") else \
        "miner fee of transaction"
    paid = ", ".join(fee.payout_ids or (p.payout_id,))
    sats = Decimal(fee.msats or 0) / 1000
    return (f"Network fee, BTCPay store {p.store_id}: {sats.normalize():f} sats, {what} {fee.reference} paying "
            f"payout(s) {paid}; {value} {home} at the rate payout {p.payout_id} was booked at")[:4000]
