"""The engine against the QuickBooks simulator: exactly once through crashes and faults, failure
handling, the invoice life cycle, invoicing mode, backfill and reconciliation."""

import random
import time
from decimal import Decimal

import pytest

from sovterm.btcpay import ledger
from sovterm.cli.sync import reconcile_text, status_text
from sovterm.errors import UserFacingError
from sovterm.qbo.postings import marker_for
from sovterm.sim.qbo import FaultRule
from sovterm.sync import backfill, queue, reconcile, records
from sovterm.sync.backfill import Backfill
from sovterm.sync.engine import EngineSettings, SyncEngine
from sovterm.sync.service import SyncService
from tests.sync.helpers import REALM, STORE, docs, invoice, put


class Crash(BaseException):
    """Stands for the process dying at that point: nothing after it runs, no handler sees it."""


async def run_all(engine, db, rounds=50):
    for _ in range(rounds):
        await queue.requeue_expired(db, time.time() + 10_000)
        await db.write("UPDATE sync_jobs SET next_run_at = 0 WHERE state = 'queued'")
        if not (await queue.counts(db))["queued"]:
            return
        await engine.drain()


@pytest.mark.parametrize("step", ["before_intent", "after_intent", "after_qbo", "before_complete"])
async def test_crash_at_every_step_never_duplicates_or_loses(db, books, qbo_state, step):
    fired = []

    def fault(name):
        if name == step and not fired:
            fired.append(name)
            raise Crash(name)

    crashing = SyncEngine(db, books, EngineSettings(lease_s=30), fault=fault)
    await put(db, invoice("inv1"))
    [job] = await queue.claim(db, crashing.owner, limit=1, lease_s=30)
    with pytest.raises(Crash):
        await crashing.run_job(job)
    healthy = SyncEngine(db, books, EngineSettings(lease_s=30))
    await run_all(healthy, db)
    assert len(docs(qbo_state, "SalesReceipt")) == 1
    rows = await records.load_postings(db, STORE, "inv1")
    assert [(r["status"], r["seq"]) for r in rows] == [("posted", 0)]
    assert (await queue.counts(db))["done"] >= 1


async def test_dropped_answer_after_commit_is_found_by_marker(db, engine, qbo_state):
    qbo_state.faults.append(FaultRule("drop_after_commit", "salesreceipt", times=1))
    await put(db, invoice("inv1"))
    await run_all(engine, db)
    assert len(docs(qbo_state, "SalesReceipt")) == 1


async def test_faults_at_20_percent_still_post_everything_exactly_once(db, books, qbo_state):
    qbo_state.honor_requestid = False  # the reported Intuit behaviour: the marker must carry it
    for kind in ("429", "500", "timeout", "drop_after_commit"):
        qbo_state.faults.append(FaultRule(kind, probability=0.05))
    engine = SyncEngine(db, books, EngineSettings(workers=4, max_attempts=50, backoff_base_s=0.0,
                                                  backoff_max_s=0.0, lease_s=30), rng=random.Random(3))
    for n in range(40):
        await put(db, invoice(f"inv{n}", amount=f"{10 + n}.00", paid_amount=f"{10 + n}.00"))
    await run_all(engine, db, rounds=200)
    receipts = docs(qbo_state, "SalesReceipt")
    assert len(receipts) == 40 and len({r["DocNumber"] for r in receipts}) == 40
    assert sum(r["TotalAmt"] for r in receipts) == sum(Decimal(10 + n) for n in range(40))
    assert (await queue.counts(db))["dead"] == 0


async def test_validation_error_goes_dead_with_quickbooks_message_and_retry_works(db, engine, books, qbo_state):
    books.mappings[STORE].item_id = "99999"
    await put(db, invoice("inv1"))
    await engine.drain()
    [dead] = await queue.jobs_in_state(db, "dead")
    assert "Invalid Reference Id" in dead.last_error and dead.attempts == 1
    assert await records.load_postings(db, STORE, "inv1") == []  # refused create: no intent left
    books.mappings[STORE].item_id = next(d["Id"] for d in qbo_state.books[books.qbo.realm_id].table("Item").values())
    svc = SyncService(engine)
    assert (await svc.retry(dead.id))["retried"] == 1
    await engine.drain()
    assert len(docs(qbo_state, "SalesReceipt")) == 1


async def test_transient_errors_back_off_then_die_after_max_attempts(db, books, qbo_state):
    qbo_state.faults.append(FaultRule("500", "salesreceipt"))
    engine = SyncEngine(db, books, EngineSettings(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0))
    await put(db, invoice("inv1"))
    await run_all(engine, db)
    [dead] = await queue.jobs_in_state(db, "dead")
    assert dead.attempts == 3 and "gave up after 3 attempts" in dead.last_error


