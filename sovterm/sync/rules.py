"""The accounting rules: pure functions from an invoice snapshot and what is already in the books to
what still has to be written. No I/O here — the executor looks things up and passes them in, so every
rule is a table-driven test (see docs/accounting.md for each rule with worked numbers).

Vocabulary: *recognised* is the fiat amount the invoice should stand for in QuickBooks right now;
*active* are the documents we wrote (or are writing) that are not voided. The plan closes the gap:
more recognised than active → one new document for the difference (next sequence number); less →
void the active ones and write the recognised amount again. Nothing is ever posted twice because the
sequence number (and with it the marker and the requestid) is part of the posting's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from sovterm.amounts import sats_to_btc
from sovterm.formatting import sats_text

CENT = Decimal("0.01")
SATS_PER_BTC = Decimal(100_000_000)
TOLERANCE = Decimal("0.01")  # ±1 %: rate drift, timing, rounding (Sovereign Merchant's "full")

Mode = Literal["deposit", "invoicing"]
DepositAs = Literal["salesreceipt", "deposit"]
SALE, PAYMENT, REFUND = "sale", "payment", "refund"
FEE = "fee"  # the network fee BTCPay added for the customer: its own document and sequence
ACTIVE = ("pending", "posted")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def method_label(kind: str) -> str:
    """Ledger kinds (onchain, lightning, lnurl, cashu, other) as an accountant reads them."""
    return {"onchain": "on-chain", "lightning": "Lightning", "lnurl": "Lightning",
            "cashu": "Cashu ecash"}.get(kind, "other")


@dataclass(frozen=True)
class PaymentSnap:
    payment_id: str
    method: str  # onchain | lightning | lnurl | cashu | other
    currency: str  # the paid currency (BTC)
    amount: Decimal  # in `currency`
    sats: int | None
    status: str  # Processing | Settled | Invalid
    received_at: int | None = None
    fee_sats: int = 0  # BTCPay's network fee inside `amount` (on-chain; `amount` is gross, net = amount - fee)


@dataclass(frozen=True)
class RefundSnap:
    pull_payment_id: str
    currency: str | None  # BTC or the invoice currency; None until the pull payment was read
    amount: Decimal | None
    created_at: int | None = None


@dataclass(frozen=True)
class InvoiceSnap:
    store_id: str
    invoice_id: str
    status: str
    additional_status: str
    currency: str
    amount: Decimal | None  # locked fiat amount; None for a top-up
    paid_amount: Decimal | None  # BTCPay's net paid in invoice currency (v2.1.2+)
    rate: Decimal | None  # invoice currency per BTC
    created_at: int
    paid_at: int | None = None
    order_id: str | None = None
    qbo_ref: str | None = None
    payments: tuple[PaymentSnap, ...] = ()
    refunds: tuple[RefundSnap, ...] = ()


@dataclass(frozen=True)
class PostedDoc:
    kind: str
    seq: int
    status: str  # pending | posted | voiding | voided
    amount: Decimal
    entity: str
    ref: str | None = None


@dataclass(frozen=True)
class StorePolicy:
    mode: Mode = "deposit"
    deposit_as: DepositAs = "salesreceipt"
    home_currency: str = "USD"
    multicurrency: bool = False


@dataclass(frozen=True)
class QBOInvoiceRef:
    """The QuickBooks invoice an invoicing-mode payment goes to (looked up by the executor)."""

    id: str
    doc_number: str | None
    customer_id: str
    balance: Decimal
    currency: str


@dataclass(frozen=True)
class Resolution:
    """The operator's answer for an unmatched invoice."""

    kind: Literal["qbo_invoice", "as_deposit", "ignore"]
    value: str = ""


@dataclass(frozen=True)
class NewPosting:
    kind: str
    seq: int
    entity: str
    amount: Decimal  # document total (a payment's TotalAmt)
    applied: Decimal | None = None  # payments: the part applied to the invoice (rest is customer credit)
    ref: str | None = None
    memo: str = ""
    review: str | None = None
    txn_date: date = date(1970, 1, 1)
    qbo_invoice: QBOInvoiceRef | None = None
    cashu: bool = False  # paid in Cashu ecash: booked to the Cashu ecash account, not the bitcoin account


@dataclass(frozen=True)
class VoidPosting:
    kind: str
    seq: int
    entity: str
    reason: str


@dataclass(frozen=True)
class Plan:
    label: str  # full | partial | overpaid | underpaid | marked | invalidated | waiting | ignored
    recognised: Decimal | None
    posts: tuple[NewPosting, ...] = ()
    voids: tuple[VoidPosting, ...] = ()
    unmatched: str | None = None  # why the operator must pick the QuickBooks invoice
    refuse: str | None = None  # why nothing can be posted at all (dead-letter)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.posts and not self.voids


