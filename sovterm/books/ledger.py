"""What sovterm's own ledger says each bitcoin asset account holds: the lots (satoshis in, and the fiat
booked for them) and disposals (satoshis out, and the fiat booked for them leaving), read from the
postings ledger (what is in QuickBooks) and BTCPay's tables (how many satoshis each document moved).

Per store, its mapped bitcoin account (`qbo_mappings.deposit_account_id`); stores sharing an account
share its lots. Only postings QuickBooks holds (`posted`) count, as of their `TxnDate`:

| posting (kind) | satoshis | fiat |
|---|---|---|
| sale, payment, fee of an invoice | lot: the invoice's payments BTCPay still counts (gross, fee included) | cost: the documents' amounts |
| refund (RefundReceipt) | disposal: the pull payment's BTC, else its completed payout's, else the fiat at the invoice's rate | proceeds: its amount |
| transfer (a payout's Transfer) | disposal: the payout's satoshis | proceeds: its amount |
| networkfee (a payout transaction's Purchase) | disposal: the fee's satoshis (`wallet_entries`) | proceeds: its amount |
| booked (a wallet transaction booked by hand) | its satoshis: a lot when it came in, a disposal when it left | its amount |

Amounts in another currency than the home currency are converted with the document's `ExchangeRate`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sovterm.books.rules import SATS_PER_BTC, Disposal, Lot, cents

INFLOW_KINDS = ("sale", "payment", "fee")


@dataclass
class AccountLedger:
    account_id: str
    stores: list[str]
    lots: list[Lot] = field(default_factory=list)
    disposals: list[Disposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be counted, and why


def _home_amount(amount: str, currency: str, body: str, home: str) -> Decimal:
    value = Decimal(amount)
    if currency.upper() == home.upper():
        return value
    rate = json.loads(body).get("ExchangeRate")
    return cents(value * Decimal(str(rate))) if rate is not None else value


def _btc_sats(amount: Decimal) -> int:
    return int((amount * SATS_PER_BTC).to_integral_value(rounding=ROUND_HALF_EVEN))


async def accounts(db: Any) -> dict[str, list[str]]:
    """{bitcoin account id: [store ids mapped to it]}."""
    out: dict[str, list[str]] = defaultdict(list)
    for store_id, account_id in await db.fetchall(
            "SELECT store_id, deposit_account_id FROM qbo_mappings ORDER BY store_id"):
        out[str(account_id)].append(store_id)
    return dict(out)


async def read(db: Any, account_id: str, stores: list[str], home: str, as_of: date) -> AccountLedger:
    """The account's lots and disposals dated up to `as_of`."""
    ledger = AccountLedger(account_id, stores)
    for store_id in stores:
        await _store(db, ledger, store_id, home, as_of.isoformat())
    return ledger


