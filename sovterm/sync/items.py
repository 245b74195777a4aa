"""Items, sales tax and the class/location of a pay link: what a sale document needs beyond the store's
account mapping (docs/accounting.md, "Items", "Sales tax", "Class and location").

BTCPay items (a PoS cart's item ids, `itemCode`) are matched to QuickBooks Items: the operator's mapping
first (`sovterm setup items map`), else an Item whose SKU is the code, else one whose name is the item's
title or code. An item none of that finds follows the store's policy: `default` posts it to the mapped
sales item (its title in the line), `create` creates a Service item (name = title, SKU = code, income
account = the mapped one), `hold` keeps the posting back (the job is held, no attempt burnt) until the
operator maps the code; the held postings are listed with the item and released when it is mapped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sovterm.errors import UserFacingError
from sovterm.qbo.client import QBOClient, quote_literal, request_id
from sovterm.qbo.errors import QBODuplicateName
from sovterm.qbo.mapping import StoreMapping
from sovterm.sync import lines, records

ItemPolicy = Literal["default", "create", "hold"]
POLICIES: tuple[str, ...] = ("default", "create", "hold")
TAX_KINDS: tuple[str, ...] = ("none", "us", "inclusive")
POLICY_KEY = "sync:items:"
TAX_KEY = "sync:tax:"
LINK_KEY = "payLinkId"  # invoice metadata a pay link sets (links.service.LINK_METADATA_KEY; sync may not import links)
HELD_PREFIX = "waiting for item mapping"
LOOKUP_AGAIN_S = 600  # a held item is looked up in QuickBooks again at most this often (queries are metered)


class Unmapped(UserFacingError):
    """A posting names items the store's policy says to hold until they are mapped (the job is held)."""

    code = "items_unmapped"


@dataclass(frozen=True)
class TaxSetting:
    kind: lines.TaxKind = "none"
    tax_code_id: str | None = None  # inclusive companies: the code on every line without its own
    names: dict[str, str] = field(default_factory=dict)
    account_id: str | None = None  # where a Deposit (no tax lines) books the tax: a liability account


@dataclass(frozen=True)
class ItemRef:
    item_id: str
    tax_code_id: str | None = None


@dataclass(frozen=True)
class SaleContext:
    """Everything a sale document needs besides the mapping."""

    detail: lines.SaleDetail
    items: dict[str, ItemRef]
    tax: TaxSetting
    class_id: str | None
    department_id: str | None
    campaign: CampaignBooks | None = None  # a Crowdfund app's own income account and item, over the mapping


@dataclass(frozen=True)
class CampaignBooks:
    """Where a Crowdfund app's contributions go (`crowdfund_books`, set by `sovterm crowdfund books`)."""

    app_id: str
    income_account_id: str
    item_id: str
    class_id: str | None


async def campaign_books(db: Any, store_id: str, invoice_id: str, metadata: dict[str, Any]) -> CampaignBooks | None:
    """The books of the Crowdfund app this invoice is a contribution to, if that app has its own: the app
    BTCPay lists it under, or the one its `orderUrl` names (…/apps/<appId>/…, set by the Crowdfund page)."""
    order_url = str(metadata.get("orderUrl") or "")
    row = await db.fetchone(
        "SELECT b.app_id, b.income_account_id, b.item_id, b.class_id FROM crowdfund_books b WHERE b.store_id = ? AND ("
        " b.app_id IN (SELECT app_id FROM crowdfund_invoices WHERE store_id = ? AND invoice_id = ?)"
        " OR ? LIKE '%/apps/' || b.app_id || '/%') ORDER BY b.app_id LIMIT 1",
        (store_id, store_id, invoice_id, order_url))
    return CampaignBooks(*row) if row else None


async def get_policy(db: Any, store_id: str) -> ItemPolicy:
    value = await records.kv_get(db, POLICY_KEY + store_id) or {}
    return value.get("unknown", "default")  # type: ignore[no-any-return]


async def set_policy(db: Any, store_id: str, policy: str) -> None:
    if policy not in POLICIES:
        raise UserFacingError(f"unknown item policy {policy!r}", fix=f"use one of: {', '.join(POLICIES)}")
    await records.kv_put(db, POLICY_KEY + store_id, {"unknown": policy})


async def get_tax(db: Any, store_id: str) -> TaxSetting:
    value = await records.kv_get(db, TAX_KEY + store_id) or {}
    return TaxSetting(value.get("kind", "none"), value.get("tax_code_id"), value.get("names", {}),
                      value.get("account_id"))


