"""Pay links' BTCPay permissions are checked at setup: a key without them connects with a warning naming
the permission and what breaks (pay links are optional), shown by setup and by `sovterm btcpay status`."""

from __future__ import annotations

import pytest

from sovterm.btcpay import setup as btcpay_setup
from sovterm.btcpay import status as btcpay_status
from sovterm.btcpay.permissions import STORE, permission_warnings
from sovterm.btcpay.service import BTCPayService
from sovterm.cli import build_parser
from sovterm.cli.btcpay import format_report, format_status
from sovterm.errors import UserFacingError
from sovterm.health import Connectors
from sovterm.store.secrets import Secret
from tests.links.harness import World

SYNC_ONLY = ("canviewstoresettings", "webhooks.canmodifywebhooks", "canmanagepayouts")


def test_warnings_name_each_missing_permission_and_its_consequence() -> None:
    granted = [f"{STORE}{p}:S1" for p in SYNC_ONLY]
    warnings = permission_warnings(granted, ["sync", "webhooks", "payouts"], "S1")
    assert [(w["permission"], w["grant"]) for w in warnings] == [
        (STORE + "cancreateinvoice", STORE + "cancreateinvoice:S1"),
        (STORE + "canmodifyinvoices", STORE + "canmodifyinvoices:S1"),
    ]
    assert warnings[0]["consequence"] == "pay links cannot create invoices"
    assert warnings[1]["consequence"].startswith("pay links cannot invalidate a superseded checkout")
    # canmodifyinvoices includes invoice creation (BTCPay's policy tree): nothing to warn about
    assert permission_warnings([*granted, f"{STORE}canmodifyinvoices:S1"], ["sync"], "S1") == []
    # pay links asked for explicitly: required (reported as missing), not advised
    assert permission_warnings(granted, ["sync", "paylinks"], "S1") == []


async def test_setup_warns_and_status_keeps_showing_it(world: World) -> None:
    key = world.btcpay_state.create_api_key([f"{STORE}{p}:{world.store_id}" for p in SYNC_ONLY])
    service = BTCPayService(db=world.db, secrets=world.secrets, http=world.session, connectors=Connectors(),
                            settings=world.settings, environ={})
    await service.start()
    try:
        report = await btcpay_setup.connect(service, world.btcpay_url, Secret(key))
        [store] = report["stores"]
        assert store["ready"]  # the sync works without pay links: setup goes on
        text = format_report(report)
        assert (f"warning: the key lacks {STORE}cancreateinvoice: pay links cannot create invoices "
                f"(add to the key: {STORE}cancreateinvoice:{world.store_id})") in text
        assert f"warning: the key lacks {STORE}canmodifyinvoices: pay links cannot invalidate a superseded checkout" in text
        await btcpay_setup.select_stores(service, [world.store_id])
        status = await btcpay_status.report(service)
        assert [w["permission"] for w in status["stores"][0]["permission_warnings"]] == [
            STORE + "cancreateinvoice", STORE + "canmodifyinvoices"]
        assert f"warning: the key lacks {STORE}canmodifyinvoices" in format_status(status)
        # with --features ...,paylinks the permissions are required: the store is refused
        await btcpay_setup.connect(service, world.btcpay_url, Secret(key), ["sync", "paylinks"])
        with pytest.raises(UserFacingError, match="canmodifyinvoices"):
            await btcpay_setup.select_stores(service, [world.store_id])
    finally:
        await service.stop()


async def test_unfollowed_store_error_points_at_commands_that_exist(world: World) -> None:
    with pytest.raises(UserFacingError) as refused:
        await world.links().create_fixed("5", "USD", None, actor="alice", audit=world.audit, store_id="not-followed")
    assert "not followed" in refused.value.message
    fix = refused.value.fix or ""
    assert "`sovterm btcpay status`" in fix and "`sovterm setup btcpay --store STORE_ID`" in fix
    parser = build_parser()
    assert parser.parse_args(["btcpay", "status"]).func.__name__ == "cmd_status"
    assert parser.parse_args(["setup", "btcpay", "--store", "S"]).func.__name__ == "cmd_setup"
