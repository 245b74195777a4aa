"""What the ledger says an account holds (sovterm/books/ledger.py): every kind of posting that moves the
bitcoin account becomes a lot or a disposal with the right satoshis and fiat, as of its date."""

from __future__ import annotations

import json
import time
from datetime import date
from decimal import Decimal

from sovterm.books import ledger
from sovterm.books.rules import Disposal, Lot
from sovterm.store.db import Database

S = "S1"
NOW = int(time.time())


async def _posting(db: Database, invoice: str, kind: str, entity: str, amount: str, day: str, *, ref: str | None = None,
                   currency: str = "USD", body: dict | None = None, status: str = "posted", seq: int = 0) -> None:
    await db.write(
        "INSERT INTO sync_postings(store_id, invoice_id, kind, seq, entity, amount, currency, ref, marker, request_id, "
        "body, status, qbo_id, txn_date, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'r', ?, ?, 'Q', ?, ?, ?)",
        (S, invoice, kind, seq, entity, amount, currency, ref, f"M{invoice}{kind}{seq}", json.dumps(body or {}), status,
         day, NOW, NOW))


async def _invoice(db: Database, invoice: str, sats: list[tuple[int, str]], rate: str = "50000") -> None:
    await db.write("INSERT INTO invoices(store_id, invoice_id, status, created_at, status_changed_at, observed_at_ms, "
                   "snapshot_rank, content_hash, updated_at) VALUES(?, ?, 'Settled', ?, 0, 0, 0, 'h', ?)",
                   (S, invoice, NOW, NOW))
    await db.write("INSERT INTO invoice_payment_methods(store_id, invoice_id, payment_method_raw, payment_method, "
                   "currency, rate) VALUES(?, ?, 'BTC-CHAIN', 'onchain', 'BTC', ?)", (S, invoice, rate))
    for i, (n, status) in enumerate(sats):
        await db.write("INSERT INTO invoice_payments(store_id, invoice_id, payment_id, payment_method_raw, "
                       "payment_method, currency, amount, amount_sats, status) VALUES(?, ?, ?, 'BTC-CHAIN', "
                       "'onchain', 'BTC', '0', ?, ?)", (S, invoice, f"p{i}", n, status))


async def test_every_posting_kind_moves_the_right_sats_and_fiat(db: Database) -> None:
    await db.write("INSERT INTO qbo_mappings(store_id, realm_id, deposit_account_id, income_account_id, item_id, "
                   "fee_account_id, updated_at) VALUES(?, 'R', '92', '79', '21', '61', ?)", (S, NOW))
    # A: receipt 100.00 + the customer's network fee 0.50 for 201,000 sats; a payment BTCPay dropped is not counted
    await _invoice(db, "A", [(201_000, "Settled"), (5_000, "Invalid")])
    await _posting(db, "A", "sale", "SalesReceipt", "100.00", "2026-01-05")
    await _posting(db, "A", "fee", "Deposit", "0.50", "2026-01-05")
    # B: 80.00 EUR at 1.0825 USD/EUR (multicurrency) = 86.60 USD, then refunded 0.0004 BTC (RefundReceipt 20.00)
    await _invoice(db, "B", [(160_000, "Settled")])
    await _posting(db, "B", "sale", "SalesReceipt", "80.00", "2026-01-06", currency="EUR",
                   body={"ExchangeRate": "1.0825"})
    await db.write("INSERT INTO sync_refunds(store_id, invoice_id, pull_payment_id, currency, amount, created_at) "
                   "VALUES(?, 'B', 'pp1', 'BTC', '0.0004', ?)", (S, NOW))
    await _posting(db, "B", "refund", "RefundReceipt", "20.00", "2026-01-07", ref="pp1")
    # a payout of 46,154 sats (Transfer 30.00) whose transaction paid a miner fee of 1,410 sats (Purchase 0.92)
    await db.write("INSERT INTO payouts(store_id, payout_id, state, revision, amount_sats, updated_at) "
                   "VALUES(?, 'P', 'Completed', 1, 46154, ?)", (S, NOW))
    await _posting(db, "payout:P", "transfer", "Transfer", "30.00", "2026-01-08", ref="P")
    await db.write("INSERT INTO wallet_entries(store_id, reference, kind, sats, created_at) VALUES(?, 'T1', 'fee', "
                   "-1410, ?)", (S, NOW))
    await _posting(db, "payout:P", "networkfee", "Purchase", "0.92", "2026-01-08", ref="T1")
    # wallet transactions booked by hand: 20,500 sats out (13.32), 10,000 in (6.50)
    for txid, sats, amount in (("W1", -20_500, "13.32"), ("W2", 10_000, "6.50")):
        await db.write("INSERT INTO wallet_entries(store_id, reference, kind, sats, created_at) VALUES(?, ?, 'booked', "
                       "?, ?)", (S, txid, sats, NOW))
        await _posting(db, f"wallet:{txid}", "booked", "Transfer", amount, "2026-01-09", ref=txid)
    # not in QuickBooks (yet): a pending receipt; and one dated after the reporting date
    await _invoice(db, "C", [(1_000, "Settled")])
    await _posting(db, "C", "sale", "SalesReceipt", "0.50", "2026-01-09", status="pending")
    await _invoice(db, "D", [(2_000, "Settled")])
    await _posting(db, "D", "sale", "SalesReceipt", "1.00", "2026-02-01")

    assert await ledger.accounts(db) == {"92": [S]}
    book = await ledger.read(db, "92", [S], "USD", date(2026, 1, 31))
    assert sorted(book.lots, key=lambda lot: lot.ref) == [
        Lot(date(2026, 1, 5), 201_000, Decimal("100.50"), "invoice A"),
        Lot(date(2026, 1, 6), 160_000, Decimal("86.60"), "invoice B"),
        Lot(date(2026, 1, 9), 10_000, Decimal("6.50"), "wallet W2"),
    ]
    assert sorted(book.disposals, key=lambda d: d.ref) == [
        Disposal(date(2026, 1, 8), 1_410, Decimal("0.92"), "network fee T1"),
        Disposal(date(2026, 1, 8), 46_154, Decimal("30.00"), "payout P"),
        Disposal(date(2026, 1, 7), 40_000, Decimal("20.00"), "refund pp1"),
        Disposal(date(2026, 1, 9), 20_500, Decimal("13.32"), "wallet W1"),
    ]
    assert book.notes == []
    carried = ledger.carrying(book, Decimal(0))
    assert carried == Decimal("100.50") + Decimal("86.60") + Decimal("6.50") - Decimal("0.92") - Decimal("30.00") \
        - Decimal("20.00") - Decimal("13.32")


async def test_the_rate_of_the_day_or_the_latest_before(db: Database) -> None:
    for day, rate in (("2026-01-30", "64000"), ("2026-02-02", "66000")):
        await db.write("INSERT INTO books_rates(store_id, day, currency, rate, source, fetched_at) VALUES(?, ?, 'USD', "
                       "?, 'BTCPay store S1 rate BTC_USD', ?)", (S, day, rate, NOW))
    assert await ledger.rate_on(db, [S], "usd", date(2026, 1, 31)) == (Decimal("64000"), "BTCPay store S1 rate BTC_USD",
                                                                        "2026-01-30")
    assert (await ledger.rate_on(db, [S], "USD", date(2026, 2, 2)))[0] == Decimal("66000")
    assert await ledger.rate_on(db, [S], "USD", date(2026, 1, 1)) is None
