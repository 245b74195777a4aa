"""Cashu (BTCNutServer) payments in the accounting rules: recognised by name, booked to the Cashu ecash
account when the invoice was paid in ecash only, flagged when ecash is only part of it."""

from decimal import Decimal as D

from sovterm.btcpay.models import PaymentMethodKind, split_payment_method_id
from sovterm.sync.rules import InvoiceSnap, PaymentSnap, PostedDoc, RefundSnap, StorePolicy, memo, plan

DEP = StorePolicy("deposit", "salesreceipt", "USD", False)


def cashu_invoice(*payments: PaymentSnap, refunds: tuple[RefundSnap, ...] = ()) -> InvoiceSnap:
    # BTCNutServer marks the invoice Settled by hand after recording the payment as Processing
    return InvoiceSnap("S", "I", "Settled", "Marked", "USD", D("50.00"), D("50.00"), D("50000"), 1_767_225_600,
                       1_767_225_660, payments=payments, refunds=refunds)


ECASH = PaymentSnap("c-1", "cashu", "BTC", D("0.001"), 100_000, "Processing")
CHAIN = PaymentSnap("t-1", "onchain", "BTC", D("0.0004"), 40_000, "Settled")


def test_the_cashu_payment_method_id_is_its_own_kind_paid_in_btc() -> None:
    assert split_payment_method_id("CASHU") == ("BTC", PaymentMethodKind.CASHU)
    assert split_payment_method_id("cashu") == ("BTC", PaymentMethodKind.CASHU)
    assert split_payment_method_id("XMR")[1] is PaymentMethodKind.OTHER  # other plugins stay "other"


def test_an_invoice_paid_in_ecash_is_booked_once_to_the_cashu_account() -> None:
    p = plan(cashu_invoice(ECASH), [], DEP)
    assert [(x.kind, x.entity, x.amount, x.cashu, x.review) for x in p.posts] == [
        ("sale", "SalesReceipt", D("50.00"), True, None)]
    assert "paid Cashu ecash" in memo(cashu_invoice(ECASH), 100_000)
    # once in the books, the same snapshot plans nothing more
    assert plan(cashu_invoice(ECASH), [PostedDoc("sale", 0, "posted", D("50.00"), "SalesReceipt")], DEP).empty


def test_a_refund_of_an_ecash_invoice_leaves_the_cashu_account() -> None:
    inv = cashu_invoice(ECASH, refunds=(RefundSnap("pp-1", "USD", D("10.00")),))
    p = plan(inv, [PostedDoc("sale", 0, "posted", D("50.00"), "SalesReceipt")], DEP)
    assert [(x.kind, x.amount, x.cashu) for x in p.posts] == [("refund", D("10.00"), True)]


def test_an_invoice_paid_partly_in_ecash_stays_in_the_bitcoin_account_and_is_flagged() -> None:
    p = plan(cashu_invoice(ECASH, CHAIN), [], DEP)
    (sale,) = p.posts
    assert not sale.cashu
    assert sale.review is not None and "100,000 sats of 140,000 sats paid in Cashu ecash" in sale.review
