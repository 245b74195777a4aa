"""The documents module on its own, against the QuickBooks simulator: it drafts a planned posting's ledger
row (marker, body, requestid), writes it once, finds it again by marker, voids it, resolves the customer
from the QuickBooks invoice a payment settles, and creates the payouts' clearing account once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sovterm.qbo.models import loads
from sovterm.qbo.postings import CurrencyContext
from sovterm.sim.qbo import QBOSimState
from sovterm.sync import payouts, rules
from sovterm.sync.documents import CLEARING_ACCOUNT, Documents, Refused
from tests.sync.helpers import REALM, STORE, DirectBooks, docs

USD = CurrencyContext("USD", False)
DAY = date(2026, 1, 20)


def snap(invoice_id: str, *, currency: str = "USD", order_id: str | None = None) -> rules.InvoiceSnap:
    return rules.InvoiceSnap(store_id=STORE, invoice_id=invoice_id, status="Settled", additional_status="None",
                             currency=currency, amount=Decimal("100.00"), paid_amount=Decimal("100.00"),
                             rate=Decimal(50000), created_at=1_768_867_200, order_id=order_id)


def sale(amount: str = "100.00") -> rules.NewPosting:
    return rules.NewPosting(kind=rules.SALE, seq=0, entity="SalesReceipt", amount=Decimal(amount), memo="a sale",
                            txn_date=DAY)


@pytest.fixture
async def documents(books: DirectBooks):
    made = Documents(books.client)
    yield made
    await made.close()


async def test_a_planned_posting_is_drafted_the_same_every_time_and_written_once(documents, books, qbo_state):
    mapping = books.mappings[STORE]
    row = await documents.for_invoice(snap("inv1"), sale(), mapping, USD)
    assert row == await documents.for_invoice(snap("inv1"), sale(), mapping, USD)  # same marker, body, requestid
    body = loads(row["body"])
    assert body["DocNumber"] == row["marker"] and body["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == \
        mapping.item_id
    first = await documents.write(row, lookup_first=False)
    again = await documents.write(row, lookup_first=True)  # a crashed run's pending row: found by marker
    assert first.created and not again.created and again.id == first.id
    assert [d["Id"] for d in docs(qbo_state, "SalesReceipt")] == [first.id]
    assert documents.sender.stats["found"] == 1


async def test_a_payment_goes_to_the_quickbooks_invoice_and_its_customer(documents, books, qbo_state):
    payment = snap("inv1", order_id="1002")
    found = await documents.find_invoice(payment, None)
    assert found is not None and found.doc_number == "1002" and found.balance == Decimal("125.00")
    assert await documents.find_invoice(snap("inv2", order_id="no-such-number"), None) is None
    planned = rules.NewPosting(kind=rules.PAYMENT, seq=0, entity="Payment", amount=Decimal("100.00"),
                               applied=Decimal("100.00"), memo="paid", txn_date=DAY, qbo_invoice=found)
    row = await documents.for_invoice(payment, planned, books.mappings[STORE], USD)
    written = await documents.write(row, lookup_first=False)
    assert written.document["CustomerRef"]["value"] == found.customer_id
    invoice = next(d for d in qbo_state.documents(REALM, "Invoice") if d["DocNumber"] == "1002")
    assert invoice["Balance"] == Decimal("25.00")


async def test_void_voids_or_deletes_and_is_harmless_twice(documents, books, qbo_state):
    mapping = books.mappings[STORE]
    receipt = await documents.for_invoice(snap("inv1"), sale(), mapping, USD)
    deposit = await documents.for_invoice(
        snap("inv2"), rules.NewPosting(kind=rules.SALE, seq=0, entity="Deposit", amount=Decimal("5.00"), txn_date=DAY),
        mapping, USD)
    for row in (receipt, deposit):
        row["qbo_id"] = (await documents.write(row, lookup_first=False)).id
    assert await documents.void(receipt) is not None  # voided: its new SyncToken
    assert await documents.void(receipt) is None  # already void: nothing sent
    assert await documents.void(deposit) is None  # QuickBooks cannot void a Deposit: deleted
    assert await documents.void(deposit) is None  # gone already
    [voided] = docs(qbo_state, "SalesReceipt")
    assert voided["TotalAmt"] == 0 and docs(qbo_state, "Deposit") == []


async def test_a_foreign_currency_without_a_rate_is_refused(books):
    class NoRates:
        async def rate(self, currency: str, home: str, day: str) -> Decimal | None:
            return None

    documents = Documents(books.client, fx=NoRates())
    with pytest.raises(Refused, match="no EUR→USD exchange rate"):
        await documents.for_invoice(snap("inv1", currency="EUR"), sale(), books.mappings[STORE],
                                    CurrencyContext("USD", True))


async def test_payouts_share_one_clearing_account_created_once(documents, books, qbo_state: QBOSimState):
    mapping = books.mappings[STORE]
    ids = []
    for payout_id in ("p1", "p2"):
        payout = payouts.PayoutSnap(STORE, payout_id, "Completed", None, None, Decimal("0.001"), "BTC", None,
                                    "bc1qdest", 1_768_867_200)
        row = await documents.payout_transfer(payouts.job_key(payout_id), payout, mapping, "USD", Decimal("50.00"),
                                              "valued", None, DAY)
        ids.append(loads(row["body"])["ToAccountRef"]["value"])
    accounts = [a for a in qbo_state.documents(REALM, "Account") if a["Name"] == CLEARING_ACCOUNT]
    assert len(accounts) == 1 and ids == [accounts[0]["Id"]] * 2
