"""Which completed payouts become a job (Transfer and fee; a refund's payout its fee only): not history, never
twice; and the miner fee of a payout transaction."""

from __future__ import annotations

import time
from decimal import Decimal

from sovterm.sync import payouts, queue, records
from sovterm.sync.engine import EngineSettings, SyncEngine
from tests.sync.helpers import STORE, docs


async def _payout(db, payout_id, *, created_at, pull_payment_id=None, state="Completed", store_id="S"):
    await db.write(
        "INSERT INTO payouts(store_id, payout_id, state, revision, original_amount, original_currency, payout_amount, "
        "payout_currency, pull_payment_id, created_at, completed_at, updated_at) "
        "VALUES(?, ?, ?, 0, '30.00', 'USD', '0.0005', 'BTC', ?, ?, ?, ?)",
        (store_id, payout_id, state, pull_payment_id, created_at, int(time.time()), int(time.time())),
    )
    return {"store_id": store_id, "payout_id": payout_id, "pull_payment_id": pull_payment_id,
            "created_at": created_at}


async def _on_completed(db, row):
    async with db.transaction() as conn:
        return await payouts.on_completed(conn, row)


async def test_only_payouts_since_sync_began_are_queued_refunds_too(db):
    await records.mark_first_run(db)
    since = await records.kv_get(db, records.SINCE_KEY)
    old = await _payout(db, "old", created_at=since - 3600)
    new = await _payout(db, "new", created_at=since + 1)
    refund = await _payout(db, "ref", created_at=since + 1, pull_payment_id="PP1")
    async with db.transaction() as conn:
        await records.record_refund(conn, "S", "INV1", "PP1")
    assert await _on_completed(db, old) is False  # history: the mirror's first poll sees it as new
    assert await _on_completed(db, refund) is True  # its miner fee (the RefundReceipt booked its value)
    assert await payouts.is_refund(db, "S", "PP1") and not await payouts.is_refund(db, "S", None)
    assert await _on_completed(db, new) is True
    assert await _on_completed(db, new) is False  # its job is already waiting
    jobs = await queue.jobs_in_state(db, "queued")
    assert sorted(j.invoice_id for j in jobs) == ["payout:new", "payout:ref"]
    assert await payouts.catch_up(db) == 0  # it has a job: the catch-up adds nothing


async def test_catch_up_queues_a_completed_payout_the_hook_missed(db):
    await records.mark_first_run(db)
    since = await records.kv_get(db, records.SINCE_KEY)
    await _payout(db, "missed", created_at=since + 5)
    await _payout(db, "open", created_at=since + 5, state="AwaitingPayment")
    assert await payouts.catch_up(db) == 1
    assert [j.invoice_id for j in await queue.jobs_in_state(db, "queued")] == ["payout:missed"]
    assert await payouts.catch_up(db) == 0


def test_onchain_fee_is_what_left_the_wallet_beyond_the_payouts():
    # one payout of 50,000 sats: the wallet went down by 51,410 → 1,410 sats to the miners
    assert payouts.onchain_fee_msats(-51_410, [50_000]) == (1_410_000, None)
    # a batch of two payouts: one fee for the transaction
    assert payouts.onchain_fee_msats(-31_500, [20_000, 10_000]) == (1_500_000, None)
    unknown, why = payouts.onchain_fee_msats(-10_000, [20_000])
    assert unknown is None and "cannot be told" in why
    assert payouts.onchain_fee_msats(-10_000, [None]) == (None, "a payout of the transaction has no amount in BTC")
    assert payouts.FeeLookup("h", 2_500).sats == 2 and payouts.FeeLookup("h", 3_500).sats == 4  # half-even


def test_fee_is_valued_at_the_payouts_own_rate():
    """P6, P7 and P11 in docs/accounting.md."""
    p1 = payouts.PayoutSnap("S", "P", "Completed", Decimal("30.00"), "USD", Decimal("0.00046154"), "BTC", None,
                            "bc1q", None)
    assert payouts.fee_value(payouts.FeeLookup("T", 1_410_000), p1, Decimal("30.00")) == Decimal("0.92")
    assert payouts.fee_value(payouts.FeeLookup("H", 20_000), p1, Decimal("30.00")) == Decimal("0.01")
    assert payouts.fee_value(payouts.FeeLookup("H", 3_000), p1, Decimal("30.00")) == Decimal("0.00")
    assert payouts.fee_value(payouts.FeeLookup("T", None, reason="no proof"), p1, Decimal("30.00")) is None


class BatchWallet:
    """One on-chain transaction T paid payouts A and B with a 1,500-sat miner fee (P8)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def payout_fee(self, store_id: str, payout_id: str) -> payouts.FeeLookup:
        self.asked.append(payout_id)
        return payouts.FeeLookup("T" * 64, 1_500_000, ("A", "B"))


async def test_a_transaction_paying_two_payouts_has_its_fee_booked_once(db, books, qbo_state):
    await records.mark_first_run(db)
    since = await records.kv_get(db, records.SINCE_KEY)
    for payout_id in ("A", "B"):
        await _on_completed(db, await _payout(db, payout_id, created_at=since + 1, store_id=STORE))
    wallet = BatchWallet()
    engine = SyncEngine(db, books, EngineSettings(backoff_base_s=0.0, backoff_max_s=0.0), wallet=wallet)
    await engine.drain()
    assert sorted(wallet.asked) == ["A", "B"]
    assert len(docs(qbo_state, "Transfer")) == 2
    fees = docs(qbo_state, "Purchase")
    assert len(fees) == 1 and Decimal(str(fees[0]["TotalAmt"])) == Decimal("0.90")  # 1,500 sats at 60,000
    assert "payout(s) A, B" in fees[0]["PrivateNote"]
    rows = await db.fetchall("SELECT invoice_id, kind FROM sync_postings WHERE kind = 'networkfee'")
    assert len(rows) == 1
    assert [tuple(r) for r in await db.fetchall("SELECT reference, sats FROM wallet_entries")] == [("T" * 64, -1_500)]


NO_PROOF = "BTCPay shows no payment proof for it (marked paid by hand?)"


class NoProofWallet:
    async def payout_fee(self, store_id: str, payout_id: str) -> payouts.FeeLookup:
        return payouts.FeeLookup(None, None, reason=NO_PROOF)


async def test_an_unknown_fee_leaves_the_transfer_flagged_and_guesses_nothing(db, books, qbo_state):
    """P10 in docs/accounting.md."""
    await records.mark_first_run(db)
    since = await records.kv_get(db, records.SINCE_KEY)
    await _on_completed(db, await _payout(db, "M", created_at=since + 1, store_id=STORE))
    engine = SyncEngine(db, books, EngineSettings(backoff_base_s=0.0, backoff_max_s=0.0), wallet=NoProofWallet())
    await engine.drain()
    assert len(docs(qbo_state, "Transfer")) == 1 and docs(qbo_state, "Purchase") == []
    review = await db.fetchall("SELECT kind, review FROM sync_postings WHERE invoice_id = 'payout:M'")
    assert [tuple(r) for r in review] == [("transfer", f"network fee not booked: {NO_PROOF}")]
    entry = await db.fetchall("SELECT reference, sats, note FROM wallet_entries")
    assert [tuple(r) for r in entry] == [("payout:M", None, f"network fee of payout M unknown: {NO_PROOF}")]
