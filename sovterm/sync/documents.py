"""QuickBooks documents for the sync engine: drafted here from what the rules planned, written through
one call down to `qbo/` (`qbo.sender.Sender.create`).

The engine never talks to QuickBooks itself. It asks this module for what the plan needs to know from
the books (the QuickBooks invoice a payment settles, an exchange rate), for the ledger rows of the
documents it must write (each row the intent: marker, exact body, deterministic requestid, see
`posting_row`), and then, after it committed those rows as `pending`, to write or void them:

- `write(row)` is the one way down: `qbo.sender.Sender` looks the marker up first when the document may
  exist already, packs concurrent jobs' documents into batch requests, and creates each document once;
- `void(row)` voids a document (`qbo.postings.void_document`: deleted where QuickBooks has no void),
  harmless if already done.

Customers, items and accounts come from the store's mapping, or from the QuickBooks invoice a payment
is applied to; the payouts' clearing account is looked up by name and created once per company.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sovterm.errors import UserFacingError
from sovterm.qbo.client import QBOClient, quote_literal, request_id
from sovterm.qbo.errors import QBODuplicateName
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.models import dumps, loads
from sovterm.qbo.postings import (
    CurrencyContext,
    DepositLine,
    PostResult,
    build_deposit,
    build_payment,
    build_purchase,
    build_refund_receipt,
    build_sales_receipt,
    build_transfer,
    marker_for,
    void_document,
)
from sovterm.qbo.sender import Sender
from sovterm.sync import items, lines, payouts, reconcile, rules

CLEARING_ACCOUNT = "Bitcoin Payouts Clearing"

ClientSource = Callable[[], Awaitable[QBOClient]]


class Refused(UserFacingError):
    """Nothing can be posted until the operator changes something (dead-letter, with the reason)."""


class ExchangeRates(Protocol):
    async def rate(self, currency: str, home: str, day: str) -> Decimal | None: ...


class BooksRates:
    """Exchange rates from QuickBooks' own ExchangeRate entity (the rates the company books with),
    asked once per currency and day."""

    def __init__(self, client: ClientSource) -> None:
        self._client = client
        self._cache: dict[tuple[str, str, str], Decimal] = {}

    async def rate(self, currency: str, home: str, day: str) -> Decimal | None:
        key = (currency.upper(), home.upper(), day)
        if key not in self._cache:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = await (await self._client()).exchange_rate(currency, day)
        return self._cache[key]


class ClearingAccounts:
    """The payouts' clearing account id per company: looked up by name, created once if missing."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    async def get(self, client: QBOClient) -> str:
        if client.realm_id in self._ids:
            return self._ids[client.realm_id]
        sql = f"SELECT * FROM Account WHERE Name = {quote_literal(CLEARING_ACCOUNT)}"
        rows = await client.query(sql, limit=1)
        if not rows:
            body = {"Name": CLEARING_ACCOUNT, "AccountType": "Other Current Asset",
                    "AccountSubType": "OtherCurrentAssets",
                    "Description": "Bitcoin paid out through BTCPay payouts, waiting to be booked to where it went"}
            try:
                rows = [await client.create("Account", body, request_id=request_id("account", CLEARING_ACCOUNT))]
            except QBODuplicateName:
                rows = await client.query(sql, limit=1)
        self._ids[client.realm_id] = str(rows[0]["Id"])
        return self._ids[client.realm_id]


