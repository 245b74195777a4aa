"""The QuickBooks simulator's company books: entities, the rules Intuit enforces, the query subset.

Kept apart from the HTTP layer in `qbo.py` so the rules read as a list. Faults are raised as
`SimFault` and rendered by the HTTP layer in Intuit's JSON shape.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CANONICAL = {
    name.lower(): name
    for name in (
        "Account", "Item", "Customer", "PaymentMethod", "Class", "TaxCode", "Invoice", "SalesReceipt",
        "Payment", "Deposit", "RefundReceipt", "Purchase", "Transfer", "JournalEntry", "Preferences", "Department",
        "TaxRate",
    )
}
LISTS = {"Account", "Item", "Customer", "PaymentMethod", "Class", "TaxCode", "Department", "TaxRate"}
TRANSACTIONS = {"Invoice", "SalesReceipt", "Payment", "Deposit", "RefundReceipt", "Purchase", "Transfer",
                "JournalEntry"}
ACCOUNT_TYPES = {
    "Bank", "Accounts Receivable", "Other Current Asset", "Fixed Asset", "Other Asset", "Accounts Payable",
    "Credit Card", "Other Current Liability", "Long Term Liability", "Equity", "Income", "Cost of Goods Sold",
    "Expense", "Other Income", "Other Expense", "Non-Posting",
}
BALANCE_SHEET = {
    "Bank", "Accounts Receivable", "Other Current Asset", "Fixed Asset", "Other Asset", "Accounts Payable",
    "Credit Card", "Other Current Liability", "Long Term Liability", "Equity",
}
_COMMON_QUERYABLE = {"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime"}
QUERYABLE = {
    "Account": {"Name", "AccountType", "Active", "Classification", "FullyQualifiedName", "CurrencyRef"},
    "Item": {"Name", "Type", "Active", "FullyQualifiedName", "Sku"},  # Finance.xsd: Sku "Filterable: ALL"
    "Customer": {"DisplayName", "GivenName", "FamilyName", "CompanyName", "Active", "PrimaryEmailAddr"},
    "PaymentMethod": {"Name", "Active", "Type"},
    "Class": {"Name", "Active", "FullyQualifiedName"},
    "TaxCode": {"Name", "Active"},
    "TaxRate": {"Name", "Active"},
    "Department": {"Name", "Active", "FullyQualifiedName"},
    "Preferences": set(),
    **{t: {"DocNumber", "TxnDate", "CustomerRef", "TotalAmt"} for t in TRANSACTIONS},
}
QUERYABLE["Invoice"] = QUERYABLE["Invoice"] | {"Balance", "DueDate"}
# Finance.xsd on DocNumber: "Filter support not provided for Payment"; Intuit documents no DocNumber filter
# for Transfer either, and its accounts are not filterable: a marker look-up must go by date (and customer)
QUERYABLE["Payment"] = {"TxnDate", "CustomerRef", "TotalAmt"}
QUERYABLE["Transfer"] = {"TxnDate"}
MAX_DOCNUMBER = 21
#: Intuit's ExchangeRate entity: home units per one unit of the source currency (the simulator's table,
#: the same for every day unless a test sets one for a date)
DEFAULT_RATES = {"EUR": Decimal("1.0825"), "GBP": Decimal("1.2710"), "CAD": Decimal("0.7310"), "CHF": Decimal("1.1290"),
                 "USD": Decimal("1")}


class SimFault(Exception):
    def __init__(self, code: str, message: str, detail: str = "", *, element: str = "",
                 fault_type: str = "ValidationFault", status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.detail, self.element = code, message, detail, element
        self.fault_type, self.status = fault_type, status

    def body(self) -> dict[str, Any]:
        return {"Fault": {"Error": [{"Message": self.message, "Detail": self.detail or self.message,
                                     "code": self.code, "element": self.element}],
                          "type": self.fault_type}, "time": _now_iso()}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S-00:00", time.gmtime())


def _dec(value: Any, element: str) -> Decimal:
    try:
        return Decimal(str(value))
    except Exception:
        raise SimFault("2090", "Invalid Number", f"{element} is not a number", element=element) from None


def _ref(body: dict[str, Any], key: str) -> str | None:
    ref = body.get(key)
    return str(ref["value"]) if isinstance(ref, dict) and "value" in ref else None


@dataclass
class Books:
    realm_id: str
    home_currency: str = "USD"
    multicurrency: bool = False
    enforce_unique_docnumber: bool = True
    entities: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 1
    rates: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (source, YYYY-MM-DD) → rate
    #: sales tax: a US company uses automated sales tax (Preferences.TaxPrefs.PartnerTaxEnabled), whose engine
    #: the simulator stands in for with one rate (percent) for the company's address; any other country
    #: uses tax codes per line (see `_sales_lines`)
    country: str = "US"
    ast_rate: Decimal = Decimal("8.25")

    def exchange_rate(self, source: str, as_of: str) -> dict[str, Any]:
        """GET exchangerate?sourcecurrencycode=…&asofdate=…: home units per one `source` unit."""
        source = source.upper()
        if not re.fullmatch(r"[A-Z]{3}", source) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", as_of):
            raise SimFault("2010", "Request has invalid or unsupported property",
                           "sourcecurrencycode and asofdate (YYYY-MM-DD) are required")
        if source == self.home_currency:
            rate = Decimal("1")
        else:
            usd = DEFAULT_RATES  # per US dollar
            if (source, as_of) in self.rates:
                rate = self.rates[(source, as_of)]
            elif source in usd and self.home_currency in usd:
                rate = (usd[source] / usd[self.home_currency]).quantize(Decimal("0.0001"))
            else:
                raise SimFault("610", "Object Not Found", f"no exchange rate for {source}")
        return {"SourceCurrencyCode": source, "TargetCurrencyCode": self.home_currency, "Rate": rate,
                "AsOfDate": as_of, "SyncToken": "0", "MetaData": {"LastUpdatedTime": _now_iso()}}

    # -- helpers -------------------------------------------------------------------------------------

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.entities.setdefault(entity, {})

    def get(self, entity: str, entity_id: str | None, element: str = "") -> dict[str, Any]:
        doc = self.table(entity).get(str(entity_id)) if entity_id is not None else None
        if doc is None:
            raise SimFault("2500", "Invalid Reference Id",
                           f"Invalid Reference Id : {entity} assigned to {element or 'Id'} does not exist",
                           element=element)
        return doc

    def _store(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = dict(body)
        doc.pop("sparse", None)
        doc["Id"] = str(self.next_id)
        self.next_id += 1
        doc["SyncToken"] = "0"
        stamp = _now_iso()
        doc["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        if entity in LISTS:
            doc.setdefault("Active", True)
        self.table(entity)[doc["Id"]] = doc
        return doc

    def add(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """Seed a document without validation (used by `seed_company`)."""
        return self._store(entity, body)

    # -- create -------------------------------------------------------------------------------------

    def create(self, entity: str, body: dict[str, Any], *, allow_duplicate_docnumber: bool = False) -> dict[str, Any]:
        check = getattr(self, f"_check_{entity.lower()}", None)
        if check is None or entity == "Preferences":
            raise SimFault("610", "Object Not Found", f"{entity} cannot be created here")
        if entity in LISTS:
            check(body)
            return self._store(entity, body)
        body = dict(body)
        self._check_transaction(entity, body, allow_duplicate_docnumber)
        check(body)
        return self._store(entity, body)

    def _unique_name(self, entity: str, key: str, body: dict[str, Any]) -> str:
        name = str(body.get(key) or "").strip()
        if not name:
            raise SimFault("6000", "A business validation error has occurred", f"{key} is required", element=key)
        for doc in self.table(entity).values():
            if str(doc.get(key, "")).lower() == name.lower():
                raise SimFault("6240", "Duplicate Name Exists Error",
                               f"The name supplied already exists. : Id={doc['Id']}", element=key)
        return name

    def _check_account(self, body: dict[str, Any]) -> None:
        name = self._unique_name("Account", "Name", body)
        if '"' in name or ":" in name or len(name) > 100:
            raise SimFault("6000", "A business validation error has occurred", "invalid account name", element="Name")
        if "AccountType" not in body and "AccountSubType" not in body:
            raise SimFault("6010", "Invalid account type", "AccountType or AccountSubType is required")
        if body.get("AccountType") and body["AccountType"] not in ACCOUNT_TYPES:
            raise SimFault("2020", "Required param missing, need to supply the required value for the API",
                           f"unknown AccountType {body['AccountType']}", element="AccountType")
        body.setdefault("AccountType", "Other Current Asset")
        body.setdefault("CurrentBalance", Decimal("0"))

    def _check_item(self, body: dict[str, Any]) -> None:
        self._unique_name("Item", "Name", body)
        if body.get("Type", "Service") in ("Service", "NonInventory"):
            account = self.get("Account", _ref(body, "IncomeAccountRef"), "IncomeAccountRef")
            if account["AccountType"] not in ("Income", "Other Income"):
                raise SimFault("6000", "A business validation error has occurred",
                               "IncomeAccountRef must be an income account", element="IncomeAccountRef")

    def _check_customer(self, body: dict[str, Any]) -> None:
        if not any(body.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "DisplayName", "Suffix")):
            raise SimFault("6080", "Required field missing", "a name field is required")
        body.setdefault("DisplayName", " ".join(str(body.get(k, "")) for k in ("GivenName", "FamilyName")).strip())
        self._unique_name("Customer", "DisplayName", body)
        body.setdefault("CurrencyRef", {"value": self.home_currency})

    def _check_paymentmethod(self, body: dict[str, Any]) -> None:
        name = self._unique_name("PaymentMethod", "Name", body)
        if len(name) > 31:
            raise SimFault("6000", "A business validation error has occurred", "Name too long", element="Name")
        body.setdefault("Type", "NON_CREDIT_CARD")

    def _check_class(self, body: dict[str, Any]) -> None:
        self._unique_name("Class", "Name", body)

    def _check_department(self, body: dict[str, Any]) -> None:
        self._unique_name("Department", "Name", body)

    def active(self, entity: str, entity_id: str | None, element: str) -> dict[str, Any]:
        """A referenced list entry that must exist and be active. QuickBooks refuses a transaction naming an
        inactive class, location, item or customer (the simulator's wording is its own)."""
        doc = self.get(entity, entity_id, element)
        if doc.get("Active") is False:
            raise SimFault("6000", "A business validation error has occurred",
                           f"{entity} assigned to {element} is inactive: {doc.get('Name', entity_id)}", element=element)
        return doc

    def tax_rate(self, code_id: str) -> Decimal:
        """The percent of a (non-US) tax code: the sum of the `RateValue` of the TaxRates in its
        `SalesTaxRateList` (Finance.xsd `TaxCode`, `TaxRate`)."""
        code = self.get("TaxCode", code_id, "TaxCodeRef")
        details = ((code.get("SalesTaxRateList") or {}).get("TaxRateDetail")) or []
        return sum((_dec(self.get("TaxRate", _ref(d, "TaxRateRef"), "TaxRateRef").get("RateValue", 0), "RateValue")
                    for d in details), Decimal(0))

    def _check_transaction(self, entity: str, body: dict[str, Any], allow_dup: bool) -> None:
        doc_number = body.get("DocNumber")
        if doc_number is not None:
            if len(str(doc_number)) > MAX_DOCNUMBER:
                raise SimFault("6000", "A business validation error has occurred",
                               f"DocNumber is longer than {MAX_DOCNUMBER} characters", element="DocNumber")
            if self.enforce_unique_docnumber and not allow_dup:
                for doc in self.table(entity).values():
                    if doc.get("DocNumber") == doc_number:
                        raise SimFault("6140", "Duplicate Document Number Error",
                                       f"Duplicate Document Number Error : You must specify a different number. "
                                       f"This number has already been used. DocNumber={doc_number} is assigned "
                                       f"to TxnType={entity} with TxnId={doc['Id']}", element="DocNumber")
        body.setdefault("TxnDate", time.strftime("%Y-%m-%d", time.gmtime()))
        currency = _ref(body, "CurrencyRef")
        if currency and currency != self.home_currency:
            if not self.multicurrency:
                raise SimFault("6000", "A business validation error has occurred",
                               "Multicurrency is not enabled for this company", element="CurrencyRef")
            if "ExchangeRate" not in body:
                raise SimFault("6000", "A business validation error has occurred",
                               "ExchangeRate is required for a foreign-currency transaction", element="ExchangeRate")
        body.setdefault("CurrencyRef", {"value": currency or self.home_currency})
        for key in ("CustomerRef",):
            if key in body:
                self.get("Customer", _ref(body, key), key)
        for key in ("DepositToAccountRef", "AccountRef", "FromAccountRef", "ToAccountRef"):
            if key in body:
                self.get("Account", _ref(body, key), key)
        if "PaymentMethodRef" in body:
            self.get("PaymentMethod", _ref(body, "PaymentMethodRef"), "PaymentMethodRef")
        if "ClassRef" in body:
            self.active("Class", _ref(body, "ClassRef"), "ClassRef")
        if "DepartmentRef" in body:
            self.active("Department", _ref(body, "DepartmentRef"), "DepartmentRef")

    def _lines(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        lines = body.get("Line")
        if not isinstance(lines, list) or not lines:
            raise SimFault("2020", "Required param missing, need to supply the required value for the API",
                           "Line is required", element="Line")
        return lines

    def _sales_lines(self, body: dict[str, Any]) -> Decimal:
        """The document's total, with its sales tax worked out as QuickBooks does.

        - US company (automated sales tax): lines are net; the engine computes tax on the lines coded `TAX`
          (here at `ast_rate`) and adds it on top, unless the request carries `TxnTaxDetail.TotalTax`, which
          it honours ("Whenever an explicit tax amount is sent in the transaction request the AST engine
          honors the amount": Intuit, "Using QuickBooks Online API for automated sales tax", 2017).
        - Other countries: each line's `TaxCodeRef` names the rate. `GlobalTaxCalculation` TaxExcluded (the
          default) adds the tax on top of the net lines; TaxInclusive takes it out of each line's gross
          (`TaxInclusiveAmt`, Finance.xsd: "total amount of line item including tax"; `Amount` is the net),
          so the total is the gross. A supplied `TxnTaxDetail.TotalTax` is used as is (Finance.xsd
          TxnTaxDetail: "This can be calculated by QuickBooks business logic or you may supply it"), and then
          the net lines plus the tax must make the gross.
        The simulator's reading: with TaxInclusive, `Qty × UnitPrice` is checked against the gross."""
        us = self.country.upper() == "US"
        inclusive = not us and body.get("GlobalTaxCalculation") == "TaxInclusive"
        net_total = gross_total = tax = Decimal("0")
        for line in self._lines(body):
            amount = _dec(line.get("Amount"), "Line.Amount")
            if line.get("DetailType") != "SalesItemLineDetail":
                raise SimFault("6000", "A business validation error has occurred", "unsupported line DetailType")
            detail = line.get("SalesItemLineDetail") or {}
            self.active("Item", _ref(detail, "ItemRef"), "ItemRef")
            if "ClassRef" in detail:
                self.active("Class", _ref(detail, "ClassRef"), "ClassRef")
            code = _ref(detail, "TaxCodeRef")
            rate = Decimal(0)
            if us:
                if code not in (None, "TAX", "NON"):
                    self.get("TaxCode", code, "TaxCodeRef")
                rate = self.ast_rate if code == "TAX" else Decimal(0)
            elif code is not None:
                rate = self.tax_rate(code) if code not in ("TAX", "NON") else Decimal(0)
            gross = _dec(detail.get("TaxInclusiveAmt", amount), "TaxInclusiveAmt") if inclusive else amount
            if "Qty" in detail and "UnitPrice" in detail:
                if _dec(detail["Qty"], "Qty") * _dec(detail["UnitPrice"], "UnitPrice") != gross:
                    raise SimFault("6070", "Amount is not equal to UnitPrice * Qty",
                                   f"Amount {gross} != {detail['UnitPrice']} * {detail['Qty']}")
            if inclusive:
                line_tax = (gross * rate / (100 + rate)).quantize(Decimal("0.01"))
                if "TaxInclusiveAmt" not in detail:
                    line["Amount"] = amount = gross - line_tax
                    detail["TaxInclusiveAmt"] = gross
            else:
                line_tax = (amount * rate / 100).quantize(Decimal("0.01"))
            net_total += amount
            gross_total += gross
            tax += line_tax
        supplied = (body.get("TxnTaxDetail") or {}).get("TotalTax")
        if supplied is not None:
            tax = _dec(supplied, "TxnTaxDetail.TotalTax")
            if inclusive and net_total + tax != gross_total:
                raise SimFault("6000", "A business validation error has occurred",
                               f"net lines {net_total} + tax {tax} do not make the tax-inclusive total {gross_total}")
        if tax or supplied is not None or inclusive:
            body["TxnTaxDetail"] = {**(body.get("TxnTaxDetail") or {}), "TotalTax": tax}
        return gross_total if inclusive else net_total + tax

    def _check_salesreceipt(self, body: dict[str, Any]) -> None:
        body["TotalAmt"] = self._sales_lines(body)
        body["Balance"] = Decimal("0")

    def _check_refundreceipt(self, body: dict[str, Any]) -> None:
        if "DepositToAccountRef" not in body:
            raise SimFault("2020", "Required param missing, need to supply the required value for the API",
                           "DepositToAccountRef is required", element="DepositToAccountRef")
        body["TotalAmt"] = self._sales_lines(body)

    def _check_invoice(self, body: dict[str, Any]) -> None:
        if "CustomerRef" not in body:
            raise SimFault("2020", "Required param missing", "CustomerRef is required", element="CustomerRef")
        body["TotalAmt"] = self._sales_lines(body)
        body["Balance"] = body["TotalAmt"]

    def _check_payment(self, body: dict[str, Any]) -> None:
        if "CustomerRef" not in body or "TotalAmt" not in body:
            raise SimFault("2020", "Required param missing", "CustomerRef and TotalAmt are required")
        total = _dec(body["TotalAmt"], "TotalAmt")
        applied = Decimal("0")
        changes: list[tuple[dict[str, Any], Decimal]] = []
        for line in body.get("Line", []):
            amount = _dec(line.get("Amount"), "Line.Amount")
            for linked in line.get("LinkedTxn", []):
                if linked.get("TxnType") != "Invoice":
                    raise SimFault("6000", "A business validation error has occurred", "only Invoice links")
                invoice = self.get("Invoice", linked.get("TxnId"), "LinkedTxn.TxnId")
                if _ref(invoice, "CustomerRef") != _ref(body, "CustomerRef"):
                    raise SimFault("6000", "A business validation error has occurred",
                                   "the invoice belongs to another customer", element="CustomerRef")
                if amount > invoice["Balance"]:
                    raise SimFault("6000", "A business validation error has occurred",
                                   f"payment line {amount} exceeds the invoice balance {invoice['Balance']}")
                changes.append((invoice, amount))
            applied += amount
        if applied > total:
            raise SimFault("6000", "A business validation error has occurred", "lines exceed TotalAmt")
        for invoice, amount in changes:
            invoice["Balance"] -= amount
            invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
        body["UnappliedAmt"] = total - applied

    def _check_deposit(self, body: dict[str, Any]) -> None:
        if "DepositToAccountRef" not in body:
            raise SimFault("2020", "Required param missing", "DepositToAccountRef is required for create",
                           element="DepositToAccountRef")
        total = Decimal("0")
        for line in self._lines(body):
            total += _dec(line.get("Amount"), "Line.Amount")
            if line.get("DetailType") == "DepositLineDetail":
                self.get("Account", _ref(line.get("DepositLineDetail") or {}, "AccountRef"), "AccountRef")
        body["TotalAmt"] = total

    def _check_purchase(self, body: dict[str, Any]) -> None:
        if "AccountRef" not in body:
            raise SimFault("2020", "Required param missing", "AccountRef is required", element="AccountRef")
        if body.get("PaymentType") not in ("Cash", "Check", "CreditCard"):
            raise SimFault("2020", "Required param missing", "PaymentType must be Cash, Check or CreditCard",
                           element="PaymentType")
        total = Decimal("0")
        for line in self._lines(body):
            total += _dec(line.get("Amount"), "Line.Amount")
            detail = line.get("AccountBasedExpenseLineDetail") or {}
            self.get("Account", _ref(detail, "AccountRef"), "AccountRef")
        body["TotalAmt"] = total

    def _check_journalentry(self, body: dict[str, Any]) -> None:
        """qbo.md (Finance.xsd `JournalEntry`): lines `JournalEntryLineDetail{PostingType: Debit|Credit,
        AccountRef}`, an `Entity` on Accounts Receivable/Payable lines, and debits equal to credits."""
        debits = credits = Decimal("0")
        for line in self._lines(body):
            amount = _dec(line.get("Amount"), "Line.Amount")
            if line.get("DetailType") != "JournalEntryLineDetail" or amount < 0:
                raise SimFault("6000", "A business validation error has occurred", "unsupported journal line")
            detail = line.get("JournalEntryLineDetail") or {}
            account = self.get("Account", _ref(detail, "AccountRef"), "AccountRef")
            if account["AccountType"] in ("Accounts Receivable", "Accounts Payable") and not detail.get("Entity"):
                raise SimFault("6000", "A business validation error has occurred",
                               "an Accounts Receivable or Payable line needs a customer or vendor (Entity)")
            if detail.get("PostingType") == "Debit":
                debits += amount
            elif detail.get("PostingType") == "Credit":
                credits += amount
            else:
                raise SimFault("2020", "Required param missing", "PostingType is Debit or Credit",
                               element="PostingType")
        if debits != credits:
            raise SimFault("6000", "A business validation error has occurred",
                           f"Transaction must be balanced: debits {debits} != credits {credits}")
        body["TotalAmt"] = debits

    def _check_transfer(self, body: dict[str, Any]) -> None:
        for key in ("FromAccountRef", "ToAccountRef"):
            account = self.get("Account", _ref(body, key), key)
            if account["AccountType"] not in BALANCE_SHEET:
                raise SimFault("6000", "A business validation error has occurred",
                               f"{key} must be a Balance Sheet account", element=key)
        if _dec(body.get("Amount"), "Amount") <= 0:
            raise SimFault("6000", "A business validation error has occurred", "Amount must be positive")

    # -- update / void / delete -------------------------------------------------------------------------

    def _current(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = self.table(entity).get(str(body.get("Id")))
        if doc is None:
            raise SimFault("610", "Object Not Found", "Object Not Found : Something you're trying to use has "
                           "been made inactive. Check the fields with accounts, customers, items...", element="Id")
        if str(body.get("SyncToken")) != doc["SyncToken"]:
            raise SimFault("5010", "Stale Object Error",
                           f"Stale Object Error : You and another user were working on the same thing. "
                           f"SyncToken {body.get('SyncToken')} != {doc['SyncToken']}")
        return doc

    def _bump(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc["SyncToken"] = str(int(doc["SyncToken"]) + 1)
        doc["MetaData"]["LastUpdatedTime"] = _now_iso()
        return doc

    def update(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._current(entity, body)
        if entity in ("Payment", "SalesReceipt", "Deposit", "RefundReceipt", "Purchase", "Transfer") and (
            body.get("sparse") is not True
        ):
            raise SimFault("6000", "A business validation error has occurred",
                           "the simulator supports sparse updates only")
        for key, value in body.items():
            if key not in ("Id", "SyncToken", "sparse", "MetaData", "Line", "TotalAmt", "Balance"):
                doc[key] = value
        return self._bump(doc)

    def void(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._current(entity, body)
        if entity == "Payment":
            self._unapply_payment(doc)
        for line in doc.get("Line", []):
            line["Amount"] = Decimal("0")
        doc["TotalAmt"] = Decimal("0")
        if entity == "Invoice":
            doc["Balance"] = Decimal("0")
        doc["PrivateNote"] = ("Voided - " + str(doc.get("PrivateNote") or "")).strip(" -")
        doc["TxnStatus"] = "Voided"
        return self._bump(doc)

    def delete(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._current(entity, body)
        if entity == "Payment":
            self._unapply_payment(doc)
        del self.table(entity)[doc["Id"]]
        return {"Id": doc["Id"], "status": "Deleted", "domain": "QBO"}

    def _unapply_payment(self, payment: dict[str, Any]) -> None:
        for line in payment.get("Line", []):
            for linked in line.get("LinkedTxn", []):
                invoice = self.table("Invoice").get(str(linked.get("TxnId")))
                if invoice is not None:
                    invoice["Balance"] += _dec(line.get("Amount"), "Amount")
                    self._bump(invoice)

    # -- queries ------------------------------------------------------------------------------------

    def query(self, text: str) -> dict[str, Any]:
        parsed = parse_query(text)
        entity = CANONICAL.get(parsed.entity.lower())
        if entity is None:
            raise SimFault("4001", "Invalid query", f"QueryValidationError: unknown entity {parsed.entity}")
        allowed = QUERYABLE[entity] | _COMMON_QUERYABLE
        for cond in parsed.where:
            if cond.field not in allowed:
                raise SimFault("4001", "Invalid query",
                               f"QueryValidationError: property '{cond.field}' is not queryable")
        if entity == "Preferences":
            rows = [self.preferences()]
        else:
            rows = [d for d in self.table(entity).values() if all(c.matches(d) for c in parsed.where)]
            if entity in LISTS and not any(c.field == "Active" for c in parsed.where):
                rows = [d for d in rows if d.get("Active", True)]  # like Intuit: inactive ones only on request
        if parsed.count:
            return {"QueryResponse": {"totalCount": len(rows)}, "time": _now_iso()}
        for key, desc in reversed(parsed.order):
            rows.sort(key=lambda d: _sort_key(_field(d, key)), reverse=desc)
        if parsed.max_results > 1000:
            raise SimFault("4001", "Invalid query", "QueryValidationError: MAXRESULTS must be at most 1000")
        page = rows[parsed.start - 1: parsed.start - 1 + parsed.max_results]
        if not page:
            return {"QueryResponse": {}, "time": _now_iso()}
        return {"QueryResponse": {entity: page, "startPosition": parsed.start, "maxResults": len(page)},
                "time": _now_iso()}

    def preferences(self) -> dict[str, Any]:
        return {"Id": "1", "SyncToken": "0", "CurrencyPrefs": {
            "MultiCurrencyEnabled": self.multicurrency, "HomeCurrency": {"value": self.home_currency}},
            "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": self.country.upper() == "US"}}


def _field(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node = node.get("value", node.get("Address"))
    return node


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return (0, Decimal(value))
    return (1, str(value or ""))


@dataclass
class Condition:
    field: str
    op: str
    values: list[str]

    def matches(self, doc: dict[str, Any]) -> bool:
        have = _field(doc, self.field)
        if have is None:
            return False
        if isinstance(have, bool):
            have = "true" if have else "false"
        if self.op == "in":
            return any(_compare(have, v) == 0 for v in self.values)
        if self.op == "like":
            pattern = "^" + ".*".join(re.escape(p) for p in self.values[0].split("%")) + "$"
            return re.match(pattern, str(have), re.IGNORECASE) is not None
        result = _compare(have, self.values[0])
        return {"=": result == 0, "<": result < 0, ">": result > 0, "<=": result <= 0,
                ">=": result >= 0, "!=": result != 0}[self.op]


def _compare(have: Any, want: str) -> int:
    if isinstance(have, (int, Decimal)) and not isinstance(have, bool):
        try:
            a, b = Decimal(have), Decimal(want)
            return (a > b) - (a < b)
        except Exception:
            pass
    a2, b2 = str(have).lower(), want.lower()
    return (a2 > b2) - (a2 < b2)


@dataclass
class ParsedQuery:
    entity: str
    count: bool
    where: list[Condition]
    order: list[tuple[str, bool]]
    start: int
    max_results: int


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<op><=|>=|!=|=|<|>|\(|\)|,|\*)|(?P<word>[\w.%-]+))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SimFault("4000", "Error parsing query", f"QueryParserError: Encountered \"{text[pos:pos + 10]}\"")
        pos = match.end()
        if match["str"] is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", match["str"][1:-1])))
        elif match["op"] is not None:
            out.append(("op", match["op"]))
        else:
            out.append(("word", match["word"]))
    return out


def parse_query(text: str) -> ParsedQuery:
    toks = _tokens(text)
    pos = 0

    def take(kind: str | None = None, value: str | None = None) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise SimFault("4000", "Error parsing query", "QueryParserError: unexpected end of query")
        tkind, tval = toks[pos]
        if (kind and tkind != kind) or (value and tval.lower() != value):
            raise SimFault("4000", "Error parsing query", f"QueryParserError: Encountered \"{tval}\"")
        pos += 1
        return tval

    def peek(value: str) -> bool:
        return pos < len(toks) and toks[pos][1].lower() == value

    take("word", "select")
    count = False
    if peek("count"):
        take()
        take("op", "(")
        take("op", "*")
        take("op", ")")
        count = True
    else:
        take("op", "*")
    take("word", "from")
    entity = take("word")
    where: list[Condition] = []
    if peek("where"):
        take()
        while True:
            name = take("word")
            tkind, op = toks[pos] if pos < len(toks) else ("", "")
            if tkind == "op" and op in ("=", "<", ">", "<=", ">=", "!="):
                take()
                values = [_literal(toks, pos)]
                pos += 1
            elif op.lower() == "like":
                take()
                values = [take("str")]
                op = "like"
            elif op.lower() == "in":
                take()
                take("op", "(")
                values = [_literal(toks, pos)]
                pos += 1
                while peek(","):
                    take()
                    values.append(_literal(toks, pos))
                    pos += 1
                take("op", ")")
                op = "in"
            elif op.lower() == "or":
                raise SimFault("4000", "Error parsing query", "QueryParserError: OR is not supported")
            else:
                raise SimFault("4000", "Error parsing query", f"QueryParserError: Encountered \"{op}\"")
            where.append(Condition(name, op, values))
            if peek("and"):
                take()
                continue
            if peek("or"):
                raise SimFault("4000", "Error parsing query", "QueryParserError: OR is not supported")
            break
    order: list[tuple[str, bool]] = []
    if peek("orderby") or peek("order"):
        if take().lower() == "order":
            take("word", "by")
        while True:
            key = take("word")
            desc = False
            if peek("asc") or peek("desc"):
                desc = take().lower() == "desc"
            order.append((key, desc))
            if not peek(","):
                break
            take()
    start, max_results = 1, 100
    while pos < len(toks):
        word = take("word").lower()
        if word == "startposition":
            start = int(take("word"))
        elif word == "maxresults":
            max_results = int(take("word"))
        else:
            raise SimFault("4000", "Error parsing query", f"QueryParserError: Encountered \"{word}\"")
    if start < 1:
        raise SimFault("4001", "Invalid query", "QueryValidationError: STARTPOSITION must be at least 1")
    return ParsedQuery(entity, count, where, order, start, max_results)


def _literal(toks: list[tuple[str, str]], pos: int) -> str:
    if pos >= len(toks) or toks[pos][0] == "op":
        raise SimFault("4000", "Error parsing query", "QueryParserError: a value is expected")
    return toks[pos][1]
