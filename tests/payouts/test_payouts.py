"""Payout mirror and actions against the BTCPay simulator: roles, stale revisions, four eyes, audit."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from sovterm.btcpay.webhooks import PayoutEvent
from sovterm.control import protocol as rpc
from sovterm.control.roles import Role
from sovterm.parts.payouts import register_methods
from sovterm.payouts.service import CompletedPort, PayoutService
from tests.links.harness import World
from tests.support.dispatch import Dispatch, wire


def service(world: World, four_eyes: int | None = None, completed: CompletedPort | None = None) -> PayoutService:
    async def stores() -> list[str]:
        return [world.store_id]

    return PayoutService(world.db, world.btcpay_for, stores, lambda: four_eyes, completed=completed,
                         clock=world.clock)


async def audit_rows(world: World) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    rows = await world.db.fetchall("SELECT actor, action, subject, outcome, detail FROM audit ORDER BY id")
    return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]


async def test_poll_mirrors_payouts_with_exact_amounts(world: World) -> None:
    sim = world.btcpay_state
    usd = sim.create_payout(world.store_id, Decimal("123.45"), "USD", metadata={"source": "Supplier"})
    btc = sim.create_payout(world.store_id, Decimal("0.00150000"), "BTC", payout_method_id="BTC-LN")
    payouts = service(world)
    summary = await payouts.poll()
    assert summary == {"stores": 1, "new": 2, "changed": 0, "failed_stores": 0}
    rows = {r["payout_id"]: r for r in await payouts.list()}
    assert rows[usd.id]["original_amount"] == "123.45" and rows[usd.id]["amount_sats"] is None
    assert rows[usd.id]["state"] == "AwaitingApproval" and rows[usd.id]["destination"] == usd.destination
    assert rows[btc.id]["amount_sats"] == 150_000 and rows[btc.id]["payment_method"] == "BTC-LN"
    sim.cancel_payout(world.store_id, btc.id)  # cancelled payouts drop out of BTCPay's list
    assert (await payouts.poll())["changed"] == 1
    assert (await payouts.get(btc.id))["state"] == "Cancelled"


async def test_viewer_refused_and_admin_approves_with_audit(world: World) -> None:
    sim = world.btcpay_state
    p = sim.create_payout(world.store_id, Decimal("0.001"), "BTC")
    payouts = service(world)
    await payouts.poll()
    control = Dispatch(world.db, register_methods, payouts=payouts)
    listed = await control.call("payouts.list", user="vera", role=Role.VIEWER)
    assert [x["payout_id"] for x in listed] == [p.id]
    with pytest.raises(rpc.RpcError) as refused:
        await control.call("payouts.approve", user="vera", role=Role.VIEWER, payout_id=p.id)
    assert refused.value.code == rpc.FORBIDDEN and "admin" in refused.value.message
    assert sim.payouts[p.id].state == "AwaitingApproval"
    result = await control.call("payouts.approve", payout_id=p.id)
    assert result["result"] == "approved" and result["state"] == "AwaitingPayment"
    assert sim.payouts[p.id].state == "AwaitingPayment"
    done = await control.call("payouts.mark_paid", payout_id=p.id)
    assert done["state"] == "Completed" and sim.payouts[p.id].state == "Completed"
    rows = await audit_rows(world)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("alice", "payout.approve", p.id, "approved"), ("alice", "payout.mark_paid", p.id, "marked_paid")]
    assert rows[0][4]["amount"] == "0.001" and rows[0][4]["sats"] == 100_000 and rows[0][4]["revision"] == 0


async def test_stale_revision_is_reported_and_mirror_refreshed(world: World) -> None:
    sim = world.btcpay_state
    p = sim.create_payout(world.store_id, Decimal("0.002"), "BTC")
    payouts = service(world)
    await payouts.poll()
    sim.revise_payout(p.id, destination="bc1qchangedbytheclaimant")  # revision 0 -> 1 at BTCPay
    control = Dispatch(world.db, register_methods, payouts=payouts)
    with pytest.raises(rpc.RpcError) as stale:
        await control.call("payouts.approve", payout_id=p.id)
    assert stale.value.code == rpc.USER_ERROR and "changed at BTCPay" in stale.value.message
    assert "revision 1" in stale.value.message and "Nothing was done" in stale.value.message
    assert sim.payouts[p.id].state == "AwaitingApproval"  # not retried blindly
    row = await payouts.get(p.id)
    assert row["revision"] == 1 and row["destination"] == "bc1qchangedbytheclaimant"
    # the operator reviews and approves again: now it goes through
    assert (await control.call("payouts.approve", payout_id=p.id))["result"] == "approved"
    # cancel checks the revision too (BTCPay's cancel takes none)
    q = sim.create_payout(world.store_id, Decimal("0.003"), "BTC")
    await payouts.poll()
    sim.revise_payout(q.id, amount=Decimal("0.004"))
    with pytest.raises(rpc.RpcError, match="changed at BTCPay"):
        await control.call("payouts.cancel", payout_id=q.id)
    assert sim.payouts[q.id].state == "AwaitingApproval"
    outcomes = [(r[1], r[3]) for r in await audit_rows(world)]
    assert outcomes == [("payout.approve", "stale_revision"), ("payout.approve", "approved"),
                        ("payout.cancel", "stale_revision")]


async def test_four_eyes_needs_a_second_different_admin(world: World) -> None:
    sim = world.btcpay_state
    big = sim.create_payout(world.store_id, Decimal("0.01"), "BTC")  # 1,000,000 sats
    small = sim.create_payout(world.store_id, Decimal("0.0001"), "BTC")  # 10,000 sats
    fiat = sim.create_payout(world.store_id, Decimal("5.00"), "USD")  # sats unknown until approval
    payouts = service(world, four_eyes=50_000)
    await payouts.poll()
    control = Dispatch(world.db, register_methods, payouts=payouts)
    assert (await control.call("payouts.approve", payout_id=small.id))["result"] == "approved"
    first = await control.call("payouts.approve", payout_id=big.id)
    assert first["result"] == "pending" and sim.payouts[big.id].state == "AwaitingApproval"
    listed = {x["payout_id"]: x for x in await control.call("payouts.list", user="vera", role=Role.VIEWER)}
    assert listed[big.id]["pending_approval_by"] == "alice" and listed[big.id]["needs_four_eyes"]
    with pytest.raises(rpc.RpcError, match="different admin"):
        await control.call("payouts.approve", payout_id=big.id)
    assert sim.payouts[big.id].state == "AwaitingApproval"
    second = await control.call("payouts.approve", user="bob", role=Role.ADMIN, payout_id=big.id)
    assert second["result"] == "approved" and sim.payouts[big.id].state == "AwaitingPayment"
    pending = await control.call("payouts.approve", user="bob", role=Role.ADMIN, payout_id=fiat.id)
    assert pending["result"] == "pending"
    rows = await audit_rows(world)
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("alice", small.id, "approved"), ("alice", big.id, "pending_second_approval"),
        ("alice", big.id, "refused_same_user"), ("bob", big.id, "approved"), ("bob", fiat.id, "pending_second_approval")]
    assert rows[3][4]["first_approval_by"] == "alice"


async def test_the_completed_port_runs_once_in_the_mirror_transaction(world: World) -> None:
    sim = world.btcpay_state
    p = sim.create_payout(world.store_id, Decimal("0.0005"), "BTC", approved=True)
    seen: list[dict[str, Any]] = []

    class Sync:  # what the sync part is to the mirror: given at construction, no registration
        async def on_payout_completed(self, conn: Any, row: dict[str, Any]) -> None:
            async with conn.execute("SELECT state FROM payouts WHERE payout_id = ?", (row["payout_id"],)) as cur:
                assert (await cur.fetchone())[0] == "Completed"  # same transaction, row already written
            seen.append(row)

    payouts = service(world, completed=Sync())
    await payouts.poll()
    assert seen == []
    sim.mark_payout_paid(world.store_id, p.id)
    event = PayoutEvent.model_validate({"deliveryId": "d1", "type": "PayoutUpdated", "storeId": world.store_id,
                                        "payoutId": p.id, "payoutState": "Completed"})
    async with world.db.transaction() as conn:
        await payouts.on_event(conn, event)
    await payouts.idle()
    await payouts.poll()
    assert [r["payout_id"] for r in seen] == [p.id]
    assert seen[0]["amount_sats"] == 50_000 and seen[0]["state"] == "Completed"


async def test_webhook_for_unknown_payout_adds_it(world: World) -> None:
    sim = world.btcpay_state
    p = sim.create_payout(world.store_id, Decimal("0.0007"), "BTC")
    payouts = service(world)
    event = PayoutEvent.model_validate({"deliveryId": "d2", "type": "PayoutCreated", "storeId": world.store_id,
                                        "payoutId": p.id, "payoutState": "AwaitingApproval"})
    async with world.db.transaction() as conn:
        await payouts.on_event(conn, event)
    await payouts.idle()
    assert (await payouts.get(p.id))["amount_sats"] == 70_000


async def test_answers_are_the_mirrors_own_keys_and_a_stopped_mirror_answers_one_clear_error(world: World) -> None:
    sim = world.btcpay_state
    p = sim.create_payout(world.store_id, Decimal("0.001"), "BTC", metadata={"source": "Supplier"})
    payouts = service(world)
    control = Dispatch(world.db, register_methods, payouts=payouts)
    assert await control.call("payouts.refresh") == {"stores": 1, "new": 1, "changed": 0, "failed_stores": 0}
    assert await control.call("payouts.list") == wire(await payouts.list())
    approved = await control.call("payouts.approve", payout_id=p.id)
    assert approved == wire({**await payouts.get(p.id), "result": "approved"})  # no "message" key: not pending
    with pytest.raises(rpc.RpcError, match="not awaiting approval"):
        await control.call("payouts.approve", payout_id=p.id)
    assert [(r[1], r[2], r[4]) for r in await control.audit_rows()] == [
        ("payout.approve", p.id, "approved"), ("payout.approve", p.id, "refused_state")]  # one row per call
    control.stop("payouts")
    for method, params in (("payouts.list", {}), ("payouts.cancel", {"payout_id": p.id})):
        with pytest.raises(rpc.RpcError) as refused:
            await control.call(method, **params)
        assert refused.value.code == rpc.USER_ERROR
        assert refused.value.message.startswith("the payouts part is not running")
    assert len(await control.audit_rows()) == 2
