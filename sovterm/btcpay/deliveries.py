"""What BTCPay sent to our webhook and what became of each delivery, and BTCPay's redeliver.

BTCPay lists a webhook's recent deliveries (id, time, the HTTP code it got, its status: HttpSuccess,
HttpError or Failed); sovterm knows which it recorded and which it refused and why. Put together:
- **verified**: answered 200 and recorded (the event and its invoice or payout are shown);
- **deduplicated**: answered 200 but not recorded, because the same event had already arrived (a BTCPay
  retry or redelivery; sovterm answers 200 only to a delivery it verified);
- **refused**: answered 4xx/5xx, with our reason when the refusal is still in the recent-refusals record;
- **not delivered**: BTCPay could not reach the listener (its error message says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sovterm.btcpay.models import WebhookDelivery
from sovterm.errors import UserFacingError
from sovterm.store.db import Database

Outcome = Literal["verified", "deduplicated", "refused", "not delivered"]
DEFAULT_COUNT = 50
# What a refusal's status code means here (a refusal before the signature verified records no delivery id:
# nothing in an unverified body is trusted). See `btcpay/webhooks.py ingest`.
REFUSED_BECAUSE = {
    401: "the signature did not verify: BTCPay signs with a secret sovterm does not hold "
         "(`sovterm btcpay rotate-webhook-secret` sets a new one at both ends)",
    404: "the webhook's URL names a store sovterm does not follow",
    403: "the delivery is for another store than its URL names",
    413: "the body is larger than [listener] max_body_bytes",
    400: "the body could not be read as a BTCPay event",
    429: "rate-limited at the listener",
}


@dataclass(frozen=True)
class Recorded:
    event_type: str
    invoice_id: str | None
    payout_id: str | None
    received_at: int


def outcome(remote: WebhookDelivery, recorded: Recorded | None, refusal: str | None) -> tuple[Outcome, str]:
    """(outcome, reason) of one delivery BTCPay lists."""
    if recorded is not None:
        return "verified", ""
    if remote.status == "HttpSuccess" or remote.http_code == 200:
        return "deduplicated", "the event had already arrived"
    if remote.status == "Failed" and remote.http_code is None:
        return "not delivered", remote.error_message or "BTCPay could not reach the listener"
    if refusal:
        return "refused", refusal
    return "refused", REFUSED_BECAUSE.get(remote.http_code or 0, f"answered HTTP {remote.http_code}")


async def _webhook_id(db: Database, store_id: str) -> str:
    row = await db.fetchone("SELECT webhook_id FROM btcpay_stores WHERE store_id = ? AND selected = 1", (store_id,))
    if row is None or row[0] is None:
        raise UserFacingError(f"store {store_id} is not followed or has no webhook of ours",
                              fix="`sovterm btcpay status` lists the followed stores and their webhooks")
    return str(row[0])


def _chunks(ids: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


async def deliveries(db: Database, client: Any, store_id: str, count: int = DEFAULT_COUNT) -> list[dict[str, Any]]:
    """BTCPay's latest deliveries to our webhook at one store, newest first, each with its outcome here."""
    webhook_id = await _webhook_id(db, store_id)
    remote: list[WebhookDelivery] = await client.list_webhook_deliveries(store_id, webhook_id, count=count)
    ids = [d.id for d in remote]
    recorded: dict[str, Recorded] = {}
    refusals: dict[str, str] = {}
    for part in _chunks(ids):
        marks = ",".join("?" * len(part))
        for r in await db.fetchall(
            "SELECT delivery_id, event_type, invoice_id, payout_id, received_at FROM webhook_deliveries "
            f"WHERE store_id = ? AND delivery_id IN ({marks})", (store_id, *part)):
            recorded[r[0]] = Recorded(r[1], r[2], r[3], r[4])
        for r in await db.fetchall(
            f"SELECT delivery_id, reason FROM webhook_refusals WHERE delivery_id IN ({marks}) ORDER BY id", part):
            refusals[r[0]] = r[1]
    out = []
    for d in remote:
        mine = recorded.get(d.id)
        result, reason = outcome(d, mine, refusals.get(d.id))
        out.append({
            "store_id": store_id, "webhook_id": webhook_id, "delivery_id": d.id, "at": d.timestamp,
            "http_code": d.http_code, "btcpay_status": d.status, "outcome": result, "reason": reason,
            "event_type": None if mine is None else mine.event_type,
            "invoice_id": None if mine is None else mine.invoice_id,
            "payout_id": None if mine is None else mine.payout_id,
        })
    return out


async def redeliver(db: Database, client: Any, store_id: str, delivery_id: str) -> dict[str, str]:
    new_id = await client.redeliver_webhook_delivery(store_id, await _webhook_id(db, store_id), delivery_id)
    return {"store_id": store_id, "delivery_id": delivery_id, "new_delivery_id": new_id}