async def set_tax(db: Any, store_id: str, setting: TaxSetting) -> None:
    await records.kv_put(db, TAX_KEY + store_id, {"kind": setting.kind, "tax_code_id": setting.tax_code_id,
                                                  "names": setting.names, "account_id": setting.account_id})


async def invoice_metadata(db: Any, store_id: str, invoice_id: str) -> dict[str, Any]:
    row = await db.fetchone("SELECT metadata FROM invoices WHERE store_id = ? AND invoice_id = ?",
                            (store_id, invoice_id))
    try:
        data = json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def link_dimensions(db: Any, link_id: str | None) -> tuple[str | None, str | None]:
    """(class id, location id) set for one pay link, if any."""
    if not link_id:
        return None, None
    row = await db.fetchone("SELECT class_id, department_id FROM sync_link_dimensions WHERE link_id = ?", (link_id,))
    return (row[0], row[1]) if row else (None, None)


async def list_items(db: Any, store_id: str) -> list[dict[str, Any]]:
    """The store's BTCPay items with their QuickBooks item, and how many postings each holds back."""
    rows = await db.fetchall(
        "SELECT code, title, qbo_item_id, qbo_name, tax_code_id, how, updated_at FROM sync_items WHERE store_id = ? "
        "ORDER BY qbo_item_id IS NOT NULL, code", (store_id,))
    held = await db.fetchall(
        "SELECT last_error FROM sync_jobs WHERE store_id = ? AND state = 'held' AND last_error LIKE ?",
        (store_id, HELD_PREFIX + "%"))
    out = []
    for code, title, item_id, name, tax_code, how, updated in rows:
        waiting = sum(1 for (error,) in held if f"'{code}'" in (error or ""))
        out.append({"code": code, "title": title, "qbo_item_id": item_id, "qbo_name": name, "tax_code_id": tax_code,
                    "how": how, "waiting": waiting, "updated_at": updated})
    return out


async def save_item(db: Any, store_id: str, code: str, *, title: str | None, item_id: str | None,
                    name: str | None, how: str, tax_code_id: str | None = None, looked_up: bool = False) -> None:
    now = int(time.time())
    await db.write(
        "INSERT INTO sync_items(store_id, code, title, qbo_item_id, qbo_name, tax_code_id, how, looked_up_at, "
        "updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(store_id, code) DO UPDATE SET "
        "title = COALESCE(excluded.title, title), qbo_item_id = excluded.qbo_item_id, qbo_name = excluded.qbo_name, "
        "tax_code_id = COALESCE(excluded.tax_code_id, tax_code_id), how = excluded.how, "
        "looked_up_at = COALESCE(excluded.looked_up_at, looked_up_at), updated_at = excluded.updated_at",
        (store_id, code, title, item_id, name, tax_code_id, how, now if looked_up else None, now))


async def find_item(client: QBOClient, code: str, title: str | None) -> dict[str, Any] | None:
    """The QuickBooks Item for a BTCPay item: by SKU (Finance.xsd marks `Item.Sku` filterable), else by name."""
    for prop, value in dict.fromkeys((("Sku", code), ("Name", title), ("Name", code))):
        if value:
            rows = await client.query(f"SELECT * FROM Item WHERE {prop} = {quote_literal(value[:100])}", limit=1)
            if rows:
                return rows[0]
    return None