# -- recognition --------------------------------------------------------------------------------------


def _accounted(inv: InvoiceSnap) -> tuple[Decimal, int]:
    """(fiat paid net of network fees, gross sats received) over payments BTCPay still counts (not Invalid)."""
    pays = [p for p in inv.payments if p.status != "Invalid"]
    sats = sum(p.sats or 0 for p in pays)
    if inv.paid_amount is not None:
        return cents(inv.paid_amount), sats  # BTCPay's paidAmount is already net (PaidAmount.Net)
    if inv.rate is None:
        return Decimal(0), sats
    btc = sum((p.amount - Decimal(p.fee_sats) / SATS_PER_BTC for p in pays if p.currency == "BTC"), Decimal(0))
    return cents(btc * inv.rate), sats


def fee_sats(inv: InvoiceSnap) -> int:
    """The network fee (sats) BTCPay added to the payments it still counts: money in the wallet that is not
    the price."""
    return sum(p.fee_sats for p in inv.payments if p.status != "Invalid")


def fee_value(inv: InvoiceSnap) -> Decimal:
    """The collected network fee at the invoice's rate, in cents (the rate the BTC entered the books at)."""
    sats = fee_sats(inv)
    if sats == 0 or inv.rate is None:
        return Decimal(0)
    return cents(Decimal(sats) / SATS_PER_BTC * inv.rate)


def _against_price(inv: InvoiceSnap, paid: Decimal) -> tuple[str, Decimal, str | None]:
    """Within ±1 % of the locked price → the price; above → what was received (flagged); below → received."""
    if inv.amount is None or inv.amount <= 0:
        return "full", paid, None
    price = cents(inv.amount)
    if abs(paid - price) <= price * TOLERANCE:
        return "full", price, None
    if paid > price:
        return "overpaid", paid, f"customer overpaid {paid - price} {inv.currency} (paid {paid} for {price})"
    return "underpaid", paid, f"settled by BTCPay at {paid} {inv.currency}, below the price {price}"


def recognise(inv: InvoiceSnap) -> tuple[str, Decimal | None, str | None]:
    """(label, fiat amount the books should show — None while BTCPay is still moving, review note)."""
    status, extra = inv.status, inv.additional_status
    if status == "Invalid":
        return "invalidated", Decimal(0), None
    paid, _ = _accounted(inv)
    if status == "Settled":
        if extra == "Marked":
            amount = cents(inv.amount) if inv.amount is not None else paid
            return "marked", amount, None
        return _against_price(inv, paid)
    if status == "Expired" and extra in ("PaidPartial", "PaidLate"):
        if any(p.status == "Processing" for p in inv.payments):
            return "waiting", None, None  # a payment still confirming: wait for InvoicePaymentSettled
        if paid <= 0:
            return "invalidated", Decimal(0), None
        if extra == "PaidLate":
            return _against_price(inv, paid)
        return "partial", paid, None
    if status == "Expired":
        return "invalidated", Decimal(0), None
    return "waiting", None, None  # New / Processing / unknown: BTCPay has not decided yet


def _void_reason(inv: InvoiceSnap) -> str:
    if inv.status == "Invalid" and inv.additional_status == "Marked":
        return "BTCPay invoice marked invalid by hand after it was booked"
    if inv.status == "Invalid":
        return "BTCPay invoice turned invalid (payment not confirmed within the monitoring window)"
    return f"BTCPay invoice now stands for less than was booked ({inv.status}/{inv.additional_status})"


def memo(inv: InvoiceSnap, sats: int, note: str | None = None) -> str:
    kinds = sorted({method_label(p.method) for p in inv.payments if p.status != "Invalid"}) or ["none"]
    rate = f"{inv.rate} {inv.currency}/BTC" if inv.rate is not None else "rate unknown"
    fee = fee_sats(inv)
    with_fee = f" incl. network fee {sats_text(fee)}" if fee else ""
    text = (
        f"BTCPay invoice {inv.invoice_id} (store {inv.store_id}): {sats_to_btc(sats)} BTC{with_fee} at {rate}, "
        f"paid {'/'.join(kinds)}; status {inv.status}/{inv.additional_status}"
    )
    return f"{text}; {note}" if note else text


def day_of(unix_s: int) -> date:
    """The UTC calendar day of a unix time (QuickBooks' TxnDate)."""
    return datetime.fromtimestamp(unix_s, UTC).date()


def txn_date(inv: InvoiceSnap) -> date:
    """The day (UTC) the money arrived: the last accounted payment, else the invoice's creation."""
    return day_of(inv.paid_at or inv.created_at)


