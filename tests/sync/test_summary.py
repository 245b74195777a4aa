"""Daily summary mode: the pure rules with the numbers of docs/accounting.md ("Daily summary mode"), and the
engine against the QuickBooks simulator (one document per day after it closes, adjustments, crashes,
the cut-over, the books-match report)."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sovterm.errors import UserFacingError
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.postings import CurrencyContext
from sovterm.sync import items, queue, reconcile, records, summary
from sovterm.sync.engine import EngineSettings, SyncEngine
from sovterm.sync.rules import InvoiceSnap, PaymentSnap, RefundSnap
from tests.sync.helpers import REALM, STORE, docs, invoice, put

BERLIN = summary.zone("Europe/Berlin")
UTC_ZONE = summary.zone("UTC")


def ts(text: str) -> int:
    """A UTC moment, e.g. "2026-01-01 23:30"."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def snap(invoice_id: str, *, status: str = "Settled", extra: str = "None", price: str = "100.00",
         pays: tuple[tuple[str, int, str], ...] = (("onchain", 200_000, "Settled"),), paid_at: str = "2026-01-01 12:00",
         refunds: tuple[RefundSnap, ...] = (), fee_sats: int = 0) -> InvoiceSnap:
    """At 50,000 USD/BTC: 200,000 sats = 100.00."""
    payments = tuple(PaymentSnap(f"{invoice_id}-{n}", m, "BTC", Decimal(s) / 100_000_000, s, st, ts(paid_at),
                                 fee_sats if n == 0 else 0) for n, (m, s, st) in enumerate(pays))
    return InvoiceSnap(STORE, invoice_id, status, extra, "USD", Decimal(price), None, Decimal(50_000),
                       ts(paid_at) - 600, ts(paid_at), payments=payments, refunds=refunds)


# -- day boundaries --------------------------------------------------------------------------------


def test_the_day_is_the_stores_local_day_and_closes_after_local_midnight_plus_the_grace() -> None:
    # 23:30 UTC on 1 January is 00:30 on 2 January in Berlin (UTC+1 in winter)
    assert summary.local_day(ts("2026-01-01 23:30"), UTC_ZONE) == date(2026, 1, 1)
    assert summary.local_day(ts("2026-01-01 23:30"), BERLIN) == date(2026, 1, 2)
    # Berlin's 1 January ends at 23:00 UTC; with the default hour of grace it closes at 00:00 UTC
    assert summary.closes_at(date(2026, 1, 1), BERLIN) == ts("2026-01-02 00:00")
    assert summary.closes_at(date(2026, 1, 1), UTC_ZONE, 0) == ts("2026-01-02 00:00")
    # the night the clocks go forward (29 March 2026) the Berlin day has 23 hours: it ends at 22:00 UTC
    assert summary.closes_at(date(2026, 3, 29), BERLIN, 0) == ts("2026-03-29 22:00")


def test_settings_check_the_zone_and_date_and_default_to_today_there() -> None:
    got = summary.settings({}, None, "Europe/Berlin", None, now=ts("2026-01-01 23:30"))
    assert got == {"summary_from": "2026-01-02", "timezone": "Europe/Berlin", "close_after_s": 3600}
    assert summary.settings({"timezone": "Europe/Berlin"}, "2026-02-01", None, 30)["close_after_s"] == 1800
    with pytest.raises(UserFacingError, match="unknown time zone"):
        summary.settings({}, None, "Mars/Olympus", None)
    with pytest.raises(UserFacingError, match="not a date"):
        summary.settings({}, "01/02/2026", None, None)


# -- an invoice's contribution ------------------------------------------------------------------------


def test_an_invoice_paid_two_ways_is_split_by_the_satoshis_each_method_brought() -> None:
    inv = snap("A", pays=(("onchain", 120_000, "Settled"), ("lightning", 80_000, "Settled")))
    assert summary.method_split(inv, Decimal("100.00")) == {"on-chain": (Decimal("60.00"), 120_000),
                                                             "Lightning": (Decimal("40.00"), 80_000)}
    # thirds: the rounding cent stays with the method that brought most
    inv = snap("B", pays=(("onchain", 100_000, "Settled"), ("lightning", 50_000, "Settled"),
                          ("other", 50_000, "Settled")))
    split = summary.method_split(inv, Decimal("100.01"))
    assert split["on-chain"][0] == Decimal("50.01") and sum(v for v, _ in split.values()) == Decimal("100.01")


