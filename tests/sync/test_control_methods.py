"""The sync part's control methods as the server runs them: the part they need, one audit row per admin
call, and answers typed by result models that carry exactly the service's keys and values."""

from __future__ import annotations

from typing import Any

import pytest

from sovterm.control import protocol as rpc
from sovterm.parts.sync import register
from sovterm.sync import backfill, queue
from sovterm.sync.engine import SyncEngine
from sovterm.sync.service import SyncService
from tests.support.dispatch import Dispatch, wire
from tests.sync.helpers import invoice, put


@pytest.fixture
async def control(db, engine: SyncEngine) -> Dispatch:
    return Dispatch(db, register, sync=SyncService(engine), payouts=None, btcpay=None, intake=None, qbo=None)


def timeless(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if not k.endswith("_age_s")}


async def test_answers_are_the_services_own_keys_and_values(db, engine: SyncEngine, control: Dispatch) -> None:
    await put(db, invoice("inv1"))
    await engine.drain()
    sync = control.running["sync"]
    assert (await sync.recent())[0]["qbo_id"]  # something posted, so the rows below are not empty
    # ages ("last posting 0.1 s ago") move between the two reads; everything else must be the same
    assert timeless(await control.call("sync.status")) == timeless(wire(await sync.status()))
    assert await control.call("sync.totals") == wire(await sync.totals())
    assert await control.call("sync.recent", limit=5) == wire(await sync.recent(5))
    assert await control.call("sync.dead") == wire(await sync.dead())
    assert await control.call("sync.unmatched") == wire(await sync.unmatched())
    assert await control.call("sync.review", limit=5) == wire(await sync.to_review(5))
    now = await control.call("sync.now")
    assert {**now, "status": timeless(now["status"])} == {"poll": {"skipped": "no BTCPay"}, "jobs": 0,
                                                          "status": timeless(wire(await sync.status()))}


async def test_each_admin_call_writes_exactly_one_audit_row(db, control: Dispatch) -> None:
    assert await control.call("sync.pause") == {"paused": True}
    assert await control.call("sync.resume") == {"paused": False}
    with pytest.raises(rpc.RpcError, match="no job 999"):
        await control.call("sync.retry", job_id=999)
    assert await control.call("sync.retry", all=True) == {"retried": 0}
    assert await control.call("sync.backfill", since="2026-01-01") == wire(await backfill.state(db))
    assert await control.call("setup.mode", mode="invoicing") == {"store_id": "default", "mode": "invoicing",
                                                                  "deposit_as": "salesreceipt", "summary_from": None,
                                                                  "timezone": None, "close_after_s": None}
    assert await control.audit_rows() == [
        ("alice", "sync.pause", None, {}, "ok"),
        ("alice", "sync.resume", None, {}, "ok"),
        ("alice", "sync.retry", "999", {"error": "no job 999"}, "refused"),
        ("alice", "sync.retry", "all", {"retried": 0}, "ok"),
        ("alice", "sync.backfill", "2026-01-01", {}, "ok"),
        ("alice", "setup.mode", "default", {"mode": "invoicing", "deposit_as": "salesreceipt"}, "ok"),
    ]


async def test_summary_mode_is_set_with_its_cut_over_and_time_zone_and_bad_input_is_refused(control: Dispatch):
    summarised = await control.call("setup.mode", mode="summary", summary_from="2026-02-01",
                                    timezone="Europe/Berlin")
    assert summarised == {"store_id": "default", "mode": "summary", "deposit_as": "salesreceipt",
                          "summary_from": "2026-02-01", "timezone": "Europe/Berlin", "close_after_s": 3600}
    with pytest.raises(rpc.RpcError, match="unknown time zone 'Mars/Olympus'"):
        await control.call("setup.mode", mode="summary", timezone="Mars/Olympus")
    with pytest.raises(rpc.RpcError, match="belong to summary mode"):
        await control.call("setup.mode", mode="deposit", summary_from="2026-02-01")
    # back to deposit mode: the zone stays for the days already summarised
    assert (await control.call("setup.mode", mode="deposit"))["timezone"] == "Europe/Berlin"


async def test_a_stopped_sync_part_answers_one_clear_error_and_audits_nothing(db, control: Dispatch) -> None:
    control.stop("sync")
    for method, params in (("sync.status", {}), ("sync.pause", {}), ("reconcile.book", {"txid": "t", "account": "a"})):
        with pytest.raises(rpc.RpcError) as refused:
            await control.call(method, **params)
        assert refused.value.code == rpc.USER_ERROR
        assert refused.value.message.startswith("the sync part is not running")
    with pytest.raises(rpc.RpcError, match="the qbo part is not running"):
        await control.call("reconcile", date_from="2026-01-01", date_to="2026-01-31")
    assert await control.audit_rows() == []
    assert (await queue.counts(db))["queued"] == 0
