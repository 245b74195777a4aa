"""Which QuickBooks accounts and lists each BTCPay store posts into.

`propose_defaults()` shows what sovterm would use (found by name) or create; `ensure_defaults()`
creates only what is missing, with a requestid derived from the company and the name, and finds an
entity again by name after a `Duplicate Name` fault, so defaults are never duplicated. A mapping is
validated against the company's chart of accounts before it is saved: an account of the wrong type
is refused with the reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sovterm.errors import UserFacingError
from sovterm.qbo.client import QBOClient, quote_literal, request_id
from sovterm.qbo.errors import QBODuplicateName
from sovterm.store.db import Database

DEPOSIT_TYPES = ("Bank", "Other Current Asset")
INCOME_TYPES = ("Income", "Other Income")
FEE_TYPES = ("Expense", "Other Expense")
# network fees customers paid on top of the price: income by default, or netted against the fee expense
FEE_COLLECTED_TYPES = ("Other Income", "Income", *FEE_TYPES)
SALE_ITEM_TYPES = ("Service", "NonInventory")


class MappingError(UserFacingError):
    code = "qbo_mapping"


@dataclass(frozen=True)
class DefaultSpec:
    key: str  # the StoreMapping field it fills
    entity: str
    name: str
    body: dict[str, Any]
    allowed_types: tuple[str, ...] = ()  # AccountType (or Item Type) an existing entity must have


DEPOSIT_ACCOUNT = DefaultSpec("deposit_account_id", "Account", "Bitcoin (BTCPay)",
                              {"AccountType": "Other Current Asset", "AccountSubType": "OtherCurrentAssets"},
                              DEPOSIT_TYPES)
INCOME_ACCOUNT = DefaultSpec("income_account_id", "Account", "BTCPay Sales",
                             {"AccountType": "Income", "AccountSubType": "OtherPrimaryIncome"}, INCOME_TYPES)
FEE_ACCOUNT = DefaultSpec("fee_account_id", "Account", "Bitcoin Network Fees",
                          {"AccountType": "Expense", "AccountSubType": "BankCharges"}, FEE_TYPES)
FEE_COLLECTED_ACCOUNT = DefaultSpec("fee_collected_account_id", "Account", "Bitcoin Network Fees Collected",
                                    {"AccountType": "Other Income", "AccountSubType": "OtherMiscellaneousIncome"},
                                    FEE_COLLECTED_TYPES)
# Cashu ecash held at a mint is a claim on that mint, not bitcoin in the store's wallet: its own asset account
CASHU_ACCOUNT = DefaultSpec("cashu_account_id", "Account", "Cashu ecash",
                            {"AccountType": "Other Current Asset", "AccountSubType": "OtherCurrentAssets"},
                            DEPOSIT_TYPES)
SALE_ITEM = DefaultSpec("item_id", "Item", "BTCPay Sale", {"Type": "Service"}, SALE_ITEM_TYPES)
PAYMENT_METHOD = DefaultSpec("payment_method_id", "PaymentMethod", "Bitcoin", {"Type": "NON_CREDIT_CARD"})
DEFAULTS = (DEPOSIT_ACCOUNT, INCOME_ACCOUNT, FEE_ACCOUNT, FEE_COLLECTED_ACCOUNT, CASHU_ACCOUNT, SALE_ITEM,
            PAYMENT_METHOD)


@dataclass(frozen=True)
class ProposedDefault:
    key: str
    entity: str
    name: str
    existing_id: str | None  # None: would be created

    @property
    def action(self) -> str:
        return "use existing" if self.existing_id else "create"


@dataclass
class StoreMapping:
    store_id: str
    realm_id: str
    deposit_account_id: str
    income_account_id: str
    item_id: str
    fee_account_id: str
    payment_method_id: str | None = None
    customer_id: str | None = None  # default customer on sales receipts (none: receipts without one)
    class_id: str | None = None
    tax_code_id: str | None = None
    names: dict[str, str] = field(default_factory=dict)  # display names, filled by validation
    # where the network fees customers pay are credited; None in mappings saved before sovterm booked them
    fee_collected_account_id: str | None = None
    department_id: str | None = None  # location (QuickBooks Department) on every document's header
    # where Cashu payments are deposited; None in mappings saved before sovterm recognised Cashu
    cashu_account_id: str | None = None


def _type_of(entity: dict[str, Any], kind: str) -> str:
    return str(entity.get("AccountType") if kind == "Account" else entity.get("Type"))


class AccountMapper:
    def __init__(self, client: QBOClient, db: Database) -> None:
        self._client = client
        self._db = db

    @property
    def realm_id(self) -> str:
        return self._client.realm_id

    # -- lists -------------------------------------------------------------------------------------

    async def list_accounts(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM Account")

    async def list_items(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM Item")

    async def list_customers(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM Customer")

    async def list_payment_methods(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM PaymentMethod")

    async def list_classes(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM Class")

    async def list_tax_codes(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM TaxCode")

    async def list_departments(self) -> list[dict[str, Any]]:
        return await self._client.query("SELECT * FROM Department")

    async def find_by_name(self, entity: str, name: str, *, include_inactive: bool = False) -> dict[str, Any] | None:
        sql = f"SELECT * FROM {entity} WHERE Name = {quote_literal(name)}"
        if include_inactive:
            sql += " AND Active IN (true, false)"
        rows = await self._client.query(sql, limit=1)
        return rows[0] if rows else None

    # -- defaults ----------------------------------------------------------------------------------

    async def propose_defaults(self) -> list[ProposedDefault]:
        proposals = []
        for spec in DEFAULTS:
            found = await self.find_by_name(spec.entity, spec.name)
            proposals.append(ProposedDefault(spec.key, spec.entity, spec.name, found["Id"] if found else None))
        return proposals

    async def ensure_defaults(self, *, consent: bool = True) -> dict[str, str]:
        """{mapping field: id} for the defaults, creating the missing ones only with consent."""
        ids: dict[str, str] = {}
        missing = [p for p in await self.propose_defaults() if p.existing_id is None]
        if missing and not consent:
            raise MappingError(
                "these QuickBooks entries do not exist yet: "
                + ", ".join(f"{p.entity} '{p.name}'" for p in missing),
                fix="run `sovterm setup accounts --auto` to create them, or map existing ones",
            )
        for spec in DEFAULTS:
            found = await self.find_by_name(spec.entity, spec.name)
            if found is None:
                found = await self._create(spec, ids)
            if spec.allowed_types and _type_of(found, spec.entity) not in spec.allowed_types:
                raise MappingError(
                    f"{spec.entity} '{spec.name}' exists with type {_type_of(found, spec.entity)}, "
                    f"but sovterm needs {' or '.join(spec.allowed_types)}",
                    fix="rename that entry in QuickBooks or map another one with `sovterm setup accounts`",
                )
            ids[spec.key] = str(found["Id"])
        return ids

    async def _create(self, spec: DefaultSpec, ids: dict[str, str]) -> dict[str, Any]:
        body = {"Name": spec.name, **spec.body}
        if spec is SALE_ITEM:
            body["IncomeAccountRef"] = {"value": ids[INCOME_ACCOUNT.key]}
        rid = request_id("default", self._client.realm_id, spec.entity, spec.name)
        try:
            return await self._client.create(spec.entity, body, request_id=rid)
        except QBODuplicateName:
            found = await self.find_by_name(spec.entity, spec.name, include_inactive=True)
            if found is None:
                raise
            if found.get("Active") is False:
                raise MappingError(
                    f"{spec.entity} '{spec.name}' exists but is inactive",
                    fix="make it active again in QuickBooks, then repeat",
                ) from None
            return found

    # -- validation and persistence ----------------------------------------------------------------

    async def validate(self, mapping: StoreMapping) -> StoreMapping:
        """Check every id exists and has the right type; fill display names. Raises MappingError."""
        if mapping.realm_id != self._client.realm_id:
            raise MappingError(f"mapping is for company {mapping.realm_id}, not {self.realm_id}")
        accounts = {a["Id"]: a for a in await self.list_accounts()}
        names: dict[str, str] = {}
        for key, role, allowed in (
            ("deposit_account_id", "deposit account", DEPOSIT_TYPES),
            ("income_account_id", "income account", INCOME_TYPES),
            ("fee_account_id", "fee account", FEE_TYPES),
            ("fee_collected_account_id", "network fees collected account", FEE_COLLECTED_TYPES),
            ("cashu_account_id", "Cashu ecash account", DEPOSIT_TYPES),
        ):
            if key in ("fee_collected_account_id", "cashu_account_id") and getattr(mapping, key) is None:
                continue  # a mapping saved before sovterm booked collected fees or Cashu
            account = accounts.get(getattr(mapping, key))
            if account is None:
                raise MappingError(f"{role}: no account with id {getattr(mapping, key)} in QuickBooks",
                                   fix="pick one from `sovterm setup accounts`")
            if account["AccountType"] not in allowed:
                raise MappingError(
                    f"{role} must be {' or '.join(allowed)}, '{account['Name']}' is {account['AccountType']}",
                    fix="pick an account of the right type",
                )
            names[key] = account["Name"]
        item = await self._get("Item", mapping.item_id, "sales item")
        if item.get("Type") not in SALE_ITEM_TYPES:
            raise MappingError(f"sales item must be Service or NonInventory, '{item['Name']}' is {item.get('Type')}")
        names["item_id"] = item["Name"]
        for key, entity, role, label in (
            ("payment_method_id", "PaymentMethod", "payment method", "Name"),
            ("customer_id", "Customer", "customer", "DisplayName"),
            ("class_id", "Class", "class", "Name"),
            ("tax_code_id", "TaxCode", "tax code", "Name"),
            ("department_id", "Department", "location", "Name"),
        ):
            if getattr(mapping, key):
                names[key] = str((await self.get_active(entity, getattr(mapping, key), role)).get(label, ""))
        mapping.names = names
        return mapping

    async def _get(self, entity: str, entity_id: str, role: str) -> dict[str, Any]:
        rows = await self._client.query(f"SELECT * FROM {entity} WHERE Id = {quote_literal(entity_id)}", limit=1)
        if not rows:
            raise MappingError(f"{role}: no {entity} with id {entity_id} in QuickBooks",
                               fix="pick one from `sovterm setup accounts`")
        return rows[0]

    async def get_active(self, entity: str, entity_id: str, role: str) -> dict[str, Any]:
        """A list entry that exists and is active: QuickBooks refuses a document naming an inactive class or
        location, so the mapping refuses it first, with the reason (the query asks for inactive ones too, or
        an inactive entry would look like a missing one)."""
        rows = await self._client.query(
            f"SELECT * FROM {entity} WHERE Id = {quote_literal(entity_id)} AND Active IN (true, false)", limit=1)
        if not rows:
            raise MappingError(f"{role}: no {entity} with id {entity_id} in QuickBooks",
                               fix="pick one from `sovterm setup accounts --list`")
        if rows[0].get("Active") is False:
            raise MappingError(f"{role}: {entity} '{rows[0].get('Name', entity_id)}' is inactive in QuickBooks",
                               fix=f"make it active again in QuickBooks, or map another {role}")
        return rows[0]

    async def save(self, mapping: StoreMapping) -> StoreMapping:
        """Validate, then store (replacing the store's previous mapping)."""
        mapping = await self.validate(mapping)
        row = asdict(mapping)
        row["names"] = json.dumps(mapping.names)
        row["updated_at"] = int(time.time())
        columns = ", ".join(row)
        await self._db.write(
            f"INSERT OR REPLACE INTO qbo_mappings({columns}) VALUES({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return mapping


async def load_mapping(db: Database, store_id: str) -> StoreMapping | None:
    row = await db.fetchone(
        "SELECT store_id, realm_id, deposit_account_id, income_account_id, item_id, fee_account_id,"
        " payment_method_id, customer_id, class_id, tax_code_id, names, fee_collected_account_id, department_id,"
        " cashu_account_id"
        " FROM qbo_mappings WHERE store_id = ?",
        (store_id,),
    )
    if row is None:
        return None
    return StoreMapping(*row[:10], names=json.loads(row[10]), fee_collected_account_id=row[11],
                        department_id=row[12], cashu_account_id=row[13])


async def default_mapping(mapper: AccountMapper, store_id: str, *, consent: bool = True) -> StoreMapping:
    """`sovterm setup accounts --auto`: ensure the defaults and save them as the store's mapping."""
    ids = await mapper.ensure_defaults(consent=consent)
    return await mapper.save(StoreMapping(store_id=store_id, realm_id=mapper.realm_id, **ids))
