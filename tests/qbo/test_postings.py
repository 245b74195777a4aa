"""Posting primitives: bodies valid per Finance.xsd, documents in the simulator, markers, voids, currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import xmlschema

from sovterm.errors import UserFacingError
from sovterm.qbo.client import request_id
from sovterm.qbo.errors import QBOValidationError
from sovterm.qbo.mapping import AccountMapper
from sovterm.qbo.postings import (
    BtcDetail,
    CurrencyContext,
    DepositLine,
    Poster,
    build_deposit,
    build_payment,
    build_purchase,
    build_refund_receipt,
    build_sales_receipt,
    build_transfer,
    lookup_queries,
    marker_for,
    marker_of,
    void_document,
)
from sovterm.sim.qbo import FaultRule

from . import xsd
from .conftest import REALM

USD = CurrencyContext("USD", multicurrency=False)
MULTI = CurrencyContext("USD", multicurrency=True)
DAY = date(2026, 1, 15)
BTC = BtcDetail(sats=123_456, rate=Decimal("81000.50"), fiat_currency="USD", source="BTCPay invoice INV1")


def bodies() -> dict[str, tuple[str, dict]]:
    m = marker_for
    return {
        "sales receipt": ("SalesReceipt", build_sales_receipt(
            marker=m("sr"), txn_date=DAY, item_id="21", amount=Decimal("100.00"), deposit_account_id="92",
            currency="USD", ctx=USD, note=BTC, customer_id="58", payment_method_id="3", class_id="4",
            tax_code_id="NON", description="Order 1")),
        "foreign sales receipt": ("SalesReceipt", build_sales_receipt(
            marker=m("sr2"), txn_date=DAY, item_id="21", amount=Decimal("90.00"), deposit_account_id="92",
            currency="EUR", ctx=MULTI, exchange_rate=Decimal("1.085"), note=BTC)),
        "payment": ("Payment", build_payment(
            marker=m("pay"), txn_date=DAY, customer_id="58", invoice_id="130", amount=Decimal("55.00"),
            total=Decimal("60.00"), deposit_account_id="92", currency="USD", ctx=MULTI, note=BTC,
            payment_method_id="3", reference="INV1")),
        "deposit": ("Deposit", build_deposit(
            marker=m("dep"), txn_date=DAY, deposit_account_id="92", currency="USD", ctx=USD, note=BTC,
            lines=[DepositLine("79", Decimal("95.00"), "sale", customer_id="58", class_id="4"),
                   DepositLine("80", Decimal("5.00"))])),
        "refund receipt": ("RefundReceipt", build_refund_receipt(
            marker=m("ref"), txn_date=DAY, item_id="21", amount=Decimal("20.00"), refund_from_account_id="92",
            currency="USD", ctx=USD, note=BTC, customer_id="58", payment_method_id="3", class_id="4")),
        "purchase": ("Purchase", build_purchase(
            marker=m("fee"), txn_date=DAY, paying_account_id="92", expense_account_id="61", amount=Decimal("1.25"),
            currency="USD", ctx=USD, note=BTC, class_id="4")),
        "transfer": ("Transfer", build_transfer(
            marker=m("xfer"), txn_date=DAY, from_account_id="92", to_account_id="35", amount=Decimal("500.00"),
            note="payout P1", class_id="4")),
    }


@pytest.mark.parametrize("name", list(bodies()))
def test_posting_bodies_are_valid_per_finance_xsd(name):
    entity, body = bodies()[name]
    xsd.validate(entity, body)


def test_xsd_check_catches_misspelt_and_misplaced_fields():
    entity, body = bodies()["sales receipt"]
    with pytest.raises(AssertionError, match="DepositToAcountRef"):
        xsd.validate(entity, {**body, "DepositToAcountRef": {"value": "1"}})
    _, purchase = bodies()["purchase"]
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xsd.validate("Purchase", {**purchase, "PaymentType": "Bitcoin"})  # not in PaymentTypeEnum
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xsd.validate("Transfer", {**bodies()["transfer"][1], "Amount": "lots"})


def test_void_body_is_valid_per_xsd():
    xsd.validate("SalesReceipt", {"Id": "5", "SyncToken": "0", "sparse": True})


def test_marker_fits_docnumber_and_note_carries_btc_detail():
    marker = marker_for("salesreceipt", "store", "invoice", 0)
    assert len(marker) == 21 and marker == marker_for("salesreceipt", "store", "invoice", 0)
    _, body = bodies()["sales receipt"]
    assert body["PrivateNote"].startswith(f"sovterm:{body['DocNumber']} ")
    assert "0.00123456 BTC at 81000.50 USD/BTC" in body["PrivateNote"]


def test_currency_rules():
    _, foreign = bodies()["foreign sales receipt"]
    assert foreign["CurrencyRef"] == {"value": "EUR"} and foreign["ExchangeRate"] == Decimal("1.085")
    _, home = bodies()["payment"]
    assert home["CurrencyRef"] == {"value": "USD"} and "ExchangeRate" not in home
    assert "CurrencyRef" not in bodies()["purchase"][1]
    kwargs = dict(marker="SVX", txn_date=DAY, item_id="1", amount=Decimal("1.00"), deposit_account_id="2")
    with pytest.raises(UserFacingError, match="multicurrency"):
        build_sales_receipt(**kwargs, currency="EUR", ctx=USD, exchange_rate=Decimal("1.1"))
    with pytest.raises(ValueError, match="exchange rate"):
        build_sales_receipt(**kwargs, currency="EUR", ctx=MULTI)


def test_amounts_must_be_exact_positive_decimals():
    kwargs = dict(marker="SVX", txn_date=DAY, item_id="1", deposit_account_id="2", currency="USD", ctx=USD)
    with pytest.raises(TypeError):
        build_sales_receipt(**kwargs, amount=10.5)
    with pytest.raises(ValueError, match="decimal places"):
        build_sales_receipt(**kwargs, amount=Decimal("10.001"))
    with pytest.raises(ValueError, match="positive"):
        build_sales_receipt(**kwargs, amount=Decimal("0"))


@pytest.fixture
async def books(connected, db):
    ids = await AccountMapper(connected.client, db).ensure_defaults()
    ctx = CurrencyContext(*await connected.client.currency_settings())
    return ids, ctx, Poster(connected.client)


def first(sim_state, entity, **match):
    return next(d for d in sim_state.documents(REALM, entity) if all(d.get(k) == v for k, v in match.items()))


async def test_all_documents_post_to_the_simulator(connected, books, sim_state):
    ids, ctx, poster = books
    customer = first(sim_state, "Customer", DisplayName="Cool Cars")["Id"]
    checking = first(sim_state, "Account", Name="Checking")["Id"]
    made = {}
    for entity, body in [
        ("SalesReceipt", build_sales_receipt(marker=marker_for("sr"), txn_date=DAY, item_id=ids["item_id"],
                                             amount=Decimal("100.00"), deposit_account_id=ids["deposit_account_id"],
                                             currency="USD", ctx=ctx, note=BTC, payment_method_id=ids["payment_method_id"])),
        ("Deposit", build_deposit(marker=marker_for("dep"), txn_date=DAY, deposit_account_id=ids["deposit_account_id"],
                                  lines=[DepositLine(ids["income_account_id"], Decimal("40.00"))], currency="USD", ctx=ctx)),
        ("RefundReceipt", build_refund_receipt(marker=marker_for("ref"), txn_date=DAY, item_id=ids["item_id"],
                                               amount=Decimal("20.00"), refund_from_account_id=ids["deposit_account_id"],
                                               currency="USD", ctx=ctx, customer_id=customer)),
        ("Purchase", build_purchase(marker=marker_for("fee"), txn_date=DAY, paying_account_id=ids["deposit_account_id"],
                                    expense_account_id=ids["fee_account_id"], amount=Decimal("0.37"), currency="USD", ctx=ctx)),
        ("Transfer", build_transfer(marker=marker_for("xfer"), txn_date=DAY, from_account_id=ids["deposit_account_id"],
                                    to_account_id=checking, amount=Decimal("50.00"))),
    ]:
        result = await poster.post(entity, body, request_id=request_id(entity, "test"))
        assert result.created
        made[entity] = result
        found = await poster.find(entity, body)
        assert found["Id"] == result.id
    assert made["SalesReceipt"].document["TotalAmt"] == Decimal("100.00")
    assert made["Purchase"].document["TotalAmt"] == Decimal("0.37")
    receipt = made["SalesReceipt"]
    voided = await poster.void_sales_receipt(receipt.id, receipt.sync_token, request_id=request_id("void", receipt.id))
    assert voided["TotalAmt"] == 0


async def test_payment_reduces_invoice_balance_and_void_restores_it(connected, books, sim_state):
    ids, ctx, poster = books
    invoice = first(sim_state, "Invoice", DocNumber="1002")
    assert invoice["Balance"] == Decimal("125.00")
    body = build_payment(marker=marker_for("pay", "1002"), txn_date=DAY, customer_id=invoice["CustomerRef"]["value"],
                         invoice_id=invoice["Id"], amount=Decimal("25.00"), deposit_account_id=ids["deposit_account_id"],
                         currency="USD", ctx=ctx, payment_method_id=ids["payment_method_id"])
    paid = await poster.post("Payment", body, request_id=request_id("payment", "1002"))
    assert (await connected.client.read("Invoice", invoice["Id"]))["Balance"] == Decimal("100.00")
    await poster.void_payment(paid.id, paid.sync_token, request_id=request_id("void-payment", paid.id))
    assert (await connected.client.read("Invoice", invoice["Id"]))["Balance"] == Decimal("125.00")


async def test_void_document_voids_deletes_where_quickbooks_cannot_void_and_is_harmless_twice(connected, books,
                                                                                              sim_state):
    ids, ctx, poster = books
    receipt = await poster.post("SalesReceipt", await receipt_body(books, "void"), request_id=request_id("sr", "void"))
    deposit = await poster.post("Deposit", build_deposit(
        marker=marker_for("dep", "void"), txn_date=DAY, deposit_account_id=ids["deposit_account_id"],
        lines=[DepositLine(ids["income_account_id"], Decimal("40.00"))], currency="USD", ctx=ctx),
        request_id=request_id("dep", "void"))
    client = connected.client
    assert await void_document(client, "SalesReceipt", receipt.id, receipt.marker) is not None  # its new SyncToken
    assert await void_document(client, "SalesReceipt", receipt.id, receipt.marker) is None  # void already
    assert (await client.read("SalesReceipt", receipt.id))["TotalAmt"] == 0
    assert await void_document(client, "Deposit", deposit.id, deposit.marker) is None  # deleted
    assert await void_document(client, "Deposit", deposit.id, deposit.marker) is None  # gone already
    assert all(d["Id"] != deposit.id for d in sim_state.documents(REALM, "Deposit"))


async def receipt_body(books, tag: str) -> dict:
    ids, ctx, _ = books
    return build_sales_receipt(marker=marker_for("sr", tag), txn_date=DAY, item_id=ids["item_id"],
                               amount=Decimal("12.00"), deposit_account_id=ids["deposit_account_id"],
                               currency="USD", ctx=ctx, note=BTC)


def receipts_with(sim_state, marker: str) -> list[dict]:
    return [d for d in sim_state.documents(REALM, "SalesReceipt") if d.get("DocNumber") == marker]


async def test_dropped_answer_does_not_duplicate_even_if_requestid_is_ignored(connected, books, sim_state):
    sim_state.honor_requestid = False  # reported Intuit behaviour
    sim_state.books[REALM].enforce_unique_docnumber = False  # and the company allows repeated numbers
    sim_state.faults.append(FaultRule("drop_after_commit", route="salesreceipt", times=1))
    body = await receipt_body(books, "dropped")
    result = await books[2].post("SalesReceipt", body, request_id=request_id("sr", "dropped"))
    assert not result.created  # found by its marker
    assert len(receipts_with(sim_state, body["DocNumber"])) == 1


async def test_repost_after_crash_finds_the_existing_document(connected, books, sim_state):
    body = await receipt_body(books, "crash")
    first_post = await books[2].post("SalesReceipt", body, request_id=request_id("sr", "crash"))
    sim_state.honor_requestid = False
    again = await books[2].post("SalesReceipt", body, request_id=request_id("sr", "crash"))  # 6140 → marker
    checked = await books[2].post("SalesReceipt", body, request_id=request_id("sr", "crash"), check_first=True)
    assert first_post.created and not again.created and not checked.created
    assert again.id == checked.id == first_post.id
    assert len(receipts_with(sim_state, body["DocNumber"])) == 1


async def test_requestid_replay_answers_the_first_response(connected, books, sim_state):
    body = await receipt_body(books, "replay")
    rid = request_id("sr", "replay")
    one = await connected.client.create("SalesReceipt", body, request_id=rid)
    two = await connected.client.create("SalesReceipt", body, request_id=rid)
    assert one == two and len(receipts_with(sim_state, body["DocNumber"])) == 1


# -- finding Payments and Transfers without a DocNumber filter (issue 13, point 5) --------------------------

def test_payment_and_transfer_carry_their_marker_only_in_the_memo():
    for name in ("payment", "transfer"):
        _, body = bodies()[name]
        assert "DocNumber" not in body  # Finance.xsd: no DocNumber filter for Payment; none documented for Transfer
        assert marker_of(body) == marker_for({"payment": "pay", "transfer": "xfer"}[name])
    _, receipt = bodies()["sales receipt"]
    assert marker_of(receipt) == receipt["DocNumber"] == marker_for("sr")
    voided = {"PrivateNote": f"Voided - sovterm:{marker_for('pay')} BTCPay invoice I"}
    assert marker_of(voided) == marker_for("pay")
    assert marker_of({"DocNumber": "1001", "PrivateNote": "cheque from Amy"}) is None


def test_lookup_queries_use_documented_filters_one_per_range_of_days():
    _, payment = bodies()["payment"]
    later = {**payment, "TxnDate": "2026-01-20", "PrivateNote": f"sovterm:{marker_for('pay2')}"}
    other = {**payment, "TxnDate": "2026-03-01", "CustomerRef": {"value": "59"},
             "PrivateNote": f"sovterm:{marker_for('pay3')}"}
    assert lookup_queries("Payment", [other, payment, later]) == [
        "SELECT * FROM Payment WHERE TxnDate >= '2026-01-15' AND TxnDate <= '2026-01-20' AND CustomerRef = '58'",
        "SELECT * FROM Payment WHERE TxnDate >= '2026-03-01' AND TxnDate <= '2026-03-01' AND CustomerRef = '59'",
    ]
    mixed = {**later, "CustomerRef": {"value": "59"}}
    assert lookup_queries("Payment", [payment, mixed]) == [
        "SELECT * FROM Payment WHERE TxnDate >= '2026-01-15' AND TxnDate <= '2026-01-20'"]
    _, transfer = bodies()["transfer"]
    assert lookup_queries("Transfer", [transfer]) == [
        "SELECT * FROM Transfer WHERE TxnDate >= '2026-01-15' AND TxnDate <= '2026-01-15'"]
    _, receipt = bodies()["sales receipt"]
    assert lookup_queries("SalesReceipt", [receipt]) == [
        f"SELECT * FROM SalesReceipt WHERE DocNumber IN ('{marker_for('sr')}')"]


async def test_simulator_refuses_a_docnumber_filter_on_payment_and_transfer(connected):
    for entity in ("Payment", "Transfer"):
        with pytest.raises(QBOValidationError, match="not queryable"):
            await connected.client.query(f"SELECT * FROM {entity} WHERE DocNumber = 'SVX'")
    with pytest.raises(QBOValidationError, match="not queryable"):
        await connected.client.query("SELECT * FROM Transfer WHERE FromAccountRef = '1'")


async def test_lost_payment_and_transfer_answers_are_found_by_their_memo(connected, books, sim_state):
    """A dropped answer after QuickBooks committed: found among the day's documents of that customer (a
    cheque booked by hand the same day is skipped), never created twice, even if requestid is ignored."""
    ids, ctx, poster = books
    sim_state.honor_requestid = False
    invoice = first(sim_state, "Invoice", DocNumber="1003")
    customer = invoice["CustomerRef"]["value"]
    sim_state.books[REALM].add("Payment", {"TxnDate": DAY.isoformat(), "CustomerRef": {"value": customer},
                                           "TotalAmt": Decimal("5.00"), "PrivateNote": "cheque 812"})
    payment = build_payment(marker=marker_for("pay", "lost"), txn_date=DAY, customer_id=customer,
                            invoice_id=invoice["Id"], amount=Decimal("30.00"),
                            deposit_account_id=ids["deposit_account_id"], currency="USD", ctx=ctx, note=BTC)
    checking = first(sim_state, "Account", Name="Checking")["Id"]
    transfer = build_transfer(marker=marker_for("xfer", "lost"), txn_date=DAY,
                              from_account_id=ids["deposit_account_id"], to_account_id=checking,
                              amount=Decimal("12.00"), note="payout P9")
    for entity, body in (("Payment", payment), ("Transfer", transfer)):
        sim_state.faults.append(FaultRule("drop_after_commit", route=entity.lower(), times=1))
        result = await poster.post(entity, body, request_id=request_id(entity, "lost"))
        assert not result.created  # the answer was lost: found by its marker
        ours = [d for d in sim_state.documents(REALM, entity) if marker_of(d) == marker_of(body)]
        assert [d["Id"] for d in ours] == [result.id]
        again = await poster.post(entity, body, request_id=request_id(entity, "again"), check_first=True)
        assert again.id == result.id and not again.created
    assert (await connected.client.read("Invoice", invoice["Id"]))["Balance"] == invoice["TotalAmt"] - 30
