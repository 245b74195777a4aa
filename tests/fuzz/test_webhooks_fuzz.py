"""Properties of the BTCPay webhook verifier and parser (sovterm/btcpay/webhooks.py): a signature
verifies only the exact bytes it was made for, and no body, however malformed, makes the parser raise
anything but its documented refusal."""

from __future__ import annotations

import json

from hypothesis import assume, given
from hypothesis import strategies as st

from sovterm.btcpay.webhooks import (
    INVOICE_EVENTS,
    PAYOUT_EVENTS,
    InvoiceEvent,
    PayoutEvent,
    WebhookEvent,
    WebhookParseError,
    parse_event,
    sign,
    verify_signature,
)
from sovterm.store.secrets import Secret

secrets = st.text(min_size=1, max_size=64).map(Secret)
bodies = st.binary(max_size=2048)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=10,
)
EVENT_KEYS = ["type", "deliveryId", "webhookId", "originalDeliveryId", "isRedelivery", "timestamp", "storeId",
              "invoiceId", "metadata", "manuallyMarked", "overPaid", "partiallyPaid", "afterExpiration",
              "paymentMethodId", "paymentMethod", "payment", "pullPaymentId", "payoutId", "payoutState"]
event_types = st.sampled_from(INVOICE_EVENTS + PAYOUT_EVENTS) | st.text(max_size=30)
# objects shaped like events, with any of their keys holding anything: reaches the model validation paths
field_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)
event_like = st.fixed_dictionaries({"type": event_types}, optional={key: field_values for key in EVENT_KEYS[1:]})
ids = st.text(min_size=1, max_size=40)


@given(secrets, bodies)
def test_a_signature_verifies_its_own_body(secret: Secret, body: bytes) -> None:
    header = sign(secret, body)
    assert verify_signature(secret, body, header)
    # the forms BTCPay and proxies send: any case, surrounding blanks
    assert verify_signature(secret, body, "  " + header.upper() + " ")


@given(secrets, bodies.filter(bool), st.data())
def test_a_one_byte_change_to_the_body_is_refused(secret: Secret, body: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(body) - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != body[i]), label="byte")
    tampered = body[:i] + bytes([new]) + body[i + 1:]
    assert not verify_signature(secret, tampered, sign(secret, body))


@given(secrets, bodies, st.data())
def test_a_one_character_change_to_the_signature_is_refused(secret: Secret, body: bytes, data: st.DataObject) -> None:
    header = sign(secret, body)
    i = data.draw(st.integers(len("sha256="), len(header) - 1), label="index")
    new = data.draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != header[i]), label="digit")
    assert not verify_signature(secret, body, header[:i] + new + header[i + 1:])


@given(secrets, secrets, bodies)
def test_another_secret_is_refused(secret: Secret, other: Secret, body: bytes) -> None:
    assume(secret.reveal() != other.reveal())
    assert not verify_signature(other, body, sign(secret, body))


@given(secrets, bodies, st.none() | st.text(max_size=120))
def test_any_header_is_answered_true_or_false_and_forgeries_false(secret: Secret, body: bytes, header: str | None) -> None:
    verdict = verify_signature(secret, body, header)
    assert verdict is (header is not None and header.strip().lower() == sign(secret, body))


def _parsed_or_refused(raw: bytes) -> WebhookEvent | None:
    try:
        event = parse_event(raw)
    except WebhookParseError as exc:
        assert str(exc)  # the refusal says why
        return None
    assert isinstance(event, WebhookEvent)
    return event


@given(bodies)
def test_any_bytes_parse_or_are_refused(raw: bytes) -> None:
    _parsed_or_refused(raw)


@given(json_values)
def test_any_json_parses_or_is_refused(value: object) -> None:
    _parsed_or_refused(json.dumps(value).encode())


@given(event_like)
def test_any_event_shaped_object_parses_or_is_refused(value: dict) -> None:
    event = _parsed_or_refused(json.dumps(value).encode())
    if event is not None:
        assert event.type == value["type"] and event.delivery_id == value["deliveryId"]


@given(st.sampled_from(INVOICE_EVENTS), ids, ids, st.none() | ids, st.none() | st.integers(0, 2**62),
       st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_invoice_events_round_trip(etype: str, delivery: str, invoice: str, original: str | None,
                                   timestamp: int | None, metadata: dict) -> None:
    body = {"type": etype, "deliveryId": delivery, "invoiceId": invoice, "originalDeliveryId": original,
            "timestamp": timestamp, "metadata": metadata, "storeId": "S1"}
    event = parse_event(json.dumps(body).encode())
    assert isinstance(event, InvoiceEvent)
    assert (event.type, event.delivery_id, event.invoice_id, event.timestamp, event.metadata) == (
        etype, delivery, invoice, timestamp, metadata)
    assert event.dedupe_key == (original or delivery)  # a retry is recognised by its original delivery id


@given(st.sampled_from(PAYOUT_EVENTS), ids, ids, st.none() | st.text(max_size=20))
def test_payout_events_round_trip(etype: str, delivery: str, payout: str, state: str | None) -> None:
    body = {"type": etype, "deliveryId": delivery, "payoutId": payout, "payoutState": state}
    event = parse_event(json.dumps(body).encode())
    assert isinstance(event, PayoutEvent)
    assert (event.type, event.delivery_id, event.payout_id, event.payout_state) == (etype, delivery, payout, state)
