"""Account mapping: defaults found or created once, wrong types refused, mappings persisted."""

from __future__ import annotations

import pytest

from sovterm.qbo.mapping import (
    DEFAULTS,
    AccountMapper,
    MappingError,
    StoreMapping,
    default_mapping,
    load_mapping,
)

from .conftest import REALM


def account_id(sim_state, name: str) -> str:
    return next(a["Id"] for a in sim_state.documents(REALM, "Account") if a["Name"] == name)


async def test_defaults_are_created_once_and_found_again(connected, db, sim_state):
    mapper = AccountMapper(connected.client, db)
    proposed = await mapper.propose_defaults()
    assert [p.action for p in proposed] == ["create"] * len(DEFAULTS)
    first = await mapper.ensure_defaults()
    counts = {e: len(sim_state.documents(REALM, e)) for e in ("Account", "Item", "PaymentMethod")}
    second = await AccountMapper(connected.client, db).ensure_defaults()
    assert second == first
    assert counts == {e: len(sim_state.documents(REALM, e)) for e in ("Account", "Item", "PaymentMethod")}
    assert [p.action for p in await mapper.propose_defaults()] == ["use existing"] * len(DEFAULTS)
    deposit = next(a for a in sim_state.documents(REALM, "Account") if a["Id"] == first["deposit_account_id"])
    assert (deposit["Name"], deposit["AccountType"]) == ("Bitcoin (BTCPay)", "Other Current Asset")
    item = next(i for i in sim_state.documents(REALM, "Item") if i["Id"] == first["item_id"])
    assert item["Type"] == "Service" and item["IncomeAccountRef"]["value"] == first["income_account_id"]


async def test_without_consent_nothing_is_created(connected, db, sim_state):
    before = len(sim_state.documents(REALM, "Account"))
    with pytest.raises(MappingError, match="Bitcoin \\(BTCPay\\)"):
        await AccountMapper(connected.client, db).ensure_defaults(consent=False)
    assert len(sim_state.documents(REALM, "Account")) == before


async def test_existing_default_name_with_wrong_type_is_refused(connected, db, sim_state):
    sim_state.books[REALM].add("Account", {"Name": "Bitcoin (BTCPay)", "AccountType": "Income"})
    with pytest.raises(MappingError, match="exists with type Income"):
        await AccountMapper(connected.client, db).ensure_defaults()


async def test_inactive_default_is_reported_not_duplicated(connected, db, sim_state):
    sim_state.books[REALM].add("Account", {"Name": "Bitcoin (BTCPay)", "AccountType": "Other Current Asset",
                                           "Active": False})
    with pytest.raises(MappingError, match="inactive"):
        await AccountMapper(connected.client, db).ensure_defaults()
    assert len([a for a in sim_state.documents(REALM, "Account") if a["Name"] == "Bitcoin (BTCPay)"]) == 1


async def test_wrong_account_type_is_refused_with_reason(connected, db, sim_state):
    mapper = AccountMapper(connected.client, db)
    ids = await mapper.ensure_defaults()
    wrong = StoreMapping("store1", REALM, **{**ids, "deposit_account_id": account_id(sim_state, "Sales of Product Income")})
    with pytest.raises(MappingError) as caught:
        await mapper.save(wrong)
    assert caught.value.message == (
        "deposit account must be Bank or Other Current Asset, 'Sales of Product Income' is Income"
    )
    assert await load_mapping(db, "store1") is None
    fee_is_bank = StoreMapping("store1", REALM, **{**ids, "fee_account_id": account_id(sim_state, "Checking")})
    with pytest.raises(MappingError, match="fee account must be Expense or Other Expense, 'Checking' is Bank"):
        await mapper.save(fee_is_bank)


async def test_mapping_is_saved_per_store_with_names(connected, db, sim_state):
    mapper = AccountMapper(connected.client, db)
    saved = await default_mapping(mapper, "store1")
    loaded = await load_mapping(db, "store1")
    assert loaded == saved
    assert loaded.names["deposit_account_id"] == "Bitcoin (BTCPay)" and loaded.names["payment_method_id"] == "Bitcoin"
    checking = StoreMapping(**{**saved.__dict__, "deposit_account_id": account_id(sim_state, "Checking"), "names": {}})
    await mapper.save(checking)
    assert (await load_mapping(db, "store1")).deposit_account_id == account_id(sim_state, "Checking")


async def test_lists_for_the_mapping_screen(connected, db):
    mapper = AccountMapper(connected.client, db)
    assert len(await mapper.list_accounts()) == 8
    assert [i["Name"] for i in await mapper.list_items()] == ["Services"]
    assert len(await mapper.list_customers()) == 3
    assert {m["Name"] for m in await mapper.list_payment_methods()} == {"Cash", "Check"}
    assert [c["Name"] for c in await mapper.list_classes()] == ["Online"]
    assert len(await mapper.list_tax_codes()) == 1


async def test_fees_collected_default_is_other_income_and_may_be_netted_against_the_fee_expense(connected, db, sim_state):
    mapper = AccountMapper(connected.client, db)
    saved = await default_mapping(mapper, "store1")
    collected = next(a for a in sim_state.documents(REALM, "Account") if a["Id"] == saved.fee_collected_account_id)
    assert (collected["Name"], collected["AccountType"]) == ("Bitcoin Network Fees Collected", "Other Income")
    assert (await load_mapping(db, "store1")).names["fee_collected_account_id"] == "Bitcoin Network Fees Collected"
    netted = StoreMapping(**{**saved.__dict__, "fee_collected_account_id": saved.fee_account_id, "names": {}})
    assert (await mapper.save(netted)).names["fee_collected_account_id"] == "Bitcoin Network Fees"
    to_bank = StoreMapping(**{**saved.__dict__, "fee_collected_account_id": account_id(sim_state, "Checking")})
    with pytest.raises(MappingError, match="network fees collected account must be Other Income or Income or "
                                           "Expense or Other Expense, 'Checking' is Bank"):
        await mapper.save(to_bank)
