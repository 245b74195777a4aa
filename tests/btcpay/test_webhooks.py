"""Webhook signature, event parsing, and ingestion (refusals, dedupe, one transaction)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sovterm.btcpay.webhooks import (
    PRUNE_DELIVERIES,
    SUBSCRIBED_EVENTS,
    InvoiceEvent,
    PayoutEvent,
    WebhookEvent,
    WebhookParseError,
    ingest,
    parse_event,
    prune_webhooks,
    read_limited,
    sign,
    verify_signature,
)
from sovterm.sim.btcpay_state import BTCPaySimState, SimClock
from sovterm.store.db import Database
from sovterm.store.secrets import Secret

from .conftest import T0, validator

# Third-party capture quoted in the notes (blakejakopovic/lightning_rs_webhook@9aec315)
VECTOR_SECRET = Secret("Y6Tio3rXRT4dGqpk43GvBPK9fHQ")
VECTOR_SIG = "sha256=237906b0175aa4de911eba91ec0791e7482333a5de9f81a179442fc602b0d1be"
VECTOR_BODY = "\n".join([
    "{",
    '  "manuallyMarked": false,',
    '  "deliveryId": "WZbyGsmWGZvYjRsYCH7Vmt",',
    '  "webhookId": "AT7ogqNzXkjf12sLVWPDNS",',
    '  "originalDeliveryId": "WZbyGsmWGZvYjRsYCH7Vmt",',
    '  "isRedelivery": false,',
    '  "type": "InvoiceSettled",',
    '  "timestamp": 1683049755,',
    '  "storeId": "BJKmPvug3KHVWyu1ECEiAstAQXFjJD1fX87EcgEhHVLT",',
    '  "invoiceId": "6wmoR7p5UFVzCYuwyiViKX",',
    '  "metadata": {',
    '    "orderId": "23",',
    '    "physical": false',
    "  }",
    "}",
]).encode()
VECTOR_STORE = "BJKmPvug3KHVWyu1ECEiAstAQXFjJD1fX87EcgEhHVLT"


def test_signature_test_vector():
    assert len(VECTOR_BODY) == 408
    assert sign(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIG
    assert verify_signature(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG)
    assert verify_signature(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG.upper().replace("SHA256=", "sha256="))


def test_signature_rejects_any_change():
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY.replace(b"\n", b"\r\n"), VECTOR_SIG)
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY[:-1], VECTOR_SIG)
    assert not verify_signature(Secret("other"), VECTOR_BODY, VECTOR_SIG)
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, None)
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG[7:])  # no "sha256=" prefix
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, "sha256=zz")


def _all_event_bodies(legacy: bool = False) -> tuple[str, list[bytes]]:
    """Drive the simulator through every event we consume; return the queued webhook bodies."""
    state = BTCPaySimState(seed=3, clock=SimClock(T0))
    state.legacy_ids = legacy
    store = state.create_store("s")
    hook = state.create_webhook(store.id, "http://x/", everything=False, specific_events=list(SUBSCRIBED_EVENTS))
    a = state.create_invoice(store.id, Decimal("20"))
    state.pay(a.id, amount_btc=a.amount_btc() / 2)  # ReceivedPayment
    state.pay(a.id)  # Processing
    state.confirm(a.id)  # PaymentSettled, Settled
    state.refund(a.id, "RateThen")  # InvoiceRefund
    b = state.create_invoice(store.id, Decimal("20"))
    state.pay(b.id, amount_btc=Decimal("0.00001"))
    state.expire(b.id)  # Expired + ExpiredPaidPartial
    state.pay(b.id)  # PaidAfterExpiration
    c = state.create_invoice(store.id, Decimal("5"))
    state.pay(c.id)
    state.end_monitoring(c.id)  # Invalid
    p = state.create_payout(store.id, Decimal("0.001"))  # PayoutCreated
    state.approve_payout(store.id, p.id, 0)  # PayoutApproved
    state.mark_payout_paid(store.id, p.id)  # PayoutUpdated
    return store.id, state.queued_bodies(hook.id)


def test_every_consumed_event_type_parses_and_matches_spec():
    store_id, bodies = _all_event_bodies()
    events = [parse_event(b) for b in bodies]
    assert {e.type for e in events} == set(SUBSCRIBED_EVENTS)
    for raw, event in zip(bodies, events, strict=True):
        assert event.store_id == store_id and event.dedupe_key == event.delivery_id
        if event.type.startswith("Invoice"):
            assert isinstance(event, InvoiceEvent) and event.invoice_id
        else:
            assert isinstance(event, PayoutEvent) and event.payout_id and event.payout_state
        assert validator().validate_webhook(json.loads(raw)) == []
    settled_raw = json.loads(next(b for b, e in zip(bodies, events, strict=True) if e.type == "InvoiceSettled"))
    assert validator().validate_webhook({**settled_raw, "unexpected": 1})  # the check does bite
    settled = next(e for e in events if e.type == "InvoiceSettled")
    assert settled.manually_marked is False and settled.over_paid is False
    paid = next(e for e in events if e.type == "InvoiceReceivedPayment")
    assert paid.payment is not None and paid.payment.value > 0 and paid.payment_method_id == "BTC-CHAIN"
    refund = next(e for e in events if e.type == "InvoiceRefund")
    assert refund.pull_payment_id


def test_1x_payment_event_field_name():
    _, bodies = _all_event_bodies(legacy=True)
    paid = next(e for e in map(parse_event, bodies) if e.type == "InvoiceReceivedPayment")
    assert paid.payment_method_id == "BTC"


def test_unknown_event_type_is_generic_not_an_error():
    raw = json.dumps({"deliveryId": "d", "webhookId": "w", "originalDeliveryId": "d", "isRedelivery": False,
                      "type": "SubscriberCreated", "timestamp": 1, "storeId": "s", "somethingNew": 1}).encode()
    event = parse_event(raw)
    assert type(event) is WebhookEvent and event.type == "SubscriberCreated"
    assert event.model_extra == {"somethingNew": 1}


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'{"type": 5}', b'{"type": "InvoiceSettled"}'])
def test_parse_rejects_malformed(raw):
    with pytest.raises(WebhookParseError):
        parse_event(raw)


# -- ingest ------------------------------------------------------------------------------------------

SECRET = Secret("whsec-test-0123456789")
STORE = "StoreAAAA"


def body(**over) -> bytes:
    data = {"deliveryId": "D1", "webhookId": "W1", "originalDeliveryId": "D1", "isRedelivery": False,
            "type": "InvoiceSettled", "timestamp": T0, "storeId": STORE, "invoiceId": "INV1",
            "metadata": {}, "manuallyMarked": False, "overPaid": False}
    data.update(over)
    return json.dumps(data, indent=2).encode()


async def counts(db) -> dict[str, int]:
    out = {}
    for table in ("webhook_deliveries", "webhook_refusals", "invoices", "kv"):
        out[table] = (await db.fetchone(f"SELECT COUNT(*) FROM {table}"))[0]
    return out


class Recorder:
    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []

    async def __call__(self, conn, event) -> None:
        self.events.append(event)
        await conn.execute("INSERT INTO kv(key, value, updated_at) VALUES(?, '{}', 0)", (f"job:{event.dedupe_key}",))


async def run(db, raw: bytes, *, sig: str | None = "auto", secret=SECRET, store=STORE, handler=None, max_bytes=65536):
    headers = {} if sig is None else {"btcpay-sig": sign(SECRET, raw) if sig == "auto" else sig}
    return await ingest(db, store_id=store, secret=secret, raw=raw, headers=headers, max_bytes=max_bytes,
                        on_event=handler or Recorder())


async def test_accepts_and_runs_handler_in_the_same_transaction(db):
    handler = Recorder()
    result = await run(db, body(), handler=handler)
    assert (result.status, result.reason, result.duplicate, result.event_type) == (200, "accepted", False, "InvoiceSettled")
    assert [e.dedupe_key for e in handler.events] == ["D1"]
    assert await counts(db) == {"webhook_deliveries": 1, "webhook_refusals": 0, "invoices": 0, "kv": 1}


async def test_replay_by_original_delivery_id_is_ignored(db):
    await run(db, body())
    handler = Recorder()
    before = await counts(db)
    retry = await run(db, body(deliveryId="D2", isRedelivery=True), handler=handler)
    assert (retry.status, retry.duplicate) == (200, True)
    same = await run(db, body(), handler=handler)
    assert same.duplicate and handler.events == []
    assert await counts(db) == before


async def test_handler_failure_rolls_back_and_asks_for_a_retry(db):
    async def boom(conn, event):
        await conn.execute("INSERT INTO kv(key, value, updated_at) VALUES('half', '{}', 0)")
        raise RuntimeError("queue full")

    result = await run(db, body(), handler=boom)
    assert result.status == 500
    assert await counts(db) == {"webhook_deliveries": 0, "webhook_refusals": 0, "invoices": 0, "kv": 0}
    assert (await run(db, body())).status == 200  # BTCPay's retry then goes through


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("forged", 401, "bad_signature"),
        ("missing_sig", 401, "missing_signature"),
        ("truncated", 401, "bad_signature"),
        ("oversized", 413, "too_large"),
        ("non_json", 400, "unreadable"),
        ("wrong_store", 403, "wrong_store"),
        ("unknown_store", 404, "unknown_store"),
    ],
)
async def test_refusals_leave_no_effect_but_a_refusal_row(db, case, status, reason):
    handler = Recorder()
    raw = body()
    kw: dict = {}
    if case == "forged":
        kw["sig"] = sign(Secret("attacker"), raw)
    elif case == "missing_sig":
        kw["sig"] = None
    elif case == "truncated":
        kw["sig"] = sign(SECRET, raw)
        raw = raw[: len(raw) // 2]
    elif case == "oversized":
        raw = body(metadata={"pad": "x" * 5000})
        kw["max_bytes"] = 4096
    elif case == "non_json":
        raw = b"<html>oops</html>"
    elif case == "wrong_store":
        raw = body(storeId="SomeOtherStore")
    elif case == "unknown_store":
        kw["secret"] = None
    result = await run(db, raw, handler=handler, **kw)
    assert (result.status, result.reason.split(":")[0]) == (status, reason)
    assert handler.events == []
    assert await counts(db) == {"webhook_deliveries": 0, "webhook_refusals": 1, "invoices": 0, "kv": 0}
    row = await db.fetchone("SELECT reason, http_status, store_id, body_bytes FROM webhook_refusals")
    assert (row[1], row[2], row[3]) == (status, STORE, len(raw))
    assert "x" * 100 not in row[0]  # the body is never stored


async def test_vector_delivery_is_accepted_end_to_end(db):
    result = await ingest(db, store_id=VECTOR_STORE, secret=VECTOR_SECRET, raw=VECTOR_BODY,
                          headers={"BTCPay-Sig": VECTOR_SIG}, max_bytes=1 << 20, on_event=Recorder())
    assert result.status == 200 and result.event.invoice_id == "6wmoR7p5UFVzCYuwyiViKX"


class _Stream:
    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.reads = data, chunk, 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        out, self.data = self.data[: min(n, self.chunk)], self.data[min(n, self.chunk):]
        return out


async def test_read_limited_stops_after_the_limit():
    big = _Stream(b"x" * 10_000_000, chunk=1000)
    got = await read_limited(big, 4096)
    assert len(got) == 4097 and big.reads == 5  # detected as oversized without reading 10 MB
    assert await read_limited(_Stream(b"abc", chunk=2), 4096) == b"abc"


async def test_prune_webhooks(db: Database) -> None:
    now = 2_000_000_000
    # deliveries are only ever recorded for a store we follow, so the store has its row
    await db.write("INSERT OR IGNORE INTO btcpay_stores(store_id, updated_at) VALUES('s', 0)")
    for key, at in (("old", now - 91 * 86_400), ("new", now - 86_400)):
        await db.write(
            "INSERT INTO webhook_deliveries(dedupe_key, delivery_id, store_id, event_type, received_at) "
            "VALUES(?,?,?,?,?)", (key, key, "s", "InvoiceCreated", at))
        await db.write("INSERT INTO webhook_refusals(at, reason, http_status, body_bytes) VALUES(?,?,?,?)",
                             (at, "bad_signature", 401, 10))
    assert await prune_webhooks(db, 90, now=now) == {"deliveries_pruned": 1, "refusals_pruned": 1}
    assert [r[0] for r in await db.fetchall("SELECT dedupe_key FROM webhook_deliveries")] == ["new"]


async def test_prune_webhooks_seeks_by_store_instead_of_scanning(db: Database) -> None:
    """The prune runs every 30 s under the write lock webhook intake waits on: it must seek through
    the (store_id, received_at) index, never scan months of deliveries."""
    plan = await db.fetchall("EXPLAIN QUERY PLAN " + PRUNE_DELIVERIES, (0,))
    details = [r[3] for r in plan]
    assert any("SEARCH webhook_deliveries USING INDEX webhook_deliveries_store" in d for d in details), details
    assert not any(d.startswith("SCAN webhook_deliveries") for d in details), details
