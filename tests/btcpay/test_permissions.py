"""Permission report: read from the key's own list, with BTCPay's inclusion rules and store scopes."""

from __future__ import annotations

import pytest

from sovterm.btcpay.permissions import (
    STORE,
    check_key,
    has_permission,
    missing_permissions,
    parse_permission,
)

S = "StoreA"


def names(missing):
    return {m.permission: m.features for m in missing}


def test_minimal_documented_key_covers_sync_webhooks_payouts():
    key = [f"{STORE}canviewstoresettings:{S}", f"{STORE}webhooks.canmodifywebhooks:{S}",
           f"{STORE}canmanagepayouts:{S}"]
    assert missing_permissions(key, ["sync", "webhooks", "payouts"], S) == []


def test_missing_reported_by_name_with_the_features_needing_them():
    key = [f"{STORE}canviewinvoices:{S}"]
    missing = names(missing_permissions(key, ["sync", "webhooks", "paylinks", "refunds"], S))
    assert missing == {
        STORE + "canviewstoresettings": ("sync",),
        STORE + "webhooks.canmodifywebhooks": ("webhooks",),
        STORE + "cancreateinvoice": ("paylinks",),
        STORE + "canmodifyinvoices": ("paylinks",),
        STORE + "cancreatepullpayments": ("refunds",),
    }
    first = missing_permissions(key, ["webhooks"], S)[0]
    assert first.scoped(S) == f"{STORE}webhooks.canmodifywebhooks:{S}"


def test_modify_store_settings_implies_most_things():
    key = [f"{STORE}canmodifystoresettings:{S}"]
    assert names(missing_permissions(key, ["sync", "webhooks", "payouts", "paylinks", "invoice_metadata",
                                           "apps", "refunds"], S)) == {}


def test_manage_pull_payments_does_not_include_payouts():
    """Pre-1.12 keys used canmanagepullpayments for payouts; it does not imply canmanagepayouts."""
    key = [f"{STORE}canmanagepullpayments:{S}"]
    assert set(names(missing_permissions(key, ["payouts"], S))) == {
        STORE + "canviewpayouts", STORE + "canmanagepayouts",
    }
    assert names(missing_permissions(key, ["refunds"], S)) == {}


def test_scope_to_another_store_does_not_count():
    key = [f"{STORE}canmodifystoresettings:OtherStore"]
    assert len(missing_permissions(key, ["webhooks"], S)) == 1
    assert has_permission([f"{STORE}canmodifystoresettings"], STORE + "canviewinvoices", S)  # unscoped = all


def test_unrestricted_key_lacks_nothing():
    assert missing_permissions(["unrestricted"], ["sync", "apps"], S) == []


def test_unknown_feature_is_an_error():
    with pytest.raises(ValueError, match="unknown feature"):
        missing_permissions([], ["teleport"], S)


def test_parse_permission():
    assert parse_permission("btcpay.store.canviewinvoices:ABC") == ("btcpay.store.canviewinvoices", "ABC")
    assert parse_permission("btcpay.server.canmanageusers") == ("btcpay.server.canmanageusers", None)


async def test_check_key_reads_the_keys_own_permissions(sim):
    store_id, key = sim.store_with_key([STORE + "canviewstoresettings"])
    missing = await check_key(sim.client(key), ["sync", "webhooks"], store_id)
    assert [(m.permission, m.features) for m in missing] == [(STORE + "webhooks.canmodifywebhooks", ("webhooks",))]
