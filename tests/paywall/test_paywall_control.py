"""`paywall.*` control methods as the server runs them, and what they change on the listener at once."""

from __future__ import annotations

import pytest

from sovterm.cli.paywall import format_list, format_sales
from sovterm.control import protocol as rpc
from sovterm.parts.paywall import register
from tests.paywall.conftest import Shop
from tests.paywall.test_paywall_journeys import challenge
from tests.support.dispatch import Dispatch


async def test_add_list_remove_sales_and_keys_over_the_socket(shop: Shop, tmp_path: object) -> None:
    control = Dispatch(shop.services.require_db(), register, paywall=shop.gate)
    listed = await control.call("paywall.list")
    assert [(r["name"], r["path"], r["price"], r["source"]) for r in listed] == [
        ("weather", "/api/", "0.25 USD", "config"), ("reports", "/files/", "2100 sats", "config")]
    with pytest.raises(rpc.RpcError, match="upstream: must be an http:// URL on this machine"):
        await control.call("paywall.add", name="maps", path="/maps/", price_sats=100, upstream="http://example.com/")
    with pytest.raises(rpc.RpcError, match="/api/ is already priced by 'weather'"):
        await control.call("paywall.add", name="api2", path="/api/", price_sats=100, upstream="http://127.0.0.1:9/")
    added = await control.call("paywall.add", name="maps", path="/maps/", price_sats=100, access_s=60,
                               upstream="http://127.0.0.1:9/", description="Map tiles")
    assert added["price"] == "100 sats" and added["source"] == "added"
    # served at once by the running listener, no restart
    paid = (await challenge(shop, "/maps/tile/1")).pay(shop)
    assert (await shop.client.get("/maps/tile/1", headers=paid.l402())).status == 502  # nothing listens on :9
    with pytest.raises(rpc.RpcError, match="comes from the config file"):
        await control.call("paywall.remove", name="weather")
    removed = await control.call("paywall.remove", name="maps")
    assert removed["name"] == "maps"
    assert (await shop.client.get("/maps/tile/1", headers=paid.l402())).status == 404  # no longer sold
    assert await shop.services.require_db().fetchone("SELECT 1 FROM paywall_resources") is None

    sales = await control.call("paywall.sales")
    maps = [s for s in sales if s["resource"] == "maps"]
    assert maps and maps[0]["challenges"] == 1 and maps[0]["paid_requests"] == 1
    assert "maps" in format_sales(sales) and "/files/" in format_list(listed)

    old = shop.gate.keys.active_kid
    rotated = await control.call("paywall.keys.rotate")
    assert rotated["active"] != old and shop.gate.keys.active_kid == rotated["active"]
    token = (await challenge(shop, "/files/report.txt")).pay(shop)
    assert (await shop.client.get("/files/report.txt", headers=token.l402())).status == 200
    with pytest.raises(rpc.RpcError, match="is the active key"):
        await control.call("paywall.keys.retire", kid=rotated["active"])
    older = (await control.call("paywall.keys.retire", kid=old))["retired"]
    assert older == old and old not in shop.gate.keys.live
    assert [(k["kid"], k["active"], bool(k["retired_at"])) for k in await control.call("paywall.keys.list")] == [
        (old, False, True), (rotated["active"], True, False)]
    rows = await control.audit_rows()
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("paywall.add", "maps", "refused"), ("paywall.add", "api2", "refused"), ("paywall.add", "maps", "ok"),
        ("paywall.remove", "weather", "refused"), ("paywall.remove", "maps", "ok"),
        ("paywall.keys.rotate", rotated["active"], "rotated"), ("paywall.keys.retire", rotated["active"], "refused"),
        ("paywall.keys.retire", old, "retired")]


async def test_a_retired_key_stops_its_tokens_at_once(shop: Shop) -> None:
    paid = (await challenge(shop, "/files/report.txt")).pay(shop)
    old = shop.gate.keys.active_kid
    assert old is not None
    await shop.gate.keys.rotate()
    assert (await shop.client.get("/files/report.txt", headers=paid.l402())).status == 200  # older keys verify
    await shop.gate.keys.retire(old)
    answer = await shop.client.get("/files/report.txt", headers=paid.l402())
    assert (answer.status, (await answer.json())["error"]) == (401, "unknown or retired key")