def test_targets_of_a_settled_invoice_with_a_fee_and_a_refund() -> None:
    inv = snap("A", pays=(("onchain", 201_000, "Settled"),), fee_sats=1_000,
               refunds=(RefundSnap("pp1", "USD", Decimal("30.00"), ts("2026-01-03 09:00")),))
    got = summary.targets(inv, UTC_ZONE)
    assert got == {
        ("sale", "on-chain", ""): summary.Target(Decimal("100.00"), 200_000, date(2026, 1, 1)),
        ("fee", "", ""): summary.Target(Decimal("0.50"), 0, date(2026, 1, 1)),
        ("refund", "", "pp1"): summary.Target(Decimal("-30.00"), 0, date(2026, 1, 3)),
    }
    assert summary.targets(snap("W", status="Processing"), UTC_ZONE) is None  # BTCPay has not decided


def test_deltas_add_only_what_changed_and_take_back_on_the_day_it_was_booked() -> None:
    day1, day3 = date(2026, 1, 1), date(2026, 1, 3)
    # partial 40.00 booked on day 1; the rest arrives on day 3 (PaidLate 100.00): +60.00 on day 3
    partial = {("sale", "on-chain", ""): (Decimal("40.00"), 80_000, day1)}
    late = summary.targets(snap("A", status="Expired", extra="PaidLate",
                                pays=(("onchain", 80_000, "Settled"), ("onchain", 120_000, "Settled")),
                                paid_at="2026-01-03 08:00"), UTC_ZONE)
    assert late is not None
    assert summary.deltas(late, partial) == [summary.Entry("sale", "on-chain", "", Decimal("60.00"), 120_000, day3)]
    # the same snapshot again: nothing
    assert summary.deltas(late, {("sale", "on-chain", ""): (Decimal("100.00"), 200_000, day3)}) == []
    # invalid after it was booked on day 1: -100.00 on day 1, wherever the invoice is now
    invalid = summary.targets(snap("A", status="Invalid", extra="Marked", paid_at="2026-01-05 08:00"), UTC_ZONE)
    assert invalid == {}
    assert summary.deltas(invalid, {("sale", "on-chain", ""): (Decimal("100.00"), 200_000, day1)}) == [
        summary.Entry("sale", "on-chain", "", Decimal("-100.00"), -200_000, day1)]


def test_day_lines_and_the_document_a_day_becomes() -> None:
    entries = [
        {"invoice_id": "A", "category": "sale", "method": "on-chain", "amount": "100.00", "sats": 200_000},
        {"invoice_id": "B", "category": "sale", "method": "Lightning", "amount": "25.00", "sats": 50_000},
        {"invoice_id": "C", "category": "sale", "method": "Lightning", "amount": "12.50", "sats": 25_000},
        {"invoice_id": "A", "category": "fee", "method": "", "amount": "0.50", "sats": 0},
        {"invoice_id": "D", "category": "refund", "method": "", "amount": "-30.00", "sats": 0},
    ]
    lines = summary.day_lines(entries)
    assert [(x.label, x.amount, x.invoices) for x in lines] == [
        ("on-chain sales", Decimal("100.00"), 1), ("Lightning sales", Decimal("37.50"), 2),
        ("network fees paid by customers", Decimal("0.50"), 1), ("refunds", Decimal("-30.00"), 1)]
    m = StoreMapping(STORE, REALM, "92", "79", "21", "61", fee_collected_account_id="80", class_id="5")
    entity, total, body = summary.summary_body(marker="SVAAAAAAAAAAAAAAAAAAA", day=date(2026, 1, 1), seq=0,
                                               lines=lines, currency="USD", mapping=m,
                                               ctx=CurrencyContext("USD", False), rate=None, note="day")
    assert (entity, total) == ("Deposit", Decimal("108.00"))
    assert body["DepositToAccountRef"] == {"value": "92"} and body["DocNumber"] == "SVAAAAAAAAAAAAAAAAAAA"
    assert [(x["Amount"], x["DepositLineDetail"]["AccountRef"]["value"]) for x in body["Line"]] == [
        (Decimal("100.00"), "79"), (Decimal("37.50"), "79"), (Decimal("0.50"), "80"), (Decimal("-30.00"), "79")]
    # an adjustment that only takes money out (a refund on a closed day): a Purchase out of the bitcoin account
    entity, total, body = summary.summary_body(
        marker="SVAAAAAAAAAAAAAAAAAAB", day=date(2026, 1, 1), seq=1, lines=summary.day_lines(entries[-1:]),
        currency="USD", mapping=m, ctx=CurrencyContext("USD", False), rate=None, note="adj")
    assert (entity, total) == ("Purchase", Decimal("30.00"))
    assert body["AccountRef"] == {"value": "92"} and body["Line"][0]["Amount"] == Decimal("30.00")
    assert body["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"] == {"value": "79"}