class Catalog:
    """Resolves a sale's items (looking up, creating or holding per the store's policy) and reads its tax
    setting and class/location."""

    def __init__(self, db: Any, client: Any) -> None:
        self._db = db
        self._client = client  # async () -> QBOClient

    async def context(self, store_id: str, invoice_id: str, mapping: StoreMapping, *, first_sale: str | None
                      ) -> SaleContext:
        """The invoice's sale detail, tax setting and class/location. `first_sale`: the entity of the invoice's
        first sale document, the only one that carries the cart (a SalesReceipt, its items resolved) or the
        tax (a Deposit too, on its own line)."""
        metadata = await invoice_metadata(self._db, store_id, invoice_id)
        detail = lines.sale_detail(metadata) if first_sale else lines.SaleDetail()
        tax = await get_tax(self._db, store_id)
        if first_sale == "Deposit":
            detail = lines.SaleDetail((), detail.tax)
            if detail.tax > 0 and tax.kind != "none" and not tax.account_id:
                raise Unmapped(f"{HELD_PREFIX}: store {store_id} books sales as Deposits, which have no tax lines, "
                               f"and BTCPay invoice {invoice_id} says {detail.tax} of its price is tax",
                               fix=f"name the liability account the tax goes to: `sovterm setup tax {tax.kind} "
                                   f"--tax-account NAME|ID --store {store_id}`")
        if detail.tax > 0 and tax.kind == "none":
            raise Unmapped(f"{HELD_PREFIX}: store {store_id} has no sales-tax setting, and BTCPay invoice {invoice_id} "
                           f"says {detail.tax} of its price is tax (taxIncluded), which is never revenue",
                           fix=f"say how the company books sales tax: `sovterm setup tax us --store {store_id}` "
                               f"(US, automated sales tax) or `sovterm setup tax inclusive --tax-code NAME|ID "
                               f"--store {store_id}`")
        class_id, department_id = await link_dimensions(self._db, str(metadata.get(LINK_KEY) or "") or None)
        campaign = await campaign_books(self._db, store_id, invoice_id, metadata)
        if campaign is not None:  # a contribution: every line on the app's item (its perks are not sales)
            return SaleContext(detail, {code: ItemRef(campaign.item_id) for code in detail.codes}, tax,
                               campaign.class_id or class_id or mapping.class_id,
                               department_id or mapping.department_id, campaign)
        return SaleContext(detail, await self.resolve(store_id, detail, mapping), tax,
                           class_id or mapping.class_id, department_id or mapping.department_id)

    async def resolve(self, store_id: str, detail: lines.SaleDetail, mapping: StoreMapping) -> dict[str, ItemRef]:
        if not detail.codes:
            return {}
        policy = await get_policy(self._db, store_id)
        titles = {line.code: line.title for line in detail.lines}
        found: dict[str, ItemRef] = {}
        missing: list[str] = []
        for code in detail.codes:
            row = await self._db.fetchone(
                "SELECT qbo_item_id, tax_code_id, looked_up_at FROM sync_items WHERE store_id = ? AND code = ?",
                (store_id, code))
            if row is not None and row[0]:
                found[code] = ItemRef(row[0], row[1])
                continue
            recently = row is not None and row[2] is not None and time.time() - row[2] < LOOKUP_AGAIN_S
            if recently and policy != "create":  # looked up a moment ago and not mapped since
                if policy == "hold":
                    missing.append(code)
                else:
                    found[code] = ItemRef(mapping.item_id)
                continue
            client = await self._client()
            item = await find_item(client, code, titles.get(code))
            if item is not None:
                how = "sku" if item.get("Sku") == code else "name"
                await save_item(self._db, store_id, code, title=titles.get(code), item_id=str(item["Id"]),
                                name=item.get("Name"), how=how, looked_up=True)
                found[code] = ItemRef(str(item["Id"]), row[1] if row else None)
            elif policy == "create":
                item = await self._create(client, code, titles.get(code) or code, mapping)
                await save_item(self._db, store_id, code, title=titles.get(code), item_id=str(item["Id"]),
                                name=item.get("Name"), how="created", looked_up=True)
                found[code] = ItemRef(str(item["Id"]))
            elif policy == "hold":
                await save_item(self._db, store_id, code, title=titles.get(code), item_id=None, name=None,
                                how="unknown", looked_up=True)
                missing.append(code)
            else:  # noted (and when it was looked up), so the next sale of it asks QuickBooks no sooner
                await save_item(self._db, store_id, code, title=titles.get(code), item_id=None, name=None,
                                how="default", looked_up=True)
                found[code] = ItemRef(mapping.item_id)
        if missing:
            raise Unmapped(f"{HELD_PREFIX}: store {store_id}, BTCPay item(s) "
                           + ", ".join(f"'{c}'" for c in missing) + " match no QuickBooks item",
                           fix=f"map them: `sovterm setup items map CODE --item NAME|ID --store {store_id}` "
                               "(or change the policy with `sovterm setup items policy`)")
        return found

    async def _create(self, client: QBOClient, code: str, title: str, mapping: StoreMapping) -> dict[str, Any]:
        body = {"Name": title[:100], "Sku": code[:100], "Type": "Service",
                "IncomeAccountRef": {"value": mapping.income_account_id},
                "Description": f"BTCPay item {code} (created by sovterm)"}
        try:
            return await client.create("Item", body, request_id=request_id("item", client.realm_id, code))
        except QBODuplicateName:  # an item of that name appeared (inactive, or another SKU): take it
            rows = await client.query(f"SELECT * FROM Item WHERE Name = {quote_literal(title[:100])} "
                                      "AND Active IN (true, false)", limit=1)
            if not rows:
                raise
            return rows[0]