async def _store(db: Any, ledger: AccountLedger, store_id: str, home: str, as_of: str) -> None:
    rows = await db.fetchall(
        "SELECT invoice_id, kind, ref, amount, currency, body, txn_date FROM sync_postings WHERE store_id = ? "
        "AND status = 'posted' AND txn_date <= ? ORDER BY txn_date, invoice_id, kind, seq", (store_id, as_of))
    inflow: dict[str, list[Any]] = {}
    for invoice_id, kind, ref, amount, currency, body, day in rows:
        value = _home_amount(amount, currency, body, home)
        when = date.fromisoformat(day)
        if kind in INFLOW_KINDS:
            first = inflow.setdefault(invoice_id, [when, Decimal(0)])
            first[1] += value
        elif kind == "refund":
            sats = await _refund_sats(db, store_id, invoice_id, ref)
            if sats is None:
                ledger.notes.append(f"refund {ref} of invoice {invoice_id}: satoshis unknown, not counted")
            else:
                ledger.disposals.append(Disposal(when, sats, value, f"refund {ref}"))
        elif kind == "transfer":
            row = await db.fetchone("SELECT amount_sats, payout_amount, payout_currency FROM payouts "
                                    "WHERE store_id = ? AND payout_id = ?", (store_id, ref))
            sats = row[0] if row and row[0] is not None else (
                _btc_sats(Decimal(row[1])) if row and row[1] and (row[2] or "").upper() == "BTC" else None)
            if sats is None:
                ledger.notes.append(f"payout {ref}: satoshis unknown, not counted")
            else:
                ledger.disposals.append(Disposal(when, int(sats), value, f"payout {ref}"))
        elif kind in ("networkfee", "booked"):
            entry = await db.fetchone("SELECT sats FROM wallet_entries WHERE store_id = ? AND reference = ? "
                                      "AND kind = ?", (store_id, ref, "fee" if kind == "networkfee" else "booked"))
            if entry is None or entry[0] is None:
                ledger.notes.append(f"wallet transaction {ref}: satoshis unknown, not counted")
            elif entry[0] > 0:
                ledger.lots.append(Lot(when, int(entry[0]), value, f"wallet {ref}"))
            else:
                ledger.disposals.append(Disposal(when, -int(entry[0]), value,
                                                 f"{'network fee' if kind == 'networkfee' else 'wallet'} {ref}"))
    if not inflow:
        return
    sats_of = dict(await db.fetchall(
        "SELECT invoice_id, COALESCE(SUM(amount_sats), 0) FROM invoice_payments WHERE store_id = ? "
        "AND currency = 'BTC' AND status != 'Invalid' GROUP BY invoice_id", (store_id,)))
    for invoice_id, (when, cost) in inflow.items():
        ledger.lots.append(Lot(when, int(sats_of.get(invoice_id, 0)), cost, f"invoice {invoice_id}"))


async def _refund_sats(db: Any, store_id: str, invoice_id: str, pull_payment_id: str | None) -> int | None:
    row = await db.fetchone("SELECT currency, amount FROM sync_refunds WHERE store_id = ? AND invoice_id = ? "
                            "AND pull_payment_id = ?", (store_id, invoice_id, pull_payment_id))
    if row is None or row[1] is None:
        return None
    currency, amount = (row[0] or "").upper(), Decimal(row[1])
    if currency == "BTC":
        return _btc_sats(amount)
    paid = await db.fetchone("SELECT amount_sats FROM payouts WHERE store_id = ? AND pull_payment_id = ? "
                             "AND state = 'Completed' AND amount_sats IS NOT NULL", (store_id, pull_payment_id))
    if paid is not None:
        return int(paid[0])
    rate = await db.fetchone("SELECT rate FROM invoice_payment_methods WHERE store_id = ? AND invoice_id = ? "
                             "AND currency = 'BTC' AND rate IS NOT NULL LIMIT 1", (store_id, invoice_id))
    return None if rate is None else _btc_sats(amount / Decimal(rate[0]))


async def remeasured(db: Any, account_id: str, as_of: date) -> Decimal:
    """The remeasurements already in QuickBooks for the account up to `as_of` (signed)."""
    rows = await db.fetchall("SELECT amount FROM books_remeasurements WHERE account_id = ? AND status = 'posted' "
                             "AND period <= ?", (account_id, as_of.isoformat()))
    return sum((Decimal(r[0]) for r in rows), Decimal(0))


def carrying(ledger: AccountLedger, remeasurements: Decimal) -> Decimal:
    """What the books hold in the account: fiat booked in, less fiat booked out, plus remeasurements."""
    booked_in = sum((lot.cost for lot in ledger.lots), Decimal(0))
    booked_out = sum((d.proceeds for d in ledger.disposals), Decimal(0))
    return booked_in - booked_out + remeasurements


async def rate_on(db: Any, stores: list[str], currency: str, as_of: date) -> tuple[Decimal, str, str] | None:
    """(rate, source, day) recorded for the account's stores on `as_of`, or the latest day before it."""
    marks = ", ".join("?" for _ in stores)
    row = await db.fetchone(
        f"SELECT rate, source, day FROM books_rates WHERE store_id IN ({marks}) AND currency = ? AND day <= ? "
        "ORDER BY day DESC, store_id LIMIT 1", (*stores, currency.upper(), as_of.isoformat()))
    return None if row is None else (Decimal(row[0]), str(row[1]), str(row[2]))