# -- the engine against the QuickBooks simulator ------------------------------------------------------


@pytest.fixture(autouse=True)
def settle_at_once(engine) -> None:
    """The daemon lets a closed day's job wait a few seconds for the changes arriving together; not here."""
    engine.days.settle_s = 0


async def summary_mode(db, since: str = "2026-01-01", tz: str = "UTC") -> None:
    await records.set_mode(db, "summary", store_id=STORE, summary={"summary_from": since, "timezone": tz,
                                                                   "close_after_s": 3600})


async def run(engine, db, rounds: int = 20) -> None:
    """Work the queue as the dispatcher would (jobs due now only), with expired leases handed back."""
    for _ in range(rounds):
        await db.write("UPDATE sync_jobs SET lease_until = 0 WHERE state = 'running'")  # their worker died
        await queue.requeue_expired(db)
        await engine.drain()
        due = await db.fetchone("SELECT COUNT(*) FROM sync_jobs WHERE state = 'queued' AND next_run_at <= ?",
                                (time.time(),))
        if not due[0]:
            return


def deposits(state, day: str) -> list[dict]:
    return [d for d in docs(state, "Deposit") + docs(state, "Purchase") if d["TxnDate"] == day]


async def test_a_day_of_invoices_becomes_one_document_after_it_closes_none_before(db, engine, qbo_state):
    now = time.time()
    today = summary.local_day(now, UTC_ZONE)
    await summary_mode(db, since=today.isoformat())
    for n, (method, btc) in enumerate((("BTC-CHAIN", "0.002"), ("BTC-LN", "0.001"), ("BTC-LN", "0.0005"))):
        await put(db, invoice(f"today{n}", amount=str(Decimal(btc) * 50_000), payments=[(method, btc, "Settled")],
                              created=int(now) - 3600))
    await run(engine, db)
    assert deposits(qbo_state, today.isoformat()) == []  # the day is still open
    assert (await queue.counts(db))["queued"] == 1  # its job waits for the close
    # the day closes: its job runs and posts one Deposit with a line per payment method
    engine.days.clock = lambda: summary.closes_at(today, UTC_ZONE) + 1
    await db.write("UPDATE sync_jobs SET next_run_at = 0 WHERE state = 'queued'")
    await run(engine, db)
    [doc] = deposits(qbo_state, today.isoformat())
    assert Decimal(str(doc["TotalAmt"])) == Decimal("175.00")
    assert [(str(x["Amount"]), x["Description"]) for x in doc["Line"]] == [
        ("100.00", "on-chain sales (1 invoice)"), ("75.00", "Lightning sales (2 invoices)")]
    assert "BTCPay daily summary" in doc["PrivateNote"] and "3 invoices, 0.00350000 BTC" in doc["PrivateNote"]
    rows = await records.load_postings(db, STORE, summary.key_of("USD", today))
    assert [(r["kind"], r["seq"], r["status"], r["qbo_id"]) for r in rows] == [("day", 0, "posted", doc["Id"])]
    # no per-invoice documents at all
    assert not docs(qbo_state, "SalesReceipt")
    assert await db.fetchall("SELECT COUNT(*) FROM sync_postings WHERE invoice_id LIKE 'today%'") == [(0,)]