async def test_backoff_grows_and_is_capped():
    rng = random.Random(0)
    delays = [queue.backoff_s(a, 5, 60, rng) for a in range(1, 8)]
    assert delays[0] <= 7.5 and all(d <= 90 for d in delays) and delays[3] >= 20


async def test_reconnect_required_holds_without_burning_attempts(db, engine, books, qbo_state, bus):
    books.ok, books.reason = False, "QuickBooks company must be reconnected"
    await put(db, invoice("inv1"))
    await engine.drain()
    [held] = await queue.jobs_in_state(db, "held")
    assert held.attempts == 0 and "reconnected" in held.last_error
    assert bus.topics("sync.job")[-1]["state"] == "held"
    await engine.tick()  # still not allowed: stays held
    assert (await queue.counts(db))["held"] == 1
    books.ok = True
    assert (await engine.tick())["released"] == 1
    await engine.drain()
    assert len(docs(qbo_state, "SalesReceipt")) == 1


async def test_queue_dedupes_orders_and_serialises_per_invoice(db):
    async with db.transaction() as conn:
        assert await queue.enqueue(conn, STORE, "a")
        assert not await queue.enqueue(conn, STORE, "a")  # same invoice waiting: nothing added
        assert await queue.enqueue(conn, STORE, "b")
    first = await queue.claim(db, "w1", limit=10, lease_s=30)
    assert sorted(j.invoice_id for j in first) == ["a", "b"]
    async with db.transaction() as conn:  # a new event for "a" while it runs: queued, but not claimable
        assert await queue.enqueue(conn, STORE, "a")
    assert await queue.claim(db, "w2", limit=10, lease_s=30) == []
    # the worker of "a" dies: its lease expires, and the waiting twin absorbs it
    assert await queue.requeue_expired(db, time.time() + 60) == 2
    again = await queue.claim(db, "w2", limit=10, lease_s=30, now=time.time() + 60)
    assert sorted(j.invoice_id for j in again) == ["a", "b"]


async def test_renew_fails_once_lease_was_taken(db):
    async with db.transaction() as conn:
        await queue.enqueue(conn, STORE, "a")
    [job] = await queue.claim(db, "w1", limit=1, lease_s=30)
    assert await queue.renew(db, job.id, "w1", 30)
    await queue.requeue_expired(db, time.time() + 60)
    assert not await queue.renew(db, job.id, "w1", 30)


async def test_invoice_life_cycle_partial_late_invalid_resettled(db, engine, qbo_state):
    await put(db, invoice("inv1", status="Expired", extra="PaidPartial", paid_amount="40.00",
                          payments=[("BTC-CHAIN", "0.0008", "Settled")]))
    await engine.drain()
    await put(db, invoice("inv1", status="Expired", extra="PaidLate", paid_amount="100.00",
                          payments=[("BTC-CHAIN", "0.0008", "Settled"), ("BTC-LN", "0.0012", "Settled")]))
    await engine.drain()
    totals = sorted(d["TotalAmt"] for d in docs(qbo_state, "SalesReceipt"))
    assert totals == [Decimal("40.00"), Decimal("60.00")]
    await put(db, invoice("inv1", status="Invalid", extra="Marked"))
    await engine.drain()
    live = [d for d in docs(qbo_state, "SalesReceipt") if d.get("TxnStatus") != "Voided"]
    assert live == []
    rows = await records.load_postings(db, STORE, "inv1")
    assert {r["status"] for r in rows} == {"voided"} and "marked invalid by hand" in rows[0]["void_reason"]
    await put(db, invoice("inv1", status="Settled", extra="Marked"))
    await engine.drain()
    live = [d for d in docs(qbo_state, "SalesReceipt") if d.get("TxnStatus") != "Voided"]
    assert [d["TotalAmt"] for d in live] == [Decimal("100.00")]


async def test_refund_posts_a_refund_receipt(db, engine, qbo_state):
    class Refunds:
        async def pull_payment(self, store_id, pp):
            return "BTC", Decimal("0.0004")

    engine.refunds = Refunds()
    await put(db, invoice("inv1"))
    await engine.drain()
    async with db.transaction() as conn:
        await records.record_refund(conn, STORE, "inv1", "pp1")
        await queue.enqueue(conn, STORE, "inv1")
    await engine.drain()
    [refund] = docs(qbo_state, "RefundReceipt")
    assert refund["TotalAmt"] == Decimal("20.00")


