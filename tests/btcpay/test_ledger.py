"""The invoice ledger: snapshots converge, older ones never overwrite newer ones, money stays exact."""

from __future__ import annotations

from decimal import Decimal

from sovterm.btcpay import ledger
from sovterm.btcpay.models import Invoice, InvoicePaymentMethod

STORE = "S1"
TXID = "a" * 64


def invoice(status="New", additional="None", **over) -> Invoice:
    data = {
        "id": "INV1", "storeId": STORE, "amount": "19.99", "paidAmount": "0", "currency": "USD",
        "type": "Standard", "checkoutLink": "http://b/i/INV1", "createdTime": 1_700_000_000,
        "expirationTime": 1_700_000_900, "monitoringExpiration": 1_700_087_300, "status": status,
        "additionalStatus": additional,
        "metadata": {"orderId": "42", "buyerEmail": "a@b.c", "itemDesc": "Mug", "qboInvoiceId": "1001"},
    }
    data.update(over)
    return Invoice.model_validate(data)


def methods(payment_status="Settled", pm_id="BTC-CHAIN", value="0.00030000", pay_id=f"{TXID}-1"):
    return [InvoicePaymentMethod.model_validate({
        "paymentMethodId": pm_id, "currency": "BTC", "rate": "66633.33", "amount": "0.00030000",
        "paymentMethodPaid": value, "totalPaid": value, "due": "0", "paymentMethodFee": "0",
        "payments": [{"id": pay_id, "receivedDate": 1_700_000_100, "value": value, "fee": "0.00000000",
                      "status": payment_status, "destination": "bc1q"}],
    })]


async def upsert(db, inv, pms=None, observed=1000) -> bool:
    async with db.transaction() as conn:
        return await ledger.upsert_invoice(conn, STORE, inv, pms, observed_at_ms=observed)


async def test_insert_then_reread_unchanged_then_change(db):
    assert await upsert(db, invoice(), [], observed=1000)
    assert not await upsert(db, invoice(), [], observed=2000)  # same content: not a change
    assert await upsert(db, invoice("Settled", paidAmount="19.99"), methods(), observed=3000)
    row = await ledger.get_invoice_row(db, STORE, "INV1")
    assert (row["status"], row["amount"], row["paid_amount"], row["order_id"], row["qbo_ref"]) == (
        "Settled", "19.99", "19.99", "42", "1001")
    assert (row["buyer_email"], row["item_desc"], row["observed_at_ms"], row["paid_at"]) == (
        "a@b.c", "Mug", 3000, 1_700_000_100)
    pays = await ledger.invoice_payments(db, STORE, "INV1")
    assert [(p["payment_method"], p["txid"], p["amount"], p["amount_sats"], p["status"]) for p in pays] == [
        ("onchain", TXID, "0.00030000", 30_000, "Settled")]


async def test_older_snapshot_never_overwrites_newer(db):
    assert await upsert(db, invoice("Settled"), methods(), observed=5000)
    assert not await upsert(db, invoice("New"), [], observed=4000)  # a poll that was sent earlier
    row = await ledger.get_invoice_row(db, STORE, "INV1")
    assert row["status"] == "Settled" and row["observed_at_ms"] == 5000
    assert len(await ledger.invoice_payments(db, STORE, "INV1")) == 1


async def test_newer_snapshot_may_go_backwards_in_status(db):
    """Manual marking can take Settled back to Invalid: recency wins, not status rank."""
    assert await upsert(db, invoice("Settled"), methods(), observed=1000)
    assert await upsert(db, invoice("Invalid", "Marked"), methods(), observed=2000)
    assert (await ledger.get_invoice_row(db, STORE, "INV1"))["status"] == "Invalid"


async def test_tie_prefers_more_payments(db):
    assert await upsert(db, invoice("New"), [], observed=1000)
    assert await upsert(db, invoice("Processing"), methods("Processing"), observed=1000)
    assert not await upsert(db, invoice("New"), [], observed=1000)
    assert (await ledger.get_invoice_row(db, STORE, "INV1"))["status"] == "Processing"


async def test_payment_methods_unknown_keeps_stored_payments(db):
    await upsert(db, invoice("Processing"), methods("Processing"), observed=1000)
    assert await upsert(db, invoice("Processing", archived=True), None, observed=2000)
    assert len(await ledger.invoice_payments(db, STORE, "INV1")) == 1


async def test_lightning_1x_ids_are_normalised_and_msats_kept_exact(db):
    pms = methods(pm_id="BTC-LightningNetwork", value="0.00012345678", pay_id="hash1")
    await upsert(db, invoice("Settled"), pms, observed=1000)
    [pay] = await ledger.invoice_payments(db, STORE, "INV1")
    assert (pay["payment_method_raw"], pay["payment_method"], pay["txid"]) == ("BTC-LightningNetwork", "lightning", "hash1")
    assert pay["amount"] == "0.00012345678" and pay["amount_sats"] == 12_346
    assert Decimal(pay["amount"]) * 10**8 == Decimal("12345.678")


async def test_unknown_status_is_stored_and_stays_non_final(db):
    await upsert(db, invoice("Refunding"), [], observed=1000)
    assert await ledger.non_final_invoices(db, STORE, 1_700_000_000) == ["INV1"]


async def test_non_final_and_settled_between(db):
    rows = [("A", "New", None), ("B", "Processing", None), ("C", "Settled", None), ("D", "Expired", None),
            ("E", "Invalid", None), ("F", "Expired", 1_800_000_000)]
    for inv_id, status, monitoring in rows:
        inv = invoice(status, id=inv_id)
        if monitoring:
            inv.monitoring_expiration = monitoring
        await upsert(db, inv, methods() if status == "Settled" else [], observed=1000)
    now = 1_700_100_000  # after D's monitoring window, inside F's
    assert sorted(await ledger.non_final_invoices(db, STORE, now)) == ["A", "B", "F"]
    settled = await ledger.settled_between(db, STORE, 1_700_000_000, 1_700_000_200)
    assert [r["invoice_id"] for r in settled] == ["C"]
    assert await ledger.settled_between(db, STORE, 1_700_000_101, 1_800_000_000) == []


async def test_stores(db):
    async with db.transaction() as conn:
        await ledger.upsert_store(conn, "S1", name="Shop", selected=True, settings={"features": ["sync"]})
        await ledger.upsert_store(conn, "S2", name="Other")
        await ledger.upsert_store(conn, "S1", webhook_id="W1")
    assert await ledger.selected_stores(db) == ["S1"]
    row = await ledger.store_row(db, "S1")
    assert (row["name"], row["webhook_id"], row["settings"]) == ("Shop", "W1", {"features": ["sync"]})


async def test_one_satoshi_is_stored_as_plain_digits_and_old_scientific_rows_still_read(db):
    """Decimal('0.00000001') prints as '1E-8': the ledger stores what a bookkeeper can read."""
    assert await upsert(db, invoice("Settled", paidAmount="0.01"), methods(value="0.00000001"), observed=1000)
    [pay] = await ledger.invoice_payments(db, STORE, "INV1")
    assert (pay["amount"], pay["fee"], pay["amount_sats"]) == ("0.00000001", "0.00000000", 1)
    await db.write("UPDATE invoice_payments SET amount = '1E-8' WHERE invoice_id = 'INV1'")  # an older row
    [old] = await ledger.invoice_payments(db, STORE, "INV1")
    assert Decimal(old["amount"]) == Decimal("0.00000001")