async def test_a_late_payment_on_a_closed_day_posts_one_adjustment_never_an_edit(db, engine, qbo_state):
    await summary_mode(db)
    day1 = ts("2026-01-01 10:00")
    await put(db, invoice("A", created=day1))
    await put(db, invoice("B", created=day1, amount="40.00", status="Expired", extra="PaidPartial",
                          payments=[("BTC-CHAIN", "0.0008", "Settled")]))
    await run(engine, db)
    [first] = deposits(qbo_state, "2026-01-01")
    assert Decimal(str(first["TotalAmt"])) == Decimal("140.00")
    # B's rest arrives, a payment received on 1 January that BTCPay shows only now (PaidLate 100.00)
    await put(db, invoice("B", created=day1, amount="100.00", status="Expired", extra="PaidLate",
                          payments=[("BTC-CHAIN", "0.0008", "Settled"), ("BTC-LN", "0.0012", "Settled")]))
    await run(engine, db)
    docs_day = deposits(qbo_state, "2026-01-01")
    assert len(docs_day) == 2
    adjustment = next(d for d in docs_day if d["Id"] != first["Id"])
    assert Decimal(str(adjustment["TotalAmt"])) == Decimal("60.00")
    assert "adjustment #1" in adjustment["PrivateNote"]
    assert next(d for d in docs_day if d["Id"] == first["Id"])["SyncToken"] == first["SyncToken"]  # untouched
    # a refund made on the closed day, learnt late: a Purchase out of the bitcoin account
    async with db.transaction() as conn:
        await records.record_refund(conn, STORE, "A", "pp1")
        await conn.execute("UPDATE sync_refunds SET currency = 'USD', amount = '30.00', created_at = ?",
                           (ts("2026-01-01 20:00"),))
        await queue.enqueue(conn, STORE, "A")
    await run(engine, db)
    [refund] = [d for d in deposits(qbo_state, "2026-01-01") if "adjustment #2" in d["PrivateNote"]]
    assert "AccountRef" in refund and Decimal(str(refund["TotalAmt"])) == Decimal("30.00")
    report = await reconcile.check(db, books_client(engine), "2026-01-01", "2026-01-01")
    assert report.ok, report.differences
    assert report.days[0]["qbo_sales"] == "200.00" and report.days[0]["qbo_refunds"] == "30.00"
    # the report sees a summary document go missing: the document and each of its invoices
    qbo_state.books[REALM].table("Deposit").pop(adjustment["Id"])
    report = await reconcile.check(db, books_client(engine), "2026-01-01", "2026-01-01")
    assert {(x["invoice_id"], x["problem"]) for x in report.differences} == {
        ("summary:USD:2026-01-01 #1", "no summary document in QuickBooks"),
        ("B", "its daily summaries show 40.00, BTCPay says 100.00")}


def books_client(engine):
    return engine.books.qbo


class Crash(BaseException):
    pass


@pytest.mark.parametrize("step", ["after_intent", "after_qbo"])
async def test_a_crash_at_any_step_of_a_day_posts_it_exactly_once(db, books, qbo_state, step):
    await summary_mode(db)
    for n in range(3):
        await put(db, invoice(f"c{n}", created=ts("2026-01-01 10:00")))
    fired: list[str] = []

    def fault(name: str) -> None:
        if name == step and not fired:
            fired.append(name)
            raise Crash(name)

    crashing = SyncEngine(db, books, EngineSettings(lease_s=30), fault=fault, rng=random.Random(1))
    crashing.days.settle_s = 0
    for job in await queue.claim(db, crashing.owner, limit=10, lease_s=30):
        await crashing.run_job(job)  # the invoices' entries and the day's job queued with them
    [job] = await queue.claim(db, crashing.owner, limit=1, lease_s=30)
    assert summary.is_key(job.invoice_id)
    with pytest.raises(Crash):
        await crashing.run_job(job)
    healthy = SyncEngine(db, books, EngineSettings(lease_s=30))
    await run(healthy, db)
    [doc] = deposits(qbo_state, "2026-01-01")
    assert Decimal(str(doc["TotalAmt"])) == Decimal("300.00")
    rows = await records.load_postings(db, STORE, summary.key_of("USD", date(2026, 1, 1)))
    assert [(r["seq"], r["status"]) for r in rows] == [(0, "posted")]


