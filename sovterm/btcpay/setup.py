"""Register (or repair) sovterm's webhook at BTCPay and keep its secret in the SecretStore.

BTCPay shows a webhook's secret only when it is created, so we choose the secret ourselves and send
it on create and on every repair: an orphan webhook left by a crash (created at BTCPay, not recorded
here) is found again by its URL and simply gets a fresh secret.
"""

from __future__ import annotations

import secrets as token
from typing import Any

from sovterm.btcpay import ledger
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.models import Webhook
from sovterm.btcpay.webhooks import SUBSCRIBED_EVENTS
from sovterm.store.secrets import Secret, SecretStore


def webhook_secret_name(store_id: str) -> str:
    return f"btcpay:webhook:{store_id}"


def store_key_name(store_id: str) -> str:
    """The secret holding a store's own API key (a key scoped to that store only), when it has one."""
    return f"btcpay:api_key:{store_id}"


def webhook_path(store_id: str) -> str:
    """The route the daemon serves for this store's deliveries."""
    return f"/webhooks/btcpay/{store_id}"


async def ensure_webhook(
    db: Any, secret_store: SecretStore, client: BTCPayClient, store_id: str, public_url: str
) -> Webhook:
    """Make BTCPay's webhook for this store point at us, with our events, enabled, with a secret we hold."""
    url = public_url.rstrip("/") + webhook_path(store_id)
    row = await ledger.store_row(db, store_id)
    known_id = row["webhook_id"] if row else None
    hooks = await client.list_webhooks(store_id)
    ours = next((h for h in hooks if h.id == known_id), None) or next((h for h in hooks if h.url == url), None)
    secret = await secret_store.get(webhook_secret_name(store_id))
    if secret is None or ours is None:
        secret = Secret(token.token_urlsafe(32))
    if ours is None:
        hook = await client.create_webhook(store_id, url, secret=secret, events=SUBSCRIBED_EVENTS)
    else:
        hook = await client.update_webhook(store_id, ours.id, url, secret=secret, events=SUBSCRIBED_EVENTS)
    async with db.transaction() as conn:
        await secret_store.put(webhook_secret_name(store_id), secret, conn=conn)
        await ledger.upsert_store(conn, store_id, webhook_id=hook.id)
    return hook