def sale_lines(sale: SaleContext, mapping: StoreMapping, total: Decimal, price: Decimal | None,
               memo: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(QuickBooks lines, header tax fields) of a SalesReceipt for `total` received.

    US company (`us`): lines are net, `TxnTaxDetail.TotalTax` carries the tax (automated sales tax honours a
    tax amount sent with the transaction instead of computing one: Intuit, "Using QuickBooks Online API for
    automated sales tax", 2017), so QuickBooks never adds tax on top; a document without tax says 0.
    Tax-inclusive company (`inclusive`): `GlobalTaxCalculation` TaxInclusive, each line its gross
    (`TaxInclusiveAmt`), its net (`Amount`) and a `TaxCodeRef`, the header the total tax."""
    doc_lines, tax = lines.document_lines(sale.detail, total, sale.tax.kind, price)
    out = []
    for line in doc_lines:
        ref = sale.items.get(line.code)
        detail: dict[str, Any] = {"ItemRef": {"value": ref.item_id if ref else mapping.item_id}}
        gross_line = sale.tax.kind == "inclusive"
        shown = line.gross if gross_line else line.net
        if line.unit_price is not None and line.unit_price * line.qty == shown:
            detail.update({"Qty": line.qty, "UnitPrice": line.unit_price})
        else:
            detail.update({"Qty": 1, "UnitPrice": shown})
        if sale.class_id:
            detail["ClassRef"] = {"value": sale.class_id}
        if sale.tax.kind == "us":
            detail["TaxCodeRef"] = {"value": "TAX" if line.tax else "NON"}
        elif gross_line:
            code = (ref.tax_code_id if ref and ref.tax_code_id else None) or sale.tax.tax_code_id
            if code:
                detail["TaxCodeRef"] = {"value": code}
            detail["TaxInclusiveAmt"] = line.gross
        elif mapping.tax_code_id:
            detail["TaxCodeRef"] = {"value": mapping.tax_code_id}
        text = line.title if line.code.startswith("@") or line.title == line.code else f"{line.title} ({line.code})"
        if line.unit_price is not None and detail["UnitPrice"] != line.unit_price:
            text += f": {line.qty} × {line.unit_price} as sold"
        out.append({"Amount": line.net, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail,
                    "Description": (f"{text} — {memo}" if text else memo)[:4000]})
    header: dict[str, Any] = {}
    if sale.tax.kind == "us":
        header["TxnTaxDetail"] = {"TotalTax": tax}
    elif sale.tax.kind == "inclusive":
        # the total tax always, 0 included: left out, QuickBooks would work out the line codes' rate from
        # the gross of an untaxed sale and book a liability nobody collected
        header["GlobalTaxCalculation"] = "TaxInclusive"
        header["TxnTaxDetail"] = {"TotalTax": tax}
    return out, header


def refund_lines(sale: SaleContext, mapping: StoreMapping, amount: Decimal, tax: Decimal,
                 memo: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(QuickBooks lines, header tax fields) of a RefundReceipt of `amount` whose sales tax is `tax`
    (`lines.refund_tax`), split the way the store's sales were: a US company's line is net with the tax in
    `TxnTaxDetail.TotalTax` (0 included, so the automated sales tax engine adds none); a tax-inclusive
    company's line carries the gross (`TaxInclusiveAmt`), the net and the store's tax code, the header the tax.
    QuickBooks then takes the tax back off the liability it booked with the sale."""
    net = amount - tax
    inclusive = sale.tax.kind == "inclusive"
    detail: dict[str, Any] = {"ItemRef": {"value": mapping.item_id}, "Qty": 1, "UnitPrice": amount if inclusive
                              else net}
    if sale.class_id:
        detail["ClassRef"] = {"value": sale.class_id}
    if inclusive:
        if sale.tax.tax_code_id:
            detail["TaxCodeRef"] = {"value": sale.tax.tax_code_id}
        detail["TaxInclusiveAmt"] = amount
    else:
        detail["TaxCodeRef"] = {"value": "TAX" if tax else "NON"}
    line = {"Amount": net, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail,
            "Description": (f"{memo}; of it {tax} sales tax" if tax else memo)[:4000]}
    header: dict[str, Any] = {"TxnTaxDetail": {"TotalTax": tax}}
    if inclusive:
        header["GlobalTaxCalculation"] = "TaxInclusive"
    return [line], header


def deposit_tax(sale: SaleContext, total: Decimal, price: Decimal | None) -> Decimal:
    """The sales tax inside a Deposit of `total` (its own line, to the tax setting's liability account)."""
    if sale.tax.kind == "none" or not sale.tax.account_id or sale.detail.tax <= 0:
        return Decimal(0)
    return lines.document_lines(sale.detail, total, sale.tax.kind, price)[1]
