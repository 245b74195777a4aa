"""One row per accounting rule; the numbers are the worked examples in docs/accounting.md."""

from datetime import date
from decimal import Decimal as D

import pytest

from sovterm.sync.rules import (
    InvoiceSnap,
    PaymentSnap,
    PostedDoc,
    QBOInvoiceRef,
    RefundSnap,
    Resolution,
    StorePolicy,
    plan,
)

DEP = StorePolicy("deposit", "salesreceipt", "USD", False)
DEP_AS_DEPOSIT = StorePolicy("deposit", "deposit", "USD", False)
INV = StorePolicy("invoicing", "salesreceipt", "USD", False)
QBO_1001 = QBOInvoiceRef("130", "1001", "58", D("100.00"), "USD")


def snap(status="Settled", extra="None", amount="100.00", paid="100.00", sats=200_000, rate="50000",
         pays=None, currency="USD", refunds=(), order_id=None, qbo_ref=None):
    payments = pays if pays is not None else (PaymentSnap("tx-0", "onchain", "BTC", D(sats) / D(10**8), sats, "Settled", 1_767_225_660),)
    return InvoiceSnap("S", "I", status, extra, currency, None if amount is None else D(amount),
                       None if paid is None else D(paid), D(rate), 1_767_225_600, 1_767_225_660, order_id, qbo_ref,
                       tuple(payments), tuple(refunds))


def posted(kind, seq, amount, status="posted", entity="SalesReceipt", ref=None):
    return PostedDoc(kind, seq, status, D(amount), entity, ref)


def summary(p):
    return ([(x.kind, x.seq, x.entity, str(x.amount)) for x in p.posts], [(x.kind, x.seq) for x in p.voids])


