"""The per-day aggregates give exactly the report the raw rows give, on random ledgers whose invoices change
status (settled → invalid, an expired invoice paid late, payments invalidated), part counted by the
backfill and part by the intake's port, in zones whose days are not UTC's."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovterm.analytics import aggregates
from sovterm.analytics.service import Analytics
from sovterm.store.db import Database

EPOCH = datetime(2026, 9, 1, tzinfo=UTC)
DAY = 86400
STORES = ("S1", "S2")
ZONES = ("UTC", "America/New_York", "Asia/Kolkata")
METHODS = (("BTC-CHAIN", "onchain"), ("BTC-LN", "lightning"), ("CASHU", "other"))


@dataclass(frozen=True)
class Pay:
    method: int
    sats: int
    status: str
    after_s: int


@dataclass(frozen=True)
class State:
    status: str
    additional: str
    paid: str | None
    payments: tuple[Pay, ...]


@dataclass(frozen=True)
class Inv:
    store: str
    currency: str
    amount: str | None
    created_s: int
    item: str | None
    states: tuple[State, ...]  # the first is backfilled, the others arrive through the intake


pays = st.builds(Pay, st.integers(0, 2), st.integers(1, 5_000_000), st.sampled_from(["Settled", "Settled", "Invalid"]),
                 st.integers(0, 50 * DAY))
states = st.builds(
    State,
    st.sampled_from(["New", "Processing", "Settled", "Settled", "Expired", "Invalid"]),
    st.sampled_from(["None", "PaidPartial", "PaidOver", "PaidLate", "Marked"]),
    st.one_of(st.none(), st.decimals("0", "500", places=2).map(str), st.just("1.5"), st.just("0")),
    st.lists(pays, max_size=3).map(tuple),
)
invoices = st.builds(
    Inv, st.sampled_from(STORES), st.sampled_from(["USD", "USD", "EUR", "BTC"]),
    st.one_of(st.none(), st.decimals("0.01", "900", places=2).map(str), st.just("12")),
    st.integers(0, 90 * DAY), st.sampled_from([None, "LATTE", "MUG", "CAKE"]),
    st.lists(states, min_size=1, max_size=3).map(tuple),
)


async def _write(conn: object, n: int, inv: Inv, state: State, step: int) -> None:
    created = int(EPOCH.timestamp()) + inv.created_s
    accounted = [created + p.after_s for p in state.payments if p.status != "Invalid"]
    await conn.execute(  # type: ignore[attr-defined]
        "INSERT OR REPLACE INTO invoices(store_id, invoice_id, status, additional_status, amount, paid_amount, "
        "currency, metadata, created_at, paid_at, status_changed_at, observed_at_ms, snapshot_rank, content_hash, "
        "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (inv.store, f"i{n}", state.status, state.additional, inv.amount, state.paid, inv.currency,
         json.dumps({"itemCode": inv.item} if inv.item else {}), created, max(accounted) if accounted else None,
         (created + step * 3 * DAY) * 1000, step, 0, "h", created))
    for table in ("invoice_payments", "invoice_payment_methods"):
        await conn.execute(f"DELETE FROM {table} WHERE store_id = ? AND invoice_id = ?",  # type: ignore[attr-defined]
                           (inv.store, f"i{n}"))
    for raw, name in {METHODS[p.method] for p in state.payments}:
        await conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO invoice_payment_methods(store_id, invoice_id, payment_method_raw, payment_method, currency, "
            "rate) VALUES (?,?,?,?,?,?)", (inv.store, f"i{n}", raw, name, "BTC", "65432.1"))
    for k, p in enumerate(state.payments):
        raw, name = METHODS[p.method]
        await conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO invoice_payments(store_id, invoice_id, payment_id, payment_method_raw, payment_method, "
            "currency, amount, amount_sats, status, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (inv.store, f"i{n}", f"p{k}", raw, name, "BTC", f"{p.sats / 1e8:.8f}",
             p.sats if name != "other" else None, p.status, created + p.after_s))


async def _compare(ledger: list[Inv], zone: str, ranges: list[tuple[int, int, str, str | None, str | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "t.db")
        try:
            async with db.transaction() as conn:
                for n, inv in enumerate(ledger):
                    await _write(conn, n, inv, inv.states[0], 0)
                await conn.execute("INSERT INTO sync_refunds(store_id, invoice_id, pull_payment_id, currency, amount, "
                                   "created_at) VALUES ('S1', 'i0', 'pp', 'USD', '3.10', ?)",
                                   (int(EPOCH.timestamp()) + 20 * DAY,))
            assert await aggregates.rebuild(db, zone, chunk=3) == len(ledger)  # the backfill, in small chunks
            for step in (1, 2):  # later states through the intake's port, one transaction each
                for n, inv in enumerate(ledger):
                    if len(inv.states) > step:
                        async with db.transaction() as conn:
                            await _write(conn, n, inv, inv.states[step], step)
                            await aggregates.record(conn, inv.store, f"i{n}", aggregates.ZoneInfo(zone))
            analytics = Analytics(db, zone)
            for first, days, by, store, currency in ranges:
                start = EPOCH.date() + timedelta(days=first)
                end = start + timedelta(days=days)
                args = dict(store_id=store, by=by, currency=currency)
                fast = await analytics.report(start, end, **args)  # type: ignore[arg-type]
                slow = await analytics.report_from_rows(start, end, tz=zone, **args)  # type: ignore[arg-type]
                assert fast == slow, (start, end, args)
                assert {c: str(v) for c, v in fast.volume_by_currency.items()} == {
                    c: str(v) for c, v in slow.volume_by_currency.items()}
        finally:
            await db.close()


report_ranges = st.lists(
    st.tuples(st.integers(-5, 100), st.integers(0, 100), st.sampled_from(["day", "week", "month"]),
              st.sampled_from([None, *STORES]), st.sampled_from([None, "USD", "EUR"])),
    min_size=1, max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(invoices, min_size=4, max_size=25), st.sampled_from(ZONES), report_ranges)
def test_the_aggregates_give_the_raw_report(ledger: list[Inv], zone: str, ranges: list) -> None:
    asyncio.run(_compare(ledger, zone, ranges))


def test_a_status_change_moves_an_invoice_between_buckets() -> None:
    """Settled (with a payment), then marked invalid: the settled volume goes, the created count stays one."""
    paid = State("Settled", "None", "10.00", (Pay(1, 15_000, "Settled", 60),))
    invalid = State("Invalid", "Marked", "10.00", (Pay(1, 15_000, "Settled", 60),))
    late = Inv("S1", "USD", "10.00", 3600, "LATTE", (paid, invalid))

    async def check() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            db = await Database.open(Path(tmp) / "t.db")
            try:
                await aggregates.rebuild(db, "UTC")
                analytics = Analytics(db)
                day = EPOCH.date()
                for step, state in enumerate(late.states):
                    async with db.transaction() as conn:
                        await _write(conn, 0, late, state, step)
                        await aggregates.record(conn, "S1", "i0", aggregates.ZoneInfo("UTC"))
                    report = await analytics.report(day, day)
                    counts = (report.created, report.settled, report.invalid, str(report.volume))
                    assert counts == ((1, 1, 0, "10.00") if step == 0 else (1, 0, 1, "0"))
                rows = await db.fetchall("SELECT COUNT(*) FROM analytics_settled_days")
                assert rows[0][0] == 0  # an emptied bucket is gone, not a zero row
            finally:
                await db.close()

    asyncio.run(check())



def test_a_fault_in_the_aggregates_never_costs_the_ledger_its_write() -> None:
    """The port undoes its own writes and sets the aggregates aside; the invoice row still commits."""
    inv = Inv("S1", "USD", "10.00", 3600, None, (State("Settled", "None", "10.00", ()),))

    async def check() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            db = await Database.open(Path(tmp) / "t.db")
            try:
                async with db.transaction() as conn:
                    await _write(conn, 0, inv, inv.states[0], 0)
                await aggregates.rebuild(db, "UTC")
                await db.write("DELETE FROM analytics_created_days")  # damaged: the old contribution has no row
                async with db.transaction() as conn:
                    await _write(conn, 0, inv, State("Invalid", "Marked", "10.00", ()), 1)
                    await aggregates.InvoiceAggregates("UTC").on_invoice(conn, "S1", type("I", (), {"id": "i0"}))
                assert await db.fetchall("SELECT status FROM invoices") == [("Invalid",)]
                assert await aggregates.state(db) == ("", False)
                async with db.transaction() as conn:  # set aside: later changes leave them alone until the rebuild
                    await aggregates.InvoiceAggregates("UTC").on_invoice(conn, "S1", type("I", (), {"id": "i0"}))
                report = await Analytics(db).report(EPOCH.date(), EPOCH.date())  # raw rows meanwhile
                assert (report.created, report.invalid) == (1, 1)
                assert await aggregates.rebuild(db, "UTC") == 1 and await aggregates.state(db) == ("UTC", True)
            finally:
                await db.close()

    asyncio.run(check())