async def test_invoicing_mode_payment_unmatched_and_resolve(db, engine, qbo_state, bus):
    await records.set_mode(db, "invoicing", store_id=STORE)
    await put(db, invoice("inv1", metadata={"orderId": "1001"}))
    await put(db, invoice("inv2", metadata={"orderId": "nope"}))
    await engine.drain()
    [payment] = docs(qbo_state, "Payment")
    qbo_inv = next(d for d in qbo_state.documents(payment and "9341450000000001", "Invoice") if d["DocNumber"] == "1001")
    assert payment["TotalAmt"] == Decimal("100.00") and qbo_inv["Balance"] == Decimal("0.00")
    svc = SyncService(engine)
    [unmatched] = await svc.unmatched()
    assert unmatched["invoice_id"] == "inv2" and "nope" in unmatched["reason"]
    await svc.resolve("inv2", qbo_invoice="1002", as_deposit=False, ignore=None, actor="alice")
    await engine.drain()
    assert len(docs(qbo_state, "Payment")) == 2 and await svc.unmatched() == []
    inv1002 = next(d for d in qbo_state.documents("9341450000000001", "Invoice") if d["DocNumber"] == "1002")
    assert inv1002["Balance"] == Decimal("25.00")  # 125.00 invoice, 100.00 paid: left open


async def test_foreign_currency_without_multicurrency_dead_letters_with_reason(db, engine):
    await put(db, invoice("inv1", currency="EUR"))
    await engine.drain()
    [dead] = await queue.jobs_in_state(db, "dead")
    assert "multicurrency" in dead.last_error


async def _history(db, n):
    from sovterm.btcpay import ledger
    for i in range(n):
        model, methods = invoice(f"old{i}", amount=f"{i + 1}.00", paid_amount=f"{i + 1}.00")
        async with db.transaction() as conn:  # history: in the ledger without jobs
            await ledger.upsert_invoice(conn, STORE, model, methods)


async def test_backfill_batches_resumes_and_skips_what_quickbooks_has(db, books, engine, qbo_state):
    await _history(db, 70)
    # an earlier installation posted old0 already (its database is gone): the lookup must find it
    marker = marker_for("sale", STORE, "old0", 0)
    qbo_state.books[REALM].add("SalesReceipt", {"DocNumber": marker, "PrivateNote": f"sovterm:{marker}",
                                                "TotalAmt": Decimal("1.00")})
    st = await backfill.start(db, "2025-12-01")
    assert st["total"] == 70
    await Backfill(engine).run(max_chunks=1)  # queues them (durably), then the daemon "restarts"
    restarted = SyncEngine(db, books, EngineSettings(workers=4, lease_s=30))
    await restarted.drain()
    st = await Backfill(restarted).run()
    assert st["state"] == "done" and st["done"] == 70
    receipts = docs(qbo_state, "SalesReceipt")
    assert len(receipts) == 70 and len({d["DocNumber"] for d in receipts}) == 70
    requests = [r[3] for r in qbo_state.request_log]
    assert 1 <= requests.count("batch") and requests.count("salesreceipt") < 69  # batches carried most
    assert restarted.documents.sender.stats["found"] == 1 and restarted.documents.sender.stats["lookups"] >= 2
    assert (await queue.counts(db))["dead"] == 0


async def test_backfill_imports_history_once_then_queues_what_it_brought(db, engine, qbo_state):
    calls = []

    async def history(since_s):
        calls.append(since_s)
        await _history(db, 5)
        return 5

    await backfill.start(db, "2025-12-01")
    st = await Backfill(engine, history).run()
    assert calls == [backfill.day_start("2025-12-01")] and st["imported"] and st["total"] == 5
    await engine.drain()
    st = await Backfill(engine, history).run()  # a later tick (or a restart) does not import again
    assert calls == [backfill.day_start("2025-12-01")] and st["state"] == "done" and st["done"] == 5
    assert len(docs(qbo_state, "SalesReceipt")) == 5


