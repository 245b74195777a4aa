"""Items, sales tax and a pay link's class/location: the operator's side of `sovterm.sync.items`
(`sovterm setup items`, `sovterm setup tax`, `sovterm setup link-dimensions`, the TUI's Items tab).

Each setting is checked against the connected QuickBooks company before it is saved (the entry exists and
is active, an item is one sales can post to) and releases the postings held for it."""

from __future__ import annotations

import json
import time
from typing import Literal

from pydantic import BaseModel

from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.parts.base import Part
from sovterm.parts.btcpay import resolve_store
from sovterm.qbo.mapping import SALE_ITEM_TYPES, MappingError
from sovterm.services import Services
from sovterm.sync import items, queue

LIABILITY_TYPES = ("Other Current Liability", "Long Term Liability")


class StoreParams(BaseModel):
    store_id: str | None = None


class MapParams(StoreParams):
    code: str
    item: str  # QuickBooks Item name or id
    tax_code: str | None = None


class PolicyParams(StoreParams):
    policy: Literal["default", "create", "hold"]


class TaxParams(StoreParams):
    kind: Literal["none", "us", "inclusive"]
    tax_code: str | None = None
    tax_account: str | None = None  # Deposits (no tax lines): the liability account the tax goes to


class LinkParams(BaseModel):
    link_id: str
    class_name: str | None = None
    location: str | None = None


class ItemRow(Result):
    code: str
    title: str | None
    qbo_item_id: str | None
    qbo_name: str | None
    tax_code_id: str | None
    how: str | None
    waiting: int
    updated_at: int


class TaxSettingResult(Result):
    kind: str
    tax_code_id: str | None
    names: dict[str, str]
    account_id: str | None = None


class ItemsList(Result):
    store_id: str
    policy: str
    tax: TaxSettingResult
    items: list[ItemRow]
    held: int  # postings held for an item or for the tax setting


class Mapped(Result):
    store_id: str
    code: str
    qbo_item_id: str
    qbo_name: str
    tax_code_id: str | None
    released: int


class PolicySet(Result):
    store_id: str
    policy: str
    released: int


class TaxSet(Result):
    store_id: str
    tax: TaxSettingResult
    released: int


class LinkDimensions(Result):
    link_id: str
    class_id: str | None
    department_id: str | None
    names: dict[str, str]


async def _release(services: Services) -> int:
    """Held postings go back to the queue: the setting they waited for may be there now."""
    released = await queue.release_held(services.require_db())
    if services.sync is not None:
        services.sync.engine.forget_store_settings()
        services.sync.engine.kick()
    return released