class Documents:
    """Drafts the QuickBooks documents of planned postings and writes them, exactly once."""

    def __init__(self, client: ClientSource, *, fx: ExchangeRates | None = None,
                 catalog: items.Catalog | None = None) -> None:
        self._client = client
        self.sender = Sender(client)
        self.fx: ExchangeRates = fx or BooksRates(client)
        self.clearing = ClearingAccounts()
        self.catalog = catalog  # items, sales tax, a pay link's class/location (none: the mapping alone)

    async def close(self) -> None:
        await self.sender.close()

    # -- what the plan needs from the books -----------------------------------------------------------

    async def find_invoice(self, snap: rules.InvoiceSnap,
                           resolution: rules.Resolution | None) -> rules.QBOInvoiceRef | None:
        """The QuickBooks invoice this payment settles: the operator's pick, metadata `qboInvoiceId`, or
        the orderId as DocNumber. None when nothing matches (the invoice goes to the unmatched list)."""
        client = await self._client()
        rows: list[dict[str, Any]] = []
        if resolution is not None and resolution.kind == "qbo_invoice":
            rows = await client.query(f"SELECT * FROM Invoice WHERE DocNumber = {quote_literal(resolution.value)}",
                                      limit=2)
            if not rows:
                rows = await client.query(f"SELECT * FROM Invoice WHERE Id = {quote_literal(resolution.value)}",
                                          limit=1)
        elif snap.qbo_ref:
            rows = await client.query(f"SELECT * FROM Invoice WHERE Id = {quote_literal(snap.qbo_ref)}", limit=1)
        elif snap.order_id:
            rows = await client.query(f"SELECT * FROM Invoice WHERE DocNumber = {quote_literal(snap.order_id)}",
                                      limit=2)
        if len(rows) != 1:
            return None
        doc = rows[0]
        return rules.QBOInvoiceRef(
            id=str(doc["Id"]), doc_number=doc.get("DocNumber"), customer_id=str(doc["CustomerRef"]["value"]),
            balance=Decimal(str(doc.get("Balance", "0"))),
            currency=str((doc.get("CurrencyRef") or {}).get("value", snap.currency)),
        )

    async def exchange_rate(self, currency: str, home: str, day: str) -> Decimal | None:
        """Home units per one `currency` unit on `day`, as the company books it."""
        return await self.fx.rate(currency, home, day)

    # -- drafting: one ledger row per document ------------------------------------------------------------

    async def for_invoice(self, snap: rules.InvoiceSnap, p: rules.NewPosting, mapping: StoreMapping,
                          ctx: CurrencyContext, booked: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """The ledger row of one posting the rules planned for a BTCPay invoice (`booked`: the invoice's
        postings that stay, and those planned before this one, from which a refund learns the sale's tax)."""
        marker = marker_for(p.kind, snap.store_id, snap.invoice_id, p.seq)
        rate = None
        if snap.currency.upper() != ctx.home.upper() and ctx.multicurrency:
            rate = await self.exchange_rate(snap.currency, ctx.home, p.txn_date.isoformat())
            if rate is None:
                raise Refused(f"no {snap.currency}→{ctx.home} exchange rate for {p.txn_date}")
        sale = None
        if self.catalog is not None:
            first_sale = p.entity if p.kind == rules.SALE and p.seq == 0 else None
            sale = await self.catalog.context(snap.store_id, snap.invoice_id, mapping, first_sale=first_sale)
        refund_tax = None
        if p.entity == "RefundReceipt" and sale is not None and sale.tax.kind != "none":
            refund_tax = tax_of_refund(booked, p.amount)
        body = dumps(build_body(p, marker, snap.currency, mapping, ctx, rate, sale=sale,
                                price=snap.amount and rules.cents(snap.amount), refund_tax=refund_tax))
        return posting_row(snap.store_id, snap.invoice_id, p.kind, p.seq, p.entity, p.amount, snap.currency, p.ref,
                           marker, body, p.txn_date, p.review)

    async def payout_transfer(self, job_key: str, payout: payouts.PayoutSnap, mapping: StoreMapping, home: str,
                              amount: Decimal, note: str, review: str | None, day: date, seq: int = 0) -> dict[str, Any]:
        """A payout's Transfer from the bitcoin account to the clearing account (`seq` > 0: posted again after
        a rollback, under a new marker)."""
        marker = marker_for(payouts.TRANSFER, payout.store_id, payout.payout_id, seq)
        clearing = await self.clearing.get(await self._client())
        body = dumps(build_transfer(marker=marker, txn_date=day, from_account_id=mapping.deposit_account_id,
                                    to_account_id=clearing, amount=amount, note=payouts.describe(payout, note),
                                    class_id=mapping.class_id))
        return posting_row(payout.store_id, job_key, payouts.TRANSFER, seq, "Transfer", amount, home, payout.payout_id,
                           marker, body, day, review)

    def network_fee(self, job_key: str, payout: payouts.PayoutSnap, fee: payouts.FeeLookup, value: Decimal,
                    mapping: StoreMapping, ctx: CurrencyContext, day: date, seq: int = 0) -> dict[str, Any]:
        """A payout transaction's network fee: a Purchase whose marker is the transaction's (booked once;
        `seq` > 0 after a rollback)."""
        assert fee.reference is not None
        marker = marker_for(payouts.FEE, payout.store_id, fee.reference, seq)
        text = payouts.describe_fee(payout, fee, value, ctx.home)
        body = dumps(build_purchase(marker=marker, txn_date=day, paying_account_id=mapping.deposit_account_id,
                                    expense_account_id=mapping.fee_account_id, amount=value, currency=ctx.home,
                                    ctx=ctx, note=text, class_id=mapping.class_id,
                                    department_id=mapping.department_id))
        return posting_row(payout.store_id, job_key, payouts.FEE, seq, "Purchase", value, ctx.home, fee.reference,
                           marker, body, day, None)

    def wallet_transfer(self, job_key: str, store_id: str, txid: str, *, amount: Decimal, home: str, outgoing: bool,
                        account_id: str, mapping: StoreMapping, note: str, day: date, review: str,
                        seq: int = 0) -> dict[str, Any]:
        """A wallet transaction the operator booked by hand: a Transfer between the bitcoin account and the
        account they chose (out of the bitcoin account when `outgoing`; `seq` > 0 after a rollback)."""
        marker = marker_for(reconcile.WALLET_PREFIX, store_id, txid, seq)
        bitcoin = mapping.deposit_account_id
        body = dumps(build_transfer(marker=marker, txn_date=day, amount=amount, note=note[:4000],
                                    from_account_id=bitcoin if outgoing else account_id,
                                    to_account_id=account_id if outgoing else bitcoin, class_id=mapping.class_id))
        return posting_row(store_id, job_key, "booked", seq, "Transfer", amount, home, txid, marker, body, day, review)

    # -- writing: the one way down --------------------------------------------------------------------

    async def write(self, row: dict[str, Any], *, lookup_first: bool) -> PostResult:
        """The document of a committed ledger row, created once (`lookup_first`: it may exist already)."""
        return await self.sender.create(row, lookup_first=lookup_first)

    async def void(self, row: dict[str, Any]) -> str | None:
        """Void (or delete, where QuickBooks cannot void) a posted document; harmless if already done.
        Returns the voided document's SyncToken (None when deleted or gone)."""
        return await void_document(await self._client(), row["entity"], row["qbo_id"], row["marker"])


def posting_row(store_id: str, invoice_id: str, kind: str, seq: int, entity: str, amount: Decimal, currency: str,
                ref: str | None, marker: str, body: str, day: date, review: str | None) -> dict[str, Any]:
    """A postings-ledger row: the intent, with the exact body and its requestid. The body is part of the
    requestid: Intuit replays an answer (even a refusal) for a reused id, so a corrected posting after a
    validation fault must go out under a new one; a crash-retry resends the stored body and therefore the
    same id."""
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return {
        "store_id": store_id, "invoice_id": invoice_id, "kind": kind, "seq": seq, "entity": entity,
        "amount": str(amount), "currency": currency, "ref": ref, "marker": marker,
        "request_id": request_id("sovterm", marker, digest), "body": body, "txn_date": day.isoformat(),
        "review": review,
    }


def tax_of_refund(booked: Sequence[dict[str, Any]], amount: Decimal) -> Decimal:
    """The sales tax inside a refund of `amount` (`lines.refund_tax`): the tax the invoice's live SalesReceipts
    split out (`TxnTaxDetail.TotalTax` of their bodies), against what the invoice booked (sales and the
    customer's network fee), after the refunds already booked and the tax they carried."""
    live = [r for r in booked if r.get("status", "pending") in rules.ACTIVE]

    def tax(kind: str) -> Decimal:
        return sum((Decimal(str((loads(r["body"]).get("TxnTaxDetail") or {}).get("TotalTax", 0))) for r in live
                    if r["kind"] == kind and r["entity"] in ("SalesReceipt", "RefundReceipt")), Decimal(0))

    in_books = sum((Decimal(r["amount"]) for r in live if r["kind"] in (rules.SALE, rules.FEE)), Decimal(0))
    before = sum((Decimal(r["amount"]) for r in live if r["kind"] == rules.REFUND), Decimal(0))
    return lines.refund_tax(tax(rules.SALE), in_books, before, tax(rules.REFUND), amount)


def build_body(p: rules.NewPosting, marker: str, currency: str, m: StoreMapping, ctx: CurrencyContext,
               rate: Decimal | None, *, sale: items.SaleContext | None = None,
               price: Decimal | None = None, refund_tax: Decimal | None = None) -> dict[str, Any]:
    """The QuickBooks request body for one planned posting (`sale`: its items, tax and class/location;
    `refund_tax`: the sales tax inside a refund, for a store that splits tax out)."""
    if p.cashu:  # ecash is deposited to (and refunded from) the Cashu ecash account
        assert m.cashu_account_id is not None
        m = dataclasses.replace(m, deposit_account_id=m.cashu_account_id)
    if sale is not None and sale.campaign is not None:  # a Crowdfund app with its own income account
        m = dataclasses.replace(m, income_account_id=sale.campaign.income_account_id, item_id=sale.campaign.item_id)
    common = {"marker": marker, "txn_date": p.txn_date, "currency": currency, "ctx": ctx, "exchange_rate": rate,
              "note": p.memo}
    class_id = sale.class_id if sale else m.class_id
    location = sale.department_id if sale else m.department_id
    if p.kind == rules.FEE:
        assert m.fee_collected_account_id is not None
        customer = p.qbo_invoice.customer_id if p.qbo_invoice else m.customer_id
        line = DepositLine(m.fee_collected_account_id, p.amount, p.memo, customer, class_id)
        return build_deposit(deposit_account_id=m.deposit_account_id, lines=[line], department_id=location, **common)
    if p.entity == "SalesReceipt":
        lines, tax = items.sale_lines(sale, m, p.amount, price, p.memo) if sale else (None, None)
        return build_sales_receipt(item_id=m.item_id, amount=p.amount, deposit_account_id=m.deposit_account_id,
                                   customer_id=m.customer_id, payment_method_id=m.payment_method_id,
                                   class_id=class_id, tax_code_id=m.tax_code_id, description=p.memo,
                                   department_id=location, lines=lines, tax=tax, **common)
    if p.entity == "Deposit":
        tax = items.deposit_tax(sale, p.amount, price) if sale else Decimal(0)
        lines = [DepositLine(m.income_account_id, p.amount - tax, p.memo, m.customer_id, class_id)]
        if tax and sale and sale.tax.account_id:
            lines.append(DepositLine(sale.tax.account_id, tax, f"sales tax — {p.memo}", m.customer_id, class_id))
        return build_deposit(deposit_account_id=m.deposit_account_id, lines=lines, department_id=location, **common)
    if p.entity == "Payment":
        assert p.qbo_invoice is not None and p.applied is not None
        return build_payment(customer_id=p.qbo_invoice.customer_id, invoice_id=p.qbo_invoice.id, amount=p.applied,
                             total=p.amount, deposit_account_id=m.deposit_account_id,
                             payment_method_id=m.payment_method_id, reference=None, **common)
    if p.entity == "RefundReceipt":
        customer = p.qbo_invoice.customer_id if p.qbo_invoice else m.customer_id
        split, tax = (items.refund_lines(sale, m, p.amount, refund_tax, p.memo)
                      if sale is not None and refund_tax is not None else (None, None))
        return build_refund_receipt(item_id=m.item_id, amount=p.amount, refund_from_account_id=m.deposit_account_id,
                                    customer_id=customer, payment_method_id=m.payment_method_id,
                                    description=p.memo, class_id=class_id, department_id=location, lines=split,
                                    tax=tax, **common)
    raise ValueError(f"no builder for {p.entity}")