async def test_backfill_hands_a_still_confirming_invoice_over_once_and_finishes(db, engine, qbo_state):
    from sovterm.btcpay import ledger
    await _history(db, 2)
    confirming = invoice("late", status="Expired", extra="PaidPartial", payments=[("BTC-CHAIN", "0.001", "Processing")])
    async with db.transaction() as conn:
        await ledger.upsert_invoice(conn, STORE, *confirming)
    await backfill.start(db, "2025-12-01")
    for _ in range(4):  # the sync loop's ticks
        st = await Backfill(engine).run()
        await engine.drain()
    st = await Backfill(engine).run()
    assert st["state"] == "done" and st["done"] == 2 and st["waiting"] == 1
    jobs = await db.fetchall("SELECT COUNT(*) FROM sync_jobs WHERE invoice_id = 'late' AND kind = 'backfill'")
    assert jobs[0][0] == 1  # handed over once, not once per tick
    shown = status_text(await SyncService(engine).status())
    assert "backfill           done since 2025-12-01: 2/3, 1 waiting for BTCPay to confirm a payment" in shown
    # BTCPay confirms the payment: its snapshot queues the invoice like any other, and it posts
    await put(db, invoice("late", status="Expired", extra="PaidPartial", payments=[("BTC-CHAIN", "0.001", "Settled")]))
    await engine.drain()
    assert len(docs(qbo_state, "SalesReceipt")) == 3


async def test_review_list_keeps_flagged_postings_until_marked_reviewed(db, engine, qbo_state):
    for n in range(2):  # customers overpaid by a fifth: booked as received, flagged
        await put(db, invoice(f"over{n}", amount="100.00", paid_amount="120.00"))
    await put(db, invoice("exact"))
    await run_all(engine, db)
    service = SyncService(engine)
    assert [r["invoice_id"] for r in await service.to_review()] == ["over0", "over1"]
    assert (await service.status())["review"] == 2
    assert await service.mark_reviewed("over0", actor="bob") == {"reviewed": 1}
    assert [r["invoice_id"] for r in await service.to_review()] == ["over1"]
    with pytest.raises(UserFacingError, match="nothing of invoice exact is waiting for review"):
        await service.mark_reviewed("exact", actor="bob")
    assert await service.mark_reviewed(None, actor="carol") == {"reviewed": 1}
    assert (await service.status())["review"] == 0
    who = await db.fetchall("SELECT invoice_id, reviewed_by FROM sync_postings WHERE reviewed_at IS NOT NULL "
                            "ORDER BY invoice_id")
    assert [tuple(r) for r in who] == [("over0", "bob"), ("over1", "carol")]


async def test_reconcile_report_matches_then_detects_a_missing_document(db, engine, books, qbo_state):
    for n in range(3):
        await put(db, invoice(f"inv{n}"))
    await engine.drain()
    rep = await reconcile.check(db, books.qbo, "2026-01-01", "2026-01-01")
    assert rep.ok, rep.as_dict()
    assert rep.days[0]["btcpay_sales"] == "300.00" and rep.days[0]["qbo_sales"] == "300.00"
    assert rep.days[0]["currency"] == "USD"
    victim = docs(qbo_state, "SalesReceipt")[0]
    del qbo_state.books["9341450000000001"].table("SalesReceipt")[victim["Id"]]
    rep = await reconcile.check(db, books.qbo, "2026-01-01", "2026-01-01")
    assert not rep.ok and rep.differences[0]["problem"] == "no document in QuickBooks"
    assert "BOOKS DIFFER" in reconcile_text(rep.as_dict())


async def test_status_totals_and_events(db, engine, bus):
    await put(db, invoice("inv1", created=int(time.time()) - 100))
    await engine.drain()
    svc = SyncService(engine)
    st = await svc.status()
    assert {"queued", "running", "dead", "held", "unmatched", "last_poll_age_s", "last_posting_age_s",
            "backfill"} <= set(st)
    assert st["last_posting_age_s"] is not None and st["queued"] == 0
    totals = await svc.totals()
    assert totals["currency"] == "USD" and len(totals["daily"]) == 30 and totals["today"] == "100.00"
    assert totals["d30"] == "100.00"
    job = bus.topics("sync.job")[-1]
    assert job["state"] == "posted" and job["qbo_doc_ids"][0].startswith("SalesReceipt:")
    assert bus.topics("sync.progress") and bus.topics("invoice.updated")
    # one document in a few milliseconds says nothing about a rate (it read "11,392/min" before)
    assert bus.topics("sync.progress")[-1]["rate"] is None and bus.topics("sync.progress")[-1]["done"] == 1


async def test_hooks_enqueue_in_the_callers_transaction(db, engine):
    from sovterm.btcpay.webhooks import parse_event
    svc = SyncService(engine)
    raw = (b'{"deliveryId":"d1","type":"InvoiceRefund","storeId":"StoreA","invoiceId":"inv1",'
           b'"pullPaymentId":"pp9","timestamp":1}')
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await svc.on_event(conn, parse_event(raw))
            raise RuntimeError("the delivery could not be stored")
    assert (await queue.counts(db))["queued"] == 0  # rolled back together
    async with db.transaction() as conn:
        await svc.on_event(conn, parse_event(raw))
    assert (await queue.counts(db))["queued"] == 1
    assert await db.fetchone("SELECT pull_payment_id FROM sync_refunds") == ("pp9",)


