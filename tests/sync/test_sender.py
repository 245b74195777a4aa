"""The sender's look-up after an unknown outcome, for entities QuickBooks cannot filter by DocNumber
(issue 13, point 5): Payments left `pending` by a crash are found by date and memo, in one query."""

from __future__ import annotations

from decimal import Decimal

from sovterm.qbo.postings import marker_of
from sovterm.sync import records
from sovterm.sync.engine import EngineSettings, SyncEngine
from tests.sync.helpers import STORE, docs, invoice, put
from tests.sync.test_engine import Crash, run_all


async def test_payments_a_crash_left_pending_are_found_by_memo_in_one_lookup(db, books, qbo_state):
    await records.set_mode(db, "invoicing", store_id=STORE)

    def crash_after_quickbooks(step: str) -> None:
        if step == "after_qbo":
            raise Crash(step)

    crashing = SyncEngine(db, books, EngineSettings(lease_s=30), fault=crash_after_quickbooks)
    for n, number in enumerate(("1001", "1002", "1003")):
        await put(db, invoice(f"inv{n}", metadata={"orderId": number}))
    await crashing.drain()  # each job dies after QuickBooks took its Payment, before the ledger knew
    payments = docs(qbo_state, "Payment")
    assert len(payments) == 3 and all("DocNumber" not in p for p in payments)
    rows = [r for n in range(3) for r in await records.load_postings(db, STORE, f"inv{n}")]
    assert [r["status"] for r in rows] == ["pending"] * 3
    healthy = SyncEngine(db, books, EngineSettings(workers=4, lease_s=30))
    await run_all(healthy, db)
    assert len(docs(qbo_state, "Payment")) == 3  # found, not sent again
    assert healthy.documents.sender.stats["found"] == 3 and healthy.documents.sender.stats["lookups"] == 1
    ledger = {r["marker"]: r["qbo_id"] for n in range(3) for r in await records.load_postings(db, STORE, f"inv{n}")}
    assert ledger == {marker_of(p): p["Id"] for p in payments}
    balances = {d["DocNumber"]: d["Balance"] for d in qbo_state.documents("9341450000000001", "Invoice")}
    assert balances == {"1001": Decimal("0.00"), "1002": Decimal("25.00"), "1003": Decimal("50.00")}