def refund_fiat(inv: InvoiceSnap, refund: RefundSnap) -> Decimal | None:
    """A refund's book value: fiat pull payments as is; BTC ones at the invoice's rate (what the BTC was
    booked at), so the asset account leaves at the value it entered."""
    if refund.amount is None or refund.currency is None:
        return None
    if refund.currency.upper() == inv.currency.upper():
        return cents(refund.amount)
    if refund.currency.upper() == "BTC" and inv.rate is not None:
        return cents(refund.amount * inv.rate)
    return None


# -- the plan -----------------------------------------------------------------------------------------


def _next_seq(posted: tuple[PostedDoc, ...] | list[PostedDoc], kind: str) -> int:
    return max((p.seq for p in posted if p.kind == kind), default=-1) + 1


def plan(
    inv: InvoiceSnap,
    posted: tuple[PostedDoc, ...] | list[PostedDoc],
    policy: StorePolicy,
    *,
    qbo_invoice: QBOInvoiceRef | None = None,
    resolution: Resolution | None = None,
) -> Plan:
    """What must be written or voided so QuickBooks matches this invoice."""
    posted = tuple(posted)
    label, recognised, review = recognise(inv)
    if resolution is not None and resolution.kind == "ignore":
        return Plan("ignored", recognised, notes=(f"ignored by the operator: {resolution.value}",))
    mode: Mode = policy.mode
    if resolution is not None and resolution.kind == "as_deposit":
        mode = "deposit"
    elif inv.qbo_ref:
        mode = "invoicing"  # a pay link for a QuickBooks invoice pays that invoice, whatever the store's mode
    main_kind = PAYMENT if mode == "invoicing" else SALE
    main_entity = "Payment" if mode == "invoicing" else (
        "Deposit" if policy.deposit_as == "deposit" else "SalesReceipt")
    active = [p for p in posted if p.kind in (SALE, PAYMENT) and p.status in ACTIVE]
    active_total = sum((p.amount for p in active), Decimal(0))
    if active:  # stay with the kind of document already in the books for this invoice
        main_kind, main_entity = active[-1].kind, active[-1].entity
    _, sats = _accounted(inv)
    posts: list[NewPosting] = []
    voids: list[VoidPosting] = []
    notes: list[str] = []
    unmatched: str | None = None
    to_post = Decimal(0)
    if recognised is not None:
        if recognised < active_total:
            reason = _void_reason(inv)
            voids = [VoidPosting(p.kind, p.seq, p.entity, reason) for p in active]
            to_post = recognised
            if recognised > 0:
                notes.append(f"re-booked at {recognised} {inv.currency} after voiding {active_total}")
        elif recognised > active_total:
            to_post = recognised - active_total
    booked_after = (recognised if recognised is not None and recognised < active_total else active_total) + to_post
    if to_post > 0 and (refusal := _currency_refusal(inv, policy)):
        return Plan(label, recognised, refuse=refusal)
    if to_post > 0:
        seq = _next_seq(posted, main_kind)
        note = review if not active else (review or "difference after a change of the BTCPay invoice")
        if main_kind == PAYMENT:
            if qbo_invoice is None:
                unmatched = f"no QuickBooks invoice for BTCPay invoice {inv.invoice_id}" + (
                    f" (its pay link was for QuickBooks invoice id {inv.qbo_ref}, which is gone: deleted?)"
                    if inv.qbo_ref else f" (orderId {inv.order_id!r} matches no DocNumber)" if inv.order_id else
                    " (no qboInvoiceId in metadata and no orderId)"
                )
                booked_after -= to_post
            elif qbo_invoice.currency.upper() != inv.currency.upper():
                return Plan(label, recognised, refuse=(
                    f"QuickBooks invoice {qbo_invoice.doc_number or qbo_invoice.id} is in {qbo_invoice.currency}, "
                    f"the BTCPay invoice in {inv.currency}"))
            else:
                applied = min(to_post, max(qbo_invoice.balance, Decimal(0)))
                if applied <= 0:
                    unmatched = (f"QuickBooks invoice {qbo_invoice.doc_number or qbo_invoice.id} has no open "
                                 f"balance left for {to_post} {inv.currency} (paid otherwise, or voided)")
                    booked_after -= to_post
                else:
                    if applied < to_post:
                        credit = f"{to_post - applied} {inv.currency} left as unapplied customer credit"
                        note = f"{note}; {credit}" if note else credit
                    posts.append(NewPosting(
                        PAYMENT, seq, "Payment", to_post, applied=applied, memo=memo(inv, sats, note),
                        review=note if applied < to_post or review else None, txn_date=txn_date(inv),
                        qbo_invoice=qbo_invoice,
                    ))
        else:
            posts.append(NewPosting(main_kind, seq, main_entity, to_post, memo=memo(inv, sats, note),
                                    review=review, txn_date=txn_date(inv)))
    fee_posts, fee_voids, fee_after = _fee_plan(inv, posted, recognised is not None, booked_after, sats,
                                                qbo_invoice)
    if fee_posts and (refusal := _currency_refusal(inv, policy)):
        return Plan(label, recognised, refuse=refusal)
    posts += fee_posts
    voids += fee_voids
    in_books = booked_after + fee_after  # what a refund can take back out of the bitcoin account
    # refunds: one RefundReceipt per BTCPay refund, only against an invoice that is in the books
    refunded = {p.ref for p in posted if p.kind == REFUND and p.status in ACTIVE}  # a rolled-back one is again due
    refund_seq = _next_seq(posted, REFUND)
    for refund in inv.refunds:
        if refund.pull_payment_id in refunded:
            continue
        fiat = refund_fiat(inv, refund)
        if fiat is None:
            notes.append(f"refund {refund.pull_payment_id}: amount not known yet")
            continue
        if booked_after <= 0:
            notes.append(f"refund {refund.pull_payment_id} of an invoice that is not in the books: no document")
            continue
        if fiat <= 0:
            continue
        over = fiat > in_books
        posts.append(NewPosting(
            REFUND, refund_seq, "RefundReceipt", fiat, ref=refund.pull_payment_id,
            memo=memo(inv, sats, f"refund via BTCPay pull payment {refund.pull_payment_id}"),
            review=f"refund {fiat} exceeds the {in_books} booked" if over else None,
            txn_date=day_of(refund.created_at) if refund.created_at else txn_date(inv), qbo_invoice=qbo_invoice,
        ))
        refund_seq += 1
    return Plan(label, recognised, tuple(_cashu_posts(inv, posts)), tuple(voids), unmatched=unmatched,
                notes=tuple(notes))


