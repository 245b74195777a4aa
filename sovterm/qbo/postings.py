"""QuickBooks documents sovterm writes, and how each is found again after a crash.

Every document carries a marker `SV` + 19 base32 characters derived from the logical operation. The
private note starts with `sovterm:<marker>` next to the BTC amount and rate, for people reading the
books and for finding the document again. Where Intuit documents a `DocNumber` filter (SalesReceipt,
Deposit, RefundReceipt, Purchase...) the marker goes into `DocNumber` too (at most 21 characters), so
one query `DocNumber IN (...)` finds up to 50 documents. Payment and Transfer are different: Finance.xsd
says of `DocNumber` "Filter support not provided for Payment", Intuit documents none for Transfer, and
Intuit's SDKs and captured real ones never carry one. Those two carry no `DocNumber`; they are found by
what Intuit documents as filterable (`TxnDate`, and `CustomerRef` for a Payment) and the marker is
matched in the private note on our side (`PrivateNote` itself is not queryable: `4001`).

A retried create therefore cannot silently duplicate: Intuit replays the same `requestid`; when it
does not, a company that enforces unique numbers answers `6140` and we look the marker up; and after
an unknown outcome (timeout, dropped connection) we look it up before reporting failure.

Amounts are `Decimal` fiat at the value BTCPay recorded. BTC is no QuickBooks currency, so documents
are in the fiat currency; a non-home currency gets `CurrencyRef` and `ExchangeRate` (home units per
one foreign unit), which needs multicurrency switched on in the company.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sovterm.amounts import sats_to_btc
from sovterm.errors import UserFacingError
from sovterm.qbo.client import QBOClient, quote_literal, request_id
from sovterm.qbo.errors import QBODuplicateDocNumber, QBOUnavailable, QBOValidationError

log = logging.getLogger(__name__)

MARKER_PREFIX = "SV"
MARKER_LENGTH = 21  # Intuit's DocNumber limit
#: entities Intuit documents no DocNumber filter for: found by date (and customer) and the memo's marker
FOUND_BY_MEMO = frozenset({"Payment", "Transfer"})
#: one look-up query covers documents dated at most this many days apart (a backfill spans months)
LOOKUP_SPAN_DAYS = 7
#: QuickBooks voids only SalesReceipt and Payment (`include=void`) among what sovterm writes; these it deletes
#: (Intuit's reference has "Delete" and no "Void" for them; python-quickbooks gives them DeleteMixin only)
VOID_BY_DELETE = frozenset({"Deposit", "RefundReceipt", "Purchase", "Transfer", "JournalEntry"})
_MARKER_IN_NOTE = re.compile(r"sovterm:(SV[A-Z2-7]{19})(?![A-Z2-7])")


def marker_for(*parts: object) -> str:
    """A stable 21-character marker for one logical posting, e.g. ("salesreceipt", store, invoice, 0)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return MARKER_PREFIX + base64.b32encode(digest).decode()[: MARKER_LENGTH - len(MARKER_PREFIX)]


def marker_of(doc: dict[str, Any]) -> str | None:
    """The sovterm marker a QuickBooks document (or a request body) carries, in `DocNumber` or in the
    private note (`sovterm:SV…`, also after QuickBooks prefixes "Voided - "); None for anyone else's."""
    number = str(doc.get("DocNumber") or "")
    if number.startswith(MARKER_PREFIX) and len(number) == MARKER_LENGTH:
        return number
    found = _MARKER_IN_NOTE.search(str(doc.get("PrivateNote") or ""))
    return found[1] if found else None


def _body_marker(body: dict[str, Any]) -> str:
    marker = marker_of(body)
    if marker is None:
        raise ValueError("a sovterm document body without a marker")
    return marker


