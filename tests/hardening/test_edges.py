"""#19 point 13: edges of the public routes (an out-of-range signed number, forged floods in the log)."""

from __future__ import annotations

import logging

import pytest

from sovterm.btcpay.webhooks import REFUSALS_LOG, ingest, sign
from sovterm.store.group_commit import GroupCommit
from tests.btcpay.test_webhooks import SECRET, STORE, Recorder, body, run


@pytest.mark.parametrize("grouped", [False, True], ids=["own-transaction", "group-commit"])
async def test_signed_delivery_with_a_number_above_2_63_is_a_400_recorded_once(db, grouped) -> None:
    """SQLite holds 64-bit integers; a bigger one made the write raise, answered 500, and BTCPay retried it
    forever. It can never succeed, so it is a 400 (BTCPay does not retry those), recorded once."""
    raw = body(timestamp=2**63 + 1)
    handler = Recorder()
    commit = GroupCommit(db, inline=True) if grouped else None
    headers = {"BTCPay-Sig": sign(SECRET, raw)}
    result = await ingest(db, store_id=STORE, secret=SECRET, raw=raw, headers=headers, max_bytes=65536,
                          on_event=handler, commit=commit)
    assert (result.status, result.reason) == (400, "unreadable: a number is out of range")
    assert await db.fetchall("SELECT reason, http_status, delivery_id FROM webhook_refusals") == [
        ("unreadable: a number is out of range", 400, "D1")]
    assert await db.fetchall("SELECT COUNT(*) FROM webhook_deliveries") == [(0,)]
    # and the store is not wedged: the next, sane delivery goes in
    assert (await run(db, body(deliveryId="D2", originalDeliveryId="D2"))).status == 200


async def test_a_flood_of_forged_webhooks_is_two_log_lines(db, caplog) -> None:
    REFUSALS_LOG.flush()  # whatever earlier tests left in the window
    caplog.set_level(logging.INFO, logger="sovterm")
    caplog.clear()
    for i in range(300):
        await run(db, body(deliveryId=f"F{i}"), sig="sha256=" + "0" * 64)
    REFUSALS_LOG.flush()
    lines = [r.getMessage() for r in caplog.records if "refused BTCPay webhook" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "bad_signature" in lines[0] and "299 more" in lines[1] and "bad_signature 299" in lines[1]