def cashu_sats(inv: InvoiceSnap) -> tuple[int, int]:
    """(sats paid in Cashu ecash, all sats) over the payments BTCPay still counts."""
    pays = [p for p in inv.payments if p.status != "Invalid"]
    return sum(p.sats or 0 for p in pays if p.method == "cashu"), sum(p.sats or 0 for p in pays)


def _cashu_posts(inv: InvoiceSnap, posts: list[NewPosting]) -> list[NewPosting]:
    """An invoice paid in Cashu ecash goes to the Cashu ecash account (a claim on the mint, not bitcoin in the
    wallet). One document has one deposit account, so an invoice paid partly in ecash stays in the bitcoin
    account and is flagged for the accountant to move the ecash part."""
    cashu, total = cashu_sats(inv)
    if cashu == 0:
        return posts
    if cashu == total:
        return [replace(p, cashu=True) for p in posts]
    note = (f"{sats_text(cashu)} of {sats_text(total)} paid in Cashu ecash, booked to the bitcoin account: move "
            "that part to the Cashu ecash account")
    return [replace(p, review=f"{p.review}; {note}" if p.review else note) if p.kind in (SALE, PAYMENT) else p
            for p in posts]


def _currency_refusal(inv: InvoiceSnap, policy: StorePolicy) -> str | None:
    if inv.currency.upper() == policy.home_currency.upper() or policy.multicurrency:
        return None
    return (f"the store prices in {inv.currency} but the QuickBooks company keeps its books in "
            f"{policy.home_currency} without multicurrency; turn multicurrency on in QuickBooks or price the "
            f"store in {policy.home_currency}")


def _fee_plan(inv: InvoiceSnap, posted: tuple[PostedDoc, ...], decided: bool, booked_after: Decimal,
              sats: int, qbo_invoice: QBOInvoiceRef | None) -> tuple[list[NewPosting], list[VoidPosting], Decimal]:
    """The network fee the customer paid on top of the price, as its own Deposit into the bitcoin account
    (from the mapped "fees collected" account), closed like the main document: more → the difference as the
    next sequence; less → void and book again. It follows the main document: while BTCPay has not decided
    nothing moves, and with nothing of the invoice in the books (invalid, unmatched) the fee is not booked.
    Returns the postings, the voids and the fee in the books afterwards."""
    active = [p for p in posted if p.kind == FEE and p.status in ACTIVE]
    booked = sum((p.amount for p in active), Decimal(0))
    if not decided:
        return [], [], booked
    wanted = fee_value(inv) if booked_after > 0 else Decimal(0)
    voids: list[VoidPosting] = []
    to_post = wanted - booked
    if wanted < booked:
        voids = [VoidPosting(p.kind, p.seq, p.entity, _void_reason(inv)) for p in active]
        to_post = wanted
    if to_post <= 0:
        return [], voids, wanted
    note = f"network fee of {sats_text(fee_sats(inv))} paid by the customer on top of the price"
    return [NewPosting(FEE, _next_seq(posted, FEE), "Deposit", to_post, memo=memo(inv, sats, note),
                       txn_date=txn_date(inv), qbo_invoice=qbo_invoice)], voids, wanted