def _day_ranges(bodies: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The bodies grouped by date, each group spanning at most `LOOKUP_SPAN_DAYS` days."""
    groups: list[list[dict[str, Any]]] = []
    start: date | None = None
    for body in sorted(bodies, key=lambda b: str(b["TxnDate"])):
        day = date.fromisoformat(str(body["TxnDate"]))
        if start is None or day - start >= timedelta(days=LOOKUP_SPAN_DAYS):
            groups.append([])
            start = day
        groups[-1].append(body)
    return groups


def lookup_queries(entity: str, bodies: Sequence[dict[str, Any]]) -> list[str]:
    """The few queries that find these documents of one entity again, whatever their number.

    By `DocNumber IN (...)` where Intuit documents that filter; for Payment and Transfer, one query per
    range of dates (`TxnDate`, plus `CustomerRef` when every Payment of the range has the same customer),
    whose rows are then matched by the marker in their private note (`find_documents`)."""
    if entity not in FOUND_BY_MEMO:
        markers = ", ".join(quote_literal(m) for m in sorted({_body_marker(b) for b in bodies}))
        return [f"SELECT * FROM {entity} WHERE DocNumber IN ({markers})"]
    queries = []
    for group in _day_ranges(bodies):
        first, last = str(group[0]["TxnDate"]), str(group[-1]["TxnDate"])
        where = f"TxnDate >= {quote_literal(first)} AND TxnDate <= {quote_literal(last)}"
        customers = {str((b.get("CustomerRef") or {}).get("value") or "") for b in group}
        if entity == "Payment" and len(customers) == 1 and "" not in customers:
            where += f" AND CustomerRef = {quote_literal(customers.pop())}"
        queries.append(f"SELECT * FROM {entity} WHERE {where}")
    return queries


async def find_documents(
    client: QBOClient, entity: str, bodies: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """{marker: document} for those of `bodies` QuickBooks already holds (see `lookup_queries`)."""
    wanted = {_body_marker(b) for b in bodies}
    found: dict[str, dict[str, Any]] = {}
    for sql in lookup_queries(entity, bodies):
        for doc in await client.query(sql):
            marker = marker_of(doc)
            if marker not in wanted:
                continue
            # a DocNumber alone could be anyone's: prefer the document whose note carries the marker too
            if marker not in found or f"sovterm:{marker}" in str(doc.get("PrivateNote") or ""):
                found[marker] = doc
    return found


@dataclass(frozen=True)
class CurrencyContext:
    """The company's home currency and whether multicurrency is on (`QBOClient.currency_settings()`)."""

    home: str
    multicurrency: bool


@dataclass(frozen=True)
class BtcDetail:
    """What BTCPay recorded, written into the private note (not into amounts)."""

    sats: int
    rate: Decimal  # fiat per BTC
    fiat_currency: str
    source: str  # e.g. "BTCPay invoice 7Hf3... (store Ab12...)"

    def describe(self) -> str:
        return f"{self.source}: {sats_to_btc(self.sats)} BTC at {self.rate} {self.fiat_currency}/BTC"


def private_note(marker: str, detail: BtcDetail | str | None) -> str:
    text = detail.describe() if isinstance(detail, BtcDetail) else (detail or "")
    return f"sovterm:{marker} {text}".strip()[:4000]


def _amount(value: Decimal, what: str = "amount") -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{what} must be a finite Decimal")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value}")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{what} {value} has more than 2 decimal places")
    return value


def currency_fields(ctx: CurrencyContext, currency: str, exchange_rate: Decimal | None) -> dict[str, Any]:
    """`CurrencyRef`/`ExchangeRate` for a document in `currency`."""
    currency = currency.upper()
    if currency == ctx.home.upper():
        return {"CurrencyRef": {"value": currency}} if ctx.multicurrency else {}
    if not ctx.multicurrency:
        raise UserFacingError(
            f"this QuickBooks company keeps its books in {ctx.home} without multicurrency; "
            f"a {currency} amount cannot be posted as is",
            fix="turn on multicurrency in QuickBooks (it cannot be turned off again), or price the store in "
            f"{ctx.home}",
        )
    if exchange_rate is None or exchange_rate <= 0:
        raise ValueError(f"a {currency} document needs the {ctx.home} per {currency} exchange rate")
    return {"CurrencyRef": {"value": currency}, "ExchangeRate": exchange_rate}


def _ref(value: str) -> dict[str, str]:
    return {"value": value}


def _header(marker: str, txn_date: date, note: BtcDetail | str | None, *, doc_number: bool = True) -> dict[str, Any]:
    """TxnDate and the private note with the marker; `DocNumber` only where Intuit filters on it."""
    if len(marker) > MARKER_LENGTH:
        raise ValueError("marker longer than DocNumber allows")
    header = {"TxnDate": txn_date.isoformat(), "PrivateNote": private_note(marker, note)}
    return {"DocNumber": marker, **header} if doc_number else header


def _location(body: dict[str, Any], department_id: str | None) -> None:
    """Location (QuickBooks calls it Department) on the header: `Transaction.DepartmentRef` in Finance.xsd."""
    if department_id:
        body["DepartmentRef"] = _ref(department_id)


def _sales_line(item_id: str, amount: Decimal, description: str | None,
                class_id: str | None, tax_code_id: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"ItemRef": _ref(item_id), "Qty": 1, "UnitPrice": amount}
    if class_id:
        detail["ClassRef"] = _ref(class_id)
    if tax_code_id:
        detail["TaxCodeRef"] = _ref(tax_code_id)
    line: dict[str, Any] = {"Amount": amount, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail}
    if description:
        line["Description"] = description[:4000]
    return line