def register(server: ControlServer, services: Services) -> None:
    @server.method("setup.items.list", role=Role.VIEWER, params=StoreParams)
    async def items_list(ctx: CallContext, store_id: str | None) -> ItemsList:
        """The store's BTCPay items, the QuickBooks item each posts to, its unknown-item policy and tax setting."""
        store = await resolve_store(services, store_id)
        db = services.require_db()
        tax = await items.get_tax(db, store)
        held = await db.fetchone("SELECT COUNT(*) FROM sync_jobs WHERE store_id = ? AND state = 'held' "
                                 "AND last_error LIKE ?", (store, items.HELD_PREFIX + "%"))
        return ItemsList(store_id=store, policy=await items.get_policy(db, store),
                         tax=TaxSettingResult(kind=tax.kind, tax_code_id=tax.tax_code_id, names=tax.names,
                                              account_id=tax.account_id),
                         items=[ItemRow(**row) for row in await items.list_items(db, store)], held=held[0])

    @server.method("setup.items.map", role=Role.ADMIN, params=MapParams, part="qbo", audit="setup.items.map")
    async def items_map(ctx: CallContext, store_id: str | None, code: str, item: str,
                        tax_code: str | None) -> Mapped:
        """Post a BTCPay item (its code) to a QuickBooks item; releases the postings held for it."""
        store = await resolve_store(services, store_id)
        ctx.audit(subject=f"{store}/{code}", detail={"item": item, "tax_code": tax_code})
        found = await ctx.part.find_active("Item", item, "item")
        if found.get("Type") not in SALE_ITEM_TYPES:
            raise MappingError(f"item '{found.get('Name')}' is {found.get('Type')}: sales post to "
                               f"{' or '.join(SALE_ITEM_TYPES)} items", fix="pick another item")
        code_id = str((await ctx.part.find_active("TaxCode", tax_code, "tax code"))["Id"]) if tax_code else None
        await items.save_item(services.require_db(), store, code, title=None, item_id=str(found["Id"]),
                              name=str(found.get("Name")), how="operator", tax_code_id=code_id)
        ctx.audit(subject=f"{store}/{code}", detail={"qbo_item_id": found["Id"], "name": found.get("Name"),
                                                      "tax_code_id": code_id})
        return Mapped(store_id=store, code=code, qbo_item_id=str(found["Id"]), qbo_name=str(found.get("Name")),
                      tax_code_id=code_id, released=await _release(services))

    @server.method("setup.items.policy", role=Role.ADMIN, params=PolicyParams, audit="setup.items.policy")
    async def items_policy(ctx: CallContext, store_id: str | None, policy: str) -> PolicySet:
        """What an item that matches no QuickBooks item does: default item, create it, or hold the posting."""
        store = await resolve_store(services, store_id)
        ctx.audit(subject=store, detail={"policy": policy})
        await items.set_policy(services.require_db(), store, policy)
        return PolicySet(store_id=store, policy=policy, released=await _release(services))

    @server.method("setup.tax", role=Role.ADMIN, params=TaxParams, part="qbo", audit="setup.tax")
    async def tax(ctx: CallContext, store_id: str | None, kind: str, tax_code: str | None,
                  tax_account: str | None) -> TaxSet:
        """How sales tax inside BTCPay prices is booked: `us`, `inclusive` (with a tax code) or `none`."""
        store = await resolve_store(services, store_id)
        ctx.audit(subject=store, detail={"kind": kind, "tax_code": tax_code, "tax_account": tax_account})
        if kind == "inclusive" and not tax_code:
            raise UserFacingError("a tax-inclusive company needs the tax code to put on each line",
                                  fix="pass --tax-code NAME|ID (see `sovterm setup accounts --list`, tax_codes)")
        code_id, account_id, names = None, None, {}
        if tax_code and kind == "inclusive":
            found = await ctx.part.find_active("TaxCode", tax_code, "tax code")
            code_id, names["tax_code"] = str(found["Id"]), str(found.get("Name"))
        if tax_account and kind != "none":
            found = await ctx.part.find_active("Account", tax_account, "tax account")
            if found.get("AccountType") not in LIABILITY_TYPES:
                raise MappingError(f"tax account '{found.get('Name')}' is {found.get('AccountType')}: tax owed is a "
                                   f"liability ({' or '.join(LIABILITY_TYPES)})", fix="pick e.g. Sales Tax Payable")
            account_id, names["tax_account"] = str(found["Id"]), str(found.get("Name"))
        setting = items.TaxSetting(kind, code_id, names, account_id)  # type: ignore[arg-type]
        await items.set_tax(services.require_db(), store, setting)
        return TaxSet(store_id=store, tax=TaxSettingResult(kind=setting.kind, tax_code_id=setting.tax_code_id,
                                                           names=setting.names, account_id=account_id),
                      released=await _release(services))

    @server.method("setup.link_dimensions", role=Role.ADMIN, params=LinkParams, part="qbo",
                   audit="setup.link_dimensions")
    async def link_dimensions(ctx: CallContext, link_id: str, class_name: str | None,
                              location: str | None) -> LinkDimensions:
        """Class and location for one pay link's documents (over the store's)."""
        ctx.audit(subject=link_id, detail={"class": class_name, "location": location})
        db = services.require_db()
        if await db.fetchone("SELECT 1 FROM pay_links WHERE link_id = ?", (link_id,)) is None:
            raise UserFacingError(f"no pay link {link_id}", fix="see `sovterm link list`")
        names: dict[str, str] = {}
        class_id = department_id = None
        if class_name:
            found = await ctx.part.find_active("Class", class_name, "class")
            class_id, names["class"] = str(found["Id"]), str(found.get("Name"))
        if location:
            found = await ctx.part.find_active("Department", location, "location")
            department_id, names["location"] = str(found["Id"]), str(found.get("Name"))
        await db.write(
            "INSERT INTO sync_link_dimensions(link_id, class_id, department_id, names, updated_at) VALUES(?, ?, ?, ?, ?) "
            "ON CONFLICT(link_id) DO UPDATE SET class_id = excluded.class_id, department_id = excluded.department_id, "
            "names = excluded.names, updated_at = excluded.updated_at",
            (link_id, class_id, department_id, json.dumps(names), int(time.time())))
        return LinkDimensions(link_id=link_id, class_id=class_id, department_id=department_id, names=names)


PART = Part("items", methods=register)
