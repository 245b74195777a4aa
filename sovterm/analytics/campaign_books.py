"""A Crowdfund app's own place in the books: the income account (and class) its contributions post to,
over the store's mapping, because a donation campaign is not sales (docs/accounting.md, "Crowdfund apps").

A SalesReceipt names an item, not an account, so the app also gets a Service item on that income account
(found by name, else created); a Deposit line names the account itself. The sync reads the setting back in
`sovterm.sync.items.campaign_books`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sovterm.errors import UserFacingError
from sovterm.qbo.client import request_id
from sovterm.qbo.errors import QBODuplicateName
from sovterm.qbo.mapping import INCOME_TYPES, SALE_ITEM_TYPES, MappingError
from sovterm.qbo.service import QBOService
from sovterm.store.db import Database


@dataclass(frozen=True)
class AppBooks:
    app_id: str
    store_id: str
    income_account_id: str
    item_id: str
    class_id: str | None
    names: dict[str, str]


async def _item_for(service: QBOService, title: str, account: dict[str, Any], item: str | None) -> dict[str, Any]:
    """The operator's item (it must book to `account`), else the app's own Service item on it."""
    if item is not None:
        found = await service.find_active("Item", item, "item")
        if found.get("Type") not in SALE_ITEM_TYPES:
            raise MappingError(f"item '{found.get('Name')}' is {found.get('Type')}: contributions post to "
                               f"{' or '.join(SALE_ITEM_TYPES)} items", fix="pick another item")
    else:
        client = await service.client()
        name = f"{title} (Crowdfund)"[:100]
        body = {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": str(account["Id"])},
                "Description": "Crowdfund contributions (created by sovterm)"}
        try:
            found = await client.create("Item", body, request_id=request_id("crowdfund-item", client.realm_id, name))
        except QBODuplicateName:
            found = await service.find_active("Item", name, "item")
    booked_to = str((found.get("IncomeAccountRef") or {}).get("value"))
    if booked_to != str(account["Id"]):
        raise MappingError(f"item '{found.get('Name')}' books to another income account than '{account['Name']}'",
                           fix="name an item on that account with --item, or change the item's income account "
                               "in QuickBooks")
    return found


async def set_books(db: Database, service: QBOService, app_id: str, *, income: str, class_name: str | None,
                    item: str | None) -> AppBooks:
    """Check the entries like an account mapping (exist, active, the right type), then save."""
    row = await db.fetchone("SELECT store_id, title FROM crowdfund_apps WHERE app_id = ?", (app_id,))
    if row is None:
        raise UserFacingError(f"no Crowdfund app {app_id} in the followed stores",
                              fix="`sovterm crowdfund list` shows them (after `sovterm crowdfund refresh`)")
    store_id, title = row
    account = await service.find_active("Account", income, "income account")
    if account.get("AccountType") not in INCOME_TYPES:
        raise MappingError(f"income account must be {' or '.join(INCOME_TYPES)}, '{account.get('Name')}' is "
                           f"{account.get('AccountType')}", fix="pick an income account (e.g. Donations)")
    names = {"income_account": str(account["Name"])}
    class_id = None
    if class_name:
        found = await service.find_active("Class", class_name, "class")
        class_id, names["class"] = str(found["Id"]), str(found.get("Name"))
    item_row = await _item_for(service, title, account, item)
    names["item"] = str(item_row.get("Name"))
    books = AppBooks(app_id, store_id, str(account["Id"]), str(item_row["Id"]), class_id, names)
    await db.write(
        "INSERT INTO crowdfund_books(app_id, store_id, income_account_id, item_id, class_id, names, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(app_id) DO UPDATE SET store_id = excluded.store_id, "
        "income_account_id = excluded.income_account_id, item_id = excluded.item_id, class_id = excluded.class_id, "
        "names = excluded.names, updated_at = excluded.updated_at",
        (app_id, store_id, books.income_account_id, books.item_id, class_id, json.dumps(names), int(time.time())))
    return books


async def clear_books(db: Database, app_id: str) -> None:
    """The app's contributions post by the store's mapping again."""
    await db.write("DELETE FROM crowdfund_books WHERE app_id = ?", (app_id,))


async def books_names(db: Database, app_id: str) -> dict[str, str] | None:
    """What the app books to (display names), None when it follows the store's mapping."""
    row = await db.fetchone("SELECT names FROM crowdfund_books WHERE app_id = ?", (app_id,))
    return None if row is None else json.loads(row[0])
