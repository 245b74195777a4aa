"""Webhook registration and repair against the simulator."""

from __future__ import annotations

import os

from sovterm.btcpay import ledger
from sovterm.btcpay.service import webhook_secret_name
from sovterm.btcpay.setup import ensure_webhook
from sovterm.btcpay.webhooks import SUBSCRIBED_EVENTS
from sovterm.store.secrets import SecretBox, SecretStore

PUBLIC = "https://shop.example/"


async def test_creates_then_repairs_and_recovers_an_orphan(db, sim):
    store_id, key = sim.store_with_key()
    client = sim.client(key)
    secrets = SecretStore(db, SecretBox(os.urandom(32)))
    async with db.transaction() as conn:
        await ledger.upsert_store(conn, store_id, name="Shop", selected=True)

    hook = await ensure_webhook(db, secrets, client, store_id, PUBLIC)
    stored = await secrets.get(webhook_secret_name(store_id))
    sim_hook = sim.state.webhooks[hook.id]
    assert sim_hook.url == f"https://shop.example/webhooks/btcpay/{store_id}"
    assert stored is not None and sim_hook.secret == stored.reveal()
    assert sim_hook.specific_events == list(SUBSCRIBED_EVENTS) and not sim_hook.everything
    assert (await ledger.store_row(db, store_id))["webhook_id"] == hook.id

    # someone disabled it at BTCPay: repaired in place, same secret
    sim_hook.enabled = False
    again = await ensure_webhook(db, secrets, client, store_id, PUBLIC)
    assert again.id == hook.id and sim_hook.enabled and sim_hook.secret == stored.reveal()

    # our database lost the secret (restore from an old backup): the orphan is found by URL, re-keyed
    await secrets.delete(webhook_secret_name(store_id))
    repaired = await ensure_webhook(db, secrets, client, store_id, PUBLIC)
    new_secret = await secrets.get(webhook_secret_name(store_id))
    assert repaired.id == hook.id and len(sim.state.webhooks) == 1
    assert new_secret is not None and new_secret != stored and sim_hook.secret == new_secret.reveal()
