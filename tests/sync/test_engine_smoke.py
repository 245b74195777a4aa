from decimal import Decimal

from tests.sync.helpers import docs, invoice, put


async def test_settled_invoice_becomes_one_sales_receipt(db, engine, qbo_state, bus):
    await put(db, invoice("inv1"))
    summary = await engine.drain()
    assert summary["jobs"] == 1
    receipts = docs(qbo_state, "SalesReceipt")
    assert len(receipts) == 1 and receipts[0]["TotalAmt"] == Decimal("100.00")
    assert [e["state"] for e in bus.topics("sync.job")] == ["posted"]