async def test_cancelled_lease_renewals_never_leave_the_writer_inside_a_transaction(db):
    """The engine cancels a job's renewal task when the job ends; through the group commit the write
    completes anyway, so the next transaction can begin (a bare `db.transaction()` cancelled during its
    BEGIN would leave one open and every later write would fail)."""
    import asyncio

    from sovterm.store.group_commit import GroupCommit

    await put(db, invoice("inv1"))
    commit = GroupCommit(db)
    [job] = await queue.claim(commit, "w1", limit=1, lease_s=30)
    for delay in range(40):
        task = asyncio.create_task(queue.renew(commit, job.id, "w1", 30))
        for _ in range(delay % 5):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await commit.close()
    assert await db.write("UPDATE sync_jobs SET attempts = 0 WHERE id = ?", (job.id,)) == 1


async def test_network_fee_is_a_deposit_from_the_fees_collected_account(db, engine, books, qbo_state, bus):
    """Paid 0.00201 BTC on-chain, 1,000 sats of it BTCPay's network fee: the price as the store's document, the
    fee (0.50 at 50,000 USD/BTC) as a Deposit; a mapping saved before fees were booked holds the job, and an
    invoice turning invalid takes the fee out again (Deposits are deleted)."""
    mapping = books.mappings[STORE]
    assert mapping.fee_collected_account_id is None  # saved before sovterm booked collected fees
    await put(db, invoice("inv1", payments=[("BTC-CHAIN", "0.00201", "Settled", "0.00001")]))
    await engine.drain()
    [held] = await queue.jobs_in_state(db, "held")
    assert held.attempts == 0 and "--fee-collected-account" in held.last_error and not docs(qbo_state, "SalesReceipt")
    other_income = qbo_state.books[REALM].add("Account", {"Name": "Fees Collected", "AccountType": "Other Income"})
    mapping.fee_collected_account_id = other_income["Id"]
    engine.forget_store_settings()
    assert (await engine.tick())["released"] == 1
    await engine.drain()
    [receipt] = docs(qbo_state, "SalesReceipt")
    [fee] = docs(qbo_state, "Deposit")
    assert receipt["TotalAmt"] == Decimal("100.00") and fee["TotalAmt"] == Decimal("0.50")
    assert fee["Line"][0]["DepositLineDetail"]["AccountRef"]["value"] == other_income["Id"]
    assert fee["DepositToAccountRef"]["value"] == mapping.deposit_account_id
    assert "network fee of 1,000 sats" in fee["PrivateNote"] and "incl. network fee 1,000 sats" in receipt["PrivateNote"]
    await put(db, invoice("inv1", status="Invalid", extra="Marked",
                          payments=[("BTC-CHAIN", "0.00201", "Settled", "0.00001")]))
    await engine.drain()
    assert docs(qbo_state, "Deposit") == []
    rows = await records.load_postings(db, STORE, "inv1")
    assert [(r["kind"], r["status"]) for r in rows] == [("fee", "voided"), ("sale", "voided")]


async def test_backfilled_pay_link_invoice_pays_its_quickbooks_invoice_in_deposit_mode(db, engine, qbo_state):
    """A pay link's invoice (qboInvoiceId) found by a backfill: a Payment to that invoice, as live."""
    target = next(d for d in qbo_state.documents(REALM, "Invoice") if d["DocNumber"] == "1001")
    model, methods = invoice("link1", metadata={"qboInvoiceId": target["Id"], "orderId": "1001"})
    async with db.transaction() as conn:
        await ledger.upsert_invoice(conn, STORE, model, methods)
        assert await queue.enqueue(conn, STORE, "link1", kind=queue.BACKFILL)
    await run_all(engine, db)
    assert [j[0] for j in await db.fetchall("SELECT kind FROM sync_jobs WHERE invoice_id = 'link1'")] == [queue.BACKFILL]
    [payment] = docs(qbo_state, "Payment")
    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": target["Id"], "TxnType": "Invoice"}]
    assert docs(qbo_state, "SalesReceipt") == []
    assert next(d for d in qbo_state.documents(REALM, "Invoice") if d["Id"] == target["Id"])["Balance"] == 0