async def test_the_cut_over_date_before_it_one_document_per_invoice_after_it_the_day(db, engine, qbo_state):
    await summary_mode(db, since="2026-01-02")
    await put(db, invoice("before", created=ts("2026-01-01 10:00")))
    await put(db, invoice("after", created=ts("2026-01-02 10:00")))
    await run(engine, db)
    [receipt] = docs(qbo_state, "SalesReceipt")
    assert "before" in receipt["PrivateNote"]
    assert [d["TxnDate"] for d in docs(qbo_state, "Deposit")] == ["2026-01-02"]
    # an invoice already in a summary stays there when the store goes back to deposit mode
    await records.set_mode(db, "deposit", store_id=STORE)
    engine.forget_store_settings()
    await put(db, invoice("after", created=ts("2026-01-02 10:00"), status="Invalid", extra="Marked"))
    await run(engine, db)
    assert len(docs(qbo_state, "SalesReceipt")) == 1
    [taken_back] = [d for d in docs(qbo_state, "Purchase") if d["TxnDate"] == "2026-01-02"]
    assert Decimal(str(taken_back["TotalAmt"])) == Decimal("100.00")
    stored = json.loads((await db.fetchone("SELECT value FROM kv WHERE key = ?", (records.MODE_KEY + STORE,)))[0])
    assert stored["mode"] == "deposit" and stored["timezone"] == "UTC"
    report = await reconcile.check(db, books_client(engine), "2026-01-01", "2026-01-02")
    assert report.ok, report.differences


async def test_a_day_quickbooks_refuses_keeps_its_invoices_for_the_retry(db, engine, books, qbo_state):
    """A validation fault (here an income account that is gone) drops the document's intent; its entries
    are freed with it, so after the fix the retry posts the whole day once."""
    from dataclasses import replace

    await summary_mode(db)
    for n in range(2):
        await put(db, invoice(f"r{n}", created=ts("2026-01-01 10:00")))
    good = books.mappings[STORE]
    books.mappings[STORE] = replace(good, income_account_id="99999")
    await run(engine, db)
    [dead] = await queue.jobs_in_state(db, "dead")
    assert summary.is_key(dead.invoice_id) and "2500: Invalid Reference Id" in str(dead.last_error)
    assert await db.fetchall("SELECT COUNT(*) FROM sync_summary_entries WHERE doc_seq IS NULL") == [(2,)]
    books.mappings[STORE] = good
    engine.forget_store_settings()
    await queue.retry_dead(db)
    await run(engine, db)
    [doc] = deposits(qbo_state, "2026-01-01")
    assert Decimal(str(doc["TotalAmt"])) == Decimal("200.00")


async def test_an_invoice_carrying_sales_tax_keeps_its_own_document_in_summary_mode(db, engine, qbo_state):
    """A day's summary has no tax line, so a taxed invoice is posted on its own, tax split out, never summed
    into sales."""
    await summary_mode(db, since="2026-01-02")
    await items.set_tax(db, STORE, items.TaxSetting("us", None, {}, None))
    await put(db, invoice("plain", created=ts("2026-01-02 10:00")))
    await put(db, invoice("taxed", created=ts("2026-01-02 11:00"), metadata={"taxIncluded": "8.00"}))
    await run(engine, db)
    [receipt] = docs(qbo_state, "SalesReceipt")
    assert "taxed" in receipt["PrivateNote"] and Decimal(str(receipt["TotalAmt"])) == Decimal("100.00")
    assert Decimal(str(receipt["TxnTaxDetail"]["TotalTax"])) == Decimal("8.00")
    [day] = [d for d in docs(qbo_state, "Deposit") if d["TxnDate"] == "2026-01-02"]
    assert Decimal(str(day["TotalAmt"])) == Decimal("100.00")  # the plain invoice only