CASES = [
    # (name, snapshot, posted, policy, kwargs, expected posts, expected voids)
    ("deposit: settled → one SalesReceipt at the locked price", snap(), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("deposit as Deposit", snap(), [], DEP_AS_DEPOSIT, {}, [("sale", 0, "Deposit", "100.00")], []),
    ("±1 %: paid 99.40 for 100.00 books the price", snap(paid="99.40"), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("overpaid 110.00: the amount received, flagged", snap(paid="110.00", extra="PaidOver"), [], DEP, {},
     [("sale", 0, "SalesReceipt", "110.00")], []),
    ("settled below tolerance (paymentTolerance): the amount received", snap(paid="95.00"), [], DEP, {},
     [("sale", 0, "SalesReceipt", "95.00")], []),
    ("expired PaidPartial 40.00: the partial amount", snap("Expired", "PaidPartial", paid="40.00"), [], DEP, {},
     [("sale", 0, "SalesReceipt", "40.00")], []),
    ("expired PaidPartial with a payment still confirming: wait",
     snap("Expired", "PaidPartial", paid="40.00",
          pays=(PaymentSnap("t", "onchain", "BTC", D("0.0008"), 80_000, "Processing"),)), [], DEP, {}, [], []),
    ("PaidLate full payment after expiry", snap("Expired", "PaidLate"), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("partial 40 already booked, then paid late in full: the difference 60", snap("Expired", "PaidLate"),
     [posted("sale", 0, "40.00")], DEP, {}, [("sale", 1, "SalesReceipt", "60.00")], []),
    ("second payment on an overpaid invoice: only the difference", snap(paid="130.00", extra="PaidOver"),
     [posted("sale", 0, "110.00")], DEP, {}, [("sale", 1, "SalesReceipt", "20.00")], []),
    ("same snapshot again: nothing", snap(), [posted("sale", 0, "100.00")], DEP, {}, [], []),
    ("a pending posting counts as booked", snap(), [posted("sale", 0, "100.00", "pending")], DEP, {}, [], []),
    ("marked settled by hand with nothing paid: the price", snap(extra="Marked", paid="0", pays=()), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("marked invalid by hand after booking: void", snap("Invalid", "Marked"), [posted("sale", 0, "100.00")], DEP, {},
     [], [("sale", 0)]),
    ("invalid (not confirmed in time) after booking: void", snap("Invalid"), [posted("sale", 0, "100.00")], DEP, {},
     [], [("sale", 0)]),
    ("invalid, never booked: nothing", snap("Invalid"), [], DEP, {}, [], []),
    ("re-marked settled after a void: booked again as seq 1", snap(extra="Marked"),
     [posted("sale", 0, "100.00", "voided")], DEP, {}, [("sale", 1, "SalesReceipt", "100.00")], []),
    ("expired unpaid: nothing", snap("Expired", "None", paid="0", pays=()), [], DEP, {}, [], []),
    ("new / processing: wait", snap("Processing"), [], DEP, {}, [], []),
    ("refund (fiat pull payment 30.00)", snap(refunds=(RefundSnap("pp1", "USD", D("30.00")),)),
     [posted("sale", 0, "100.00")], DEP, {}, [("refund", 0, "RefundReceipt", "30.00")], []),
    ("refund in BTC at the invoice rate: 0.0004 BTC × 50000 = 20.00",
     snap(refunds=(RefundSnap("pp1", "BTC", D("0.0004")),)), [posted("sale", 0, "100.00")], DEP, {},
     [("refund", 0, "RefundReceipt", "20.00")], []),
    ("refund already booked: nothing", snap(refunds=(RefundSnap("pp1", "USD", D("30.00")),)),
     [posted("sale", 0, "100.00"), posted("refund", 0, "30.00", entity="RefundReceipt", ref="pp1")], DEP, {}, [], []),
    ("invoicing: Payment applied to QBO invoice 1001", snap(order_id="1001"), [], INV, {"qbo_invoice": QBO_1001},
     [("payment", 0, "Payment", "100.00")], []),
    ("invoicing: overpayment leaves credit", snap(paid="110.00", extra="PaidOver"), [], INV,
     {"qbo_invoice": QBO_1001}, [("payment", 0, "Payment", "110.00")], []),
    ("invoicing: nothing matches → unmatched, no posting", snap(order_id="zzz"), [], INV, {}, [], []),
    ("invoicing: operator says book as deposit", snap(), [], INV, {"resolution": Resolution("as_deposit")},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("invoicing: operator ignores it", snap(), [], INV, {"resolution": Resolution("ignore", "test order")}, [], []),
]


@pytest.mark.parametrize("name,inv,done,policy,kw,posts,voids", CASES, ids=[c[0] for c in CASES])
def test_rule(name, inv, done, policy, kw, posts, voids):
    assert summary(plan(inv, done, policy, **kw)) == (posts, voids)


def test_overpayment_in_invoicing_applies_the_balance_and_flags_review():
    p = plan(snap(paid="110.00", extra="PaidOver"), [], INV, qbo_invoice=QBO_1001)
    assert p.posts[0].applied == D("100.00") and p.posts[0].amount == D("110.00")
    assert "10.00 USD left as unapplied customer credit" in p.posts[0].review


def test_partial_payment_on_a_larger_qbo_invoice_leaves_it_open():
    big = QBOInvoiceRef("131", "1002", "58", D("250.00"), "USD")
    p = plan(snap(), [], INV, qbo_invoice=big)
    assert p.posts[0].applied == D("100.00") and p.posts[0].review is None


def test_unmatched_says_why():
    p = plan(snap(order_id="A-77"), [], INV)
    assert "A-77" in p.unmatched and not p.posts


def test_foreign_currency_without_multicurrency_is_refused():
    p = plan(snap(currency="EUR"), [], DEP)
    assert p.refuse and "multicurrency" in p.refuse


def test_foreign_currency_with_multicurrency_posts():
    p = plan(snap(currency="EUR"), [], StorePolicy("deposit", "salesreceipt", "USD", True))
    assert summary(p) == ([("sale", 0, "SalesReceipt", "100.00")], [])


def test_memo_names_btc_rate_method_and_invoice():
    p = plan(snap(), [], DEP)
    assert "0.00200000 BTC at 50000 USD/BTC" in p.posts[0].memo and "on-chain" in p.posts[0].memo
    assert "BTCPay invoice I" in p.posts[0].memo and p.posts[0].txn_date == date(2026, 1, 1)


def test_lightning_is_named():
    pays = (PaymentSnap("h", "lnurl", "BTC", D("0.002"), 200_000, "Settled"),)
    assert "Lightning" in plan(snap(pays=pays), [], DEP).posts[0].memo


def test_invalid_after_void_and_rebook_is_stable():
    done = [posted("sale", 0, "100.00", "voided"), posted("sale", 1, "100.00")]
    assert plan(snap(extra="Marked"), done, DEP).empty


def test_refund_of_unbooked_invoice_makes_no_document():
    p = plan(snap("Invalid", refunds=(RefundSnap("pp1", "USD", D("30.00")),)), [], DEP)
    assert not p.posts and any("not in the books" in n for n in p.notes)


# -- network fees (docs/accounting.md "Network fees"): 1,000 sats = 0.50 USD at 50,000 USD/BTC -------------------

def chain(sats, fee=0, status="Settled", pid="tx"):
    return PaymentSnap(pid, "onchain", "BTC", D(sats) / D(10**8), sats, status, 1_767_225_660, fee)


WITH_FEE = (chain(201_000, 1_000),)
TWO_PAYMENTS = (chain(100_000, pid="tx1"), chain(101_000, 1_000, pid="tx2"))
FEE_CASES = [
    ("N1 deposit: price as SalesReceipt, the fee as its own Deposit", snap(pays=WITH_FEE), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00"), ("fee", 0, "Deposit", "0.50")], []),
    ("N2 deposit as Deposit", snap(pays=WITH_FEE), [], DEP_AS_DEPOSIT, {},
     [("sale", 0, "Deposit", "100.00"), ("fee", 0, "Deposit", "0.50")], []),
    ("N3 invoicing: Payment for the price, Deposit for the fee", snap(pays=WITH_FEE, order_id="1001"), [], INV,
     {"qbo_invoice": QBO_1001}, [("payment", 0, "Payment", "100.00"), ("fee", 0, "Deposit", "0.50")], []),
    ("N4 Lightning: no fee, no fee document",
     snap(pays=(PaymentSnap("h", "lightning", "BTC", D("0.002"), 200_000, "Settled"),)), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("N5 two payments (MultiplePaymentsOnly): the second carries the fee", snap(pays=TWO_PAYMENTS), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00"), ("fee", 0, "Deposit", "0.50")], []),
    ("N6 partial 40.00 booked (no fee), the rest arrives late with the fee: the difference and the fee",
     snap("Expired", "PaidLate", pays=TWO_PAYMENTS), [posted("sale", 0, "40.00")], DEP, {},
     [("sale", 1, "SalesReceipt", "60.00"), ("fee", 0, "Deposit", "0.50")], []),
    ("N7 fee booked: the same snapshot again changes nothing", snap(pays=WITH_FEE),
     [posted("sale", 0, "100.00"), posted("fee", 0, "0.50", entity="Deposit")], DEP, {}, [], []),
    ("N8 invalid after booking: the fee is removed with the receipt", snap("Invalid", pays=WITH_FEE),
     [posted("sale", 0, "100.00"), posted("fee", 0, "0.50", entity="Deposit")], DEP, {}, [],
     [("sale", 0), ("fee", 0)]),
    ("N9 less fee than booked (a fee-carrying payment dropped): void, book the fee again as #1",
     snap(pays=WITH_FEE, paid="100.00"),
     [posted("sale", 0, "100.00"), posted("fee", 0, "1.00", entity="Deposit")], DEP, {},
     [("fee", 1, "Deposit", "0.50")], [("fee", 0)]),
    ("N10 invoicing, nothing matches: neither the payment nor the fee", snap(pays=WITH_FEE, order_id="zzz"), [], INV,
     {}, [], []),
    ("N11 waiting (Processing): nothing yet", snap("Processing", pays=(chain(201_000, 1_000, "Processing"),)), [],
     DEP, {}, [], []),
    ("N12 refund of the whole payment (RateThen 0.00201 BTC): 100.50, fee included",
     snap(pays=WITH_FEE, refunds=(RefundSnap("pp1", "BTC", D("0.00201")),)),
     [posted("sale", 0, "100.00"), posted("fee", 0, "0.50", entity="Deposit")], DEP, {},
     [("refund", 0, "RefundReceipt", "100.50")], []),
]


@pytest.mark.parametrize("name,inv,done,policy,kw,posts,voids", FEE_CASES, ids=[c[0] for c in FEE_CASES])
def test_network_fee_rule(name, inv, done, policy, kw, posts, voids):
    assert summary(plan(inv, done, policy, **kw)) == (posts, voids)


def test_fee_is_valued_at_the_invoice_rate_and_named_in_sats():
    p = plan(snap(pays=(chain(2_001_234, 1_234),), paid="1000.00", amount="1000.00"), [], DEP)
    sale, fee = p.posts
    assert fee.amount == D("0.62")  # 1,234 sats x 50,000 USD/BTC = 0.617 -> 0.62
    assert "0.02001234 BTC incl. network fee 1,234 sats at 50000 USD/BTC" in sale.memo
    assert "network fee of 1,234 sats paid by the customer" in fee.memo and "E-" not in fee.memo
    assert fee.review is None and fee.txn_date == sale.txn_date


def test_recognised_amount_is_net_of_the_fee_without_paid_amount():
    """Old BTCPay (no paidAmount): the price is judged on value - fee, so the fee does not look like an overpayment."""
    p = plan(snap(pays=(chain(201_000, 1_000),), paid=None), [], DEP)
    assert [(x.kind, str(x.amount), x.review) for x in p.posts] == [("sale", "100.00", None), ("fee", "0.50", None)]


def test_refund_including_the_fee_is_not_flagged():
    p = plan(FEE_CASES[-1][1], FEE_CASES[-1][2], DEP)
    assert p.posts[0].review is None


def test_fee_in_a_foreign_currency_without_multicurrency_is_refused():
    p = plan(snap(currency="EUR", pays=WITH_FEE), [posted("sale", 0, "100.00")], DEP)
    assert p.refuse and "multicurrency" in p.refuse


# -- pay links for a QuickBooks invoice (docs/accounting.md "Pay links"): a Payment in every mode ----------------

LINKED = snap(qbo_ref="130", order_id="1001")
LINK_CASES = [
    ("Q1 deposit mode: a Payment applied to the linked invoice, no SalesReceipt", LINKED, [], DEP,
     {"qbo_invoice": QBO_1001}, [("payment", 0, "Payment", "100.00")], []),
    ("Q2 deposit-as-Deposit store: still a Payment", LINKED, [], DEP_AS_DEPOSIT, {"qbo_invoice": QBO_1001},
     [("payment", 0, "Payment", "100.00")], []),
    ("Q3 the linked invoice is gone: unmatched, never a SalesReceipt", LINKED, [], DEP, {}, [], []),
    ("Q4 booked as a SalesReceipt before: the difference stays a SalesReceipt",
     snap("Expired", "PaidLate", qbo_ref="130"), [posted("sale", 0, "40.00")], DEP, {"qbo_invoice": QBO_1001},
     [("sale", 1, "SalesReceipt", "60.00")], []),
    ("Q5 operator: book it as a deposit", LINKED, [], DEP, {"resolution": Resolution("as_deposit")},
     [("sale", 0, "SalesReceipt", "100.00")], []),
    ("Q6 refund: a RefundReceipt", snap(qbo_ref="130", refunds=(RefundSnap("pp1", "USD", D("30.00")),)),
     [posted("payment", 0, "100.00", entity="Payment")], DEP, {"qbo_invoice": QBO_1001},
     [("refund", 0, "RefundReceipt", "30.00")], []),
    ("Q7 fixed-amount link (no qboInvoiceId): the store's mode", snap(order_id="link-ab12"), [], DEP, {},
     [("sale", 0, "SalesReceipt", "100.00")], []),
]


@pytest.mark.parametrize("name,inv,done,policy,kw,posts,voids", LINK_CASES, ids=[c[0] for c in LINK_CASES])
def test_pay_link_rule(name, inv, done, policy, kw, posts, voids):
    assert summary(plan(inv, done, policy, **kw)) == (posts, voids)


def test_pay_link_overpayment_leaves_credit_and_is_flagged():
    p = plan(snap(paid="110.00", extra="PaidOver", qbo_ref="130"), [], DEP, qbo_invoice=QBO_1001)
    assert (p.posts[0].entity, p.posts[0].amount, p.posts[0].applied) == ("Payment", D("110.00"), D("100.00"))
    assert "10.00 USD left as unapplied customer credit" in p.posts[0].review


def test_pay_link_to_a_gone_or_paid_invoice_says_why():
    gone = plan(LINKED, [], DEP)
    assert "QuickBooks invoice id 130" in gone.unmatched and not gone.posts
    paid = plan(LINKED, [], DEP, qbo_invoice=QBOInvoiceRef("130", "1001", "58", D(0), "USD"))
    assert "no open balance left" in paid.unmatched and not paid.posts


def test_pay_link_refund_goes_to_the_invoices_customer():
    p = plan(LINK_CASES[5][1], LINK_CASES[5][2], DEP, qbo_invoice=QBO_1001)
    assert p.posts[0].qbo_invoice == QBO_1001