def build_sales_receipt(
    *, marker: str, txn_date: date, item_id: str, amount: Decimal, deposit_account_id: str,
    currency: str, ctx: CurrencyContext, exchange_rate: Decimal | None = None, note: BtcDetail | str | None = None,
    customer_id: str | None = None, payment_method_id: str | None = None, class_id: str | None = None,
    tax_code_id: str | None = None, description: str | None = None, department_id: str | None = None,
    lines: list[dict[str, Any]] | None = None, tax: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A sale paid in full at once (deposit mode): money lands in the BTC asset account. `lines` (items, cart,
    tax split: `sync.lines`) replace the one line of `item_id`; `tax` is the header's tax fields."""
    body = _header(marker, txn_date, note)
    body.update(currency_fields(ctx, currency, exchange_rate))
    _location(body, department_id)
    if customer_id:
        body["CustomerRef"] = _ref(customer_id)
    body["Line"] = lines or [_sales_line(item_id, _amount(amount), description, class_id, tax_code_id)]
    body.update(tax or {})
    body["DepositToAccountRef"] = _ref(deposit_account_id)
    if payment_method_id:
        body["PaymentMethodRef"] = _ref(payment_method_id)
    return body


def build_payment(
    *, marker: str, txn_date: date, customer_id: str, invoice_id: str, amount: Decimal, deposit_account_id: str,
    currency: str, ctx: CurrencyContext, exchange_rate: Decimal | None = None, note: BtcDetail | str | None = None,
    payment_method_id: str | None = None, reference: str | None = None, total: Decimal | None = None,
) -> dict[str, Any]:
    """A payment applied to an open invoice (invoicing mode); `total` above `amount` leaves a credit."""
    total = _amount(total if total is not None else amount, "total")
    if total < _amount(amount):
        raise ValueError("the payment total cannot be less than the amount applied")
    body = _header(marker, txn_date, note, doc_number=False)
    body.update(currency_fields(ctx, currency, exchange_rate))
    body["Line"] = [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]
    body["CustomerRef"] = _ref(customer_id)
    body["DepositToAccountRef"] = _ref(deposit_account_id)
    if payment_method_id:
        body["PaymentMethodRef"] = _ref(payment_method_id)
    if reference:
        body["PaymentRefNum"] = reference[:21]
    body["TotalAmt"] = total
    return body


@dataclass(frozen=True)
class DepositLine:
    account_id: str  # where the money comes from (e.g. the income account)
    amount: Decimal
    description: str | None = None
    customer_id: str | None = None
    class_id: str | None = None


def build_deposit(
    *, marker: str, txn_date: date, deposit_account_id: str, lines: list[DepositLine], currency: str,
    ctx: CurrencyContext, exchange_rate: Decimal | None = None, note: BtcDetail | str | None = None,
    department_id: str | None = None,
) -> dict[str, Any]:
    """Money into the BTC asset account straight from income (no customer, deposit mode)."""
    if not lines:
        raise ValueError("a deposit needs at least one line")
    body = _header(marker, txn_date, note)
    body.update(currency_fields(ctx, currency, exchange_rate))
    _location(body, department_id)
    body["Line"] = []
    for line in lines:
        detail: dict[str, Any] = {"AccountRef": _ref(line.account_id)}
        if line.customer_id:
            detail["Entity"] = {"value": line.customer_id, "type": "Customer"}
        if line.class_id:
            detail["ClassRef"] = _ref(line.class_id)
        entry: dict[str, Any] = {"Amount": _amount(line.amount), "DetailType": "DepositLineDetail",
                                 "DepositLineDetail": detail}
        if line.description:
            entry["Description"] = line.description[:4000]
        body["Line"].append(entry)
    body["DepositToAccountRef"] = _ref(deposit_account_id)
    return body


def build_refund_receipt(
    *, marker: str, txn_date: date, item_id: str, amount: Decimal, refund_from_account_id: str, currency: str,
    ctx: CurrencyContext, exchange_rate: Decimal | None = None, note: BtcDetail | str | None = None,
    customer_id: str | None = None, payment_method_id: str | None = None, description: str | None = None,
    class_id: str | None = None, department_id: str | None = None,
    lines: list[dict[str, Any]] | None = None, tax: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Money paid back to a customer out of the BTC asset account. `lines` and `tax` (the header's tax
    fields) carry a taxed sale's split (`sync.items.refund_lines`) in place of the one line of `item_id`."""
    body = _header(marker, txn_date, note)
    body.update(currency_fields(ctx, currency, exchange_rate))
    _location(body, department_id)
    if customer_id:
        body["CustomerRef"] = _ref(customer_id)
    body["Line"] = lines or [_sales_line(item_id, _amount(amount), description, class_id, None)]
    body.update(tax or {})
    body["DepositToAccountRef"] = _ref(refund_from_account_id)
    if payment_method_id:
        body["PaymentMethodRef"] = _ref(payment_method_id)
    return body


def build_purchase(
    *, marker: str, txn_date: date, paying_account_id: str, expense_account_id: str, amount: Decimal,
    currency: str, ctx: CurrencyContext, exchange_rate: Decimal | None = None, note: BtcDetail | str | None = None,
    class_id: str | None = None, department_id: str | None = None,
) -> dict[str, Any]:
    """A network fee: an expense paid out of the BTC asset account."""
    body = _header(marker, txn_date, note)
    body.update(currency_fields(ctx, currency, exchange_rate))
    _location(body, department_id)
    detail: dict[str, Any] = {"AccountRef": _ref(expense_account_id)}
    if class_id:
        detail["ClassRef"] = _ref(class_id)
    body["Line"] = [{"Amount": _amount(amount), "DetailType": "AccountBasedExpenseLineDetail",
                     "AccountBasedExpenseLineDetail": detail}]
    body["AccountRef"] = _ref(paying_account_id)
    body["PaymentType"] = "Cash"
    return body


def build_transfer(
    *, marker: str, txn_date: date, from_account_id: str, to_account_id: str, amount: Decimal,
    note: BtcDetail | str | None = None, class_id: str | None = None,
) -> dict[str, Any]:
    """A payout: BTC leaves the asset account for another balance-sheet account."""
    if from_account_id == to_account_id:
        raise ValueError("a transfer needs two different accounts")
    body = _header(marker, txn_date, note, doc_number=False)
    body.update({"FromAccountRef": _ref(from_account_id), "ToAccountRef": _ref(to_account_id),
                 "Amount": _amount(amount)})
    if class_id:
        body["ClassRef"] = _ref(class_id)
    return body


@dataclass(frozen=True)
class PostResult:
    entity: str
    id: str
    sync_token: str
    marker: str
    created: bool  # False: it already existed (found by marker)
    document: dict[str, Any]


class Poster:
    def __init__(self, client: QBOClient) -> None:
        self._client = client

    async def find(self, entity: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The document this body created, if QuickBooks has it (found by its marker)."""
        return (await find_documents(self._client, entity, [body])).get(_body_marker(body))

    def _result(self, entity: str, doc: dict[str, Any], marker: str, created: bool) -> PostResult:
        return PostResult(entity, str(doc["Id"]), str(doc["SyncToken"]), marker, created, doc)

    async def post(
        self, entity: str, body: dict[str, Any], *, request_id: str, check_first: bool = False,
        attempts: int = 3,
    ) -> PostResult:
        """Create once. `check_first` after a crash whose outcome the ledger does not know.

        When a create goes out and no answer comes back, the marker is looked up before the same
        request (same requestid) is sent again: this holds even where Intuit ignores the requestid.
        """
        marker = _body_marker(body)
        if check_first and (found := await self.find(entity, body)) is not None:
            return self._result(entity, found, marker, False)
        for attempt in range(1, attempts + 1):
            try:
                doc = await self._client.create(entity, body, request_id=request_id, retry_unknown=False)
            except QBODuplicateDocNumber:
                found = await self.find(entity, body)
                if found is None:
                    raise
                log.info("qbo %s %s already existed (DocNumber taken)", entity, marker)
                return self._result(entity, found, marker, False)
            except QBOUnavailable:
                found = await self.find(entity, body)
                if found is not None:
                    log.info("qbo %s %s was created although the answer was lost", entity, marker)
                    return self._result(entity, found, marker, False)
                if attempt == attempts:
                    raise
                continue
            return self._result(entity, doc, marker, True)
        raise AssertionError("unreachable")

    async def void_sales_receipt(self, doc_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        return await self._client.void("SalesReceipt", doc_id, sync_token, request_id=request_id)

    async def void_payment(self, doc_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        return await self._client.void("Payment", doc_id, sync_token, request_id=request_id)


async def void_document(client: QBOClient, entity: str, doc_id: str, marker: str) -> str | None:
    """Void a document sovterm wrote (delete it where QuickBooks has no void); harmless if already done.
    Returns the voided document's SyncToken, None when it was deleted or was void or gone already."""
    try:
        doc = await client.read(entity, doc_id)
    except QBOValidationError:
        return None  # gone already (deleted)
    if doc.get("TxnStatus") == "Voided" or Decimal(str(doc.get("TotalAmt", "1"))) == 0:
        return None
    rid = request_id("void", marker, doc.get("SyncToken"))
    if entity in VOID_BY_DELETE:
        await client.delete(entity, doc_id, str(doc["SyncToken"]), request_id=rid)
        return None
    return str((await client.void(entity, doc_id, str(doc["SyncToken"]), request_id=rid)).get("SyncToken"))
