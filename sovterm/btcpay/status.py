"""`btcpay.status`: what the operator sees of the connection (reachability, each followed store with its
webhook's health at BTCPay, deliveries received, poll progress), or, before any connection, the URL the
setup wizard proposes."""

from __future__ import annotations

import time
from typing import Any

from sovterm.btcpay import ledger
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import BTCPayError, BTCPayNotFound
from sovterm.btcpay.poller import cursor_key
from sovterm.btcpay.service import CONNECTOR, SETUP_KEY, BTCPayService
from sovterm.btcpay.setup import propose_url
from sovterm.store import kv


async def report(btcpay: BTCPayService) -> dict[str, Any]:
    """Reachability, stores with their webhook's health at BTCPay, and the connector state."""
    setup = await kv.get(btcpay.db, SETUP_KEY)
    if not btcpay.connected:
        proposed, source = propose_url(btcpay.settings, btcpay.environ)
        state = btcpay.connectors.get(CONNECTOR)
        return {
            "state": "not_configured", "detail": state.detail if state else "", "proposed_url": proposed,
            "proposed_source": source, "setup": setup, "stores": [], "refusals": await refusals(btcpay.db),
        }
    probe = await btcpay.probe()
    out: dict[str, Any] = {
        "url": btcpay.url,
        "features": btcpay.features,
        "key_label": btcpay.key_label,
        "server_version": probe.get("server_version"),
        "synchronized": probe.get("synchronized"),
        "setup": setup,
        "stores": [],
    }
    for store_id in await ledger.selected_stores(btcpay.db):
        out["stores"].append(await _store_status(btcpay, store_id, probe["state"] == "connected"))
    out["refusals"] = await refusals(btcpay.db)
    state = btcpay.connectors.get(CONNECTOR)
    out["state"] = state.state if state else probe["state"]
    out["detail"] = state.detail if state else ""
    return out


RECENT_SHOWN = 5


async def refusals(db: Any, *, now: float | None = None) -> dict[str, Any]:
    """Who knocked and why: refused webhooks of the last 24 h by reason (every store, followed or not,
    from the hourly counts), and the most recent few as recorded (untrusted fields already clipped)."""
    since_hour = int(time.time() if now is None else now) // 3600 - 24
    by_reason = await db.fetchall(
        "SELECT reason, SUM(refused) FROM webhook_refusal_counts WHERE hour > ? GROUP BY reason ORDER BY 2 DESC",
        (since_hour,),
    )
    recent = await db.fetchall(
        "SELECT at, reason, http_status, store_id, client FROM webhook_refusals ORDER BY id DESC LIMIT ?",
        (RECENT_SHOWN,),
    )
    return {
        "last_24h": {reason: count for reason, count in by_reason},
        "recent": [{"at": r[0], "reason": r[1], "http_status": r[2], "store_id": r[3], "client": r[4]} for r in recent],
    }


async def _store_status(btcpay: BTCPayService, store_id: str, reachable: bool) -> dict[str, Any]:
    row = await ledger.store_row(btcpay.db, store_id)
    assert row is not None
    hook_id = row["webhook_id"]
    webhook: dict[str, Any] | None = None
    if hook_id:
        webhook = {"id": hook_id, "url": btcpay.webhook_url(store_id), "health": "unknown (BTCPay unreachable)"}
        if reachable:
            webhook.update(await _webhook_health(btcpay.quick_client_for(store_id), store_id, hook_id))
    local = await btcpay.db.fetchone(
        "SELECT COUNT(*), MAX(received_at) FROM webhook_deliveries WHERE store_id = ?", (store_id,)
    )
    refused = await btcpay.db.fetchone(
        "SELECT COALESCE(SUM(refused), 0) FROM webhook_refusal_counts WHERE store_id = ? AND hour > ?",
        (store_id, int(time.time()) // 3600 - 24),
    )
    cursor = await kv.get(btcpay.db, cursor_key(store_id))
    return {
        "id": store_id,
        "name": row["name"],
        "api_key": "own" if btcpay.has_own_key(store_id) else "server",
        "api_key_label": row["settings"].get("api_key_label") if btcpay.has_own_key(store_id) else None,
        "error": btcpay.store_error(store_id),
        "webhook": webhook,
        "deliveries_received": local[0],
        "last_delivery_received_at": local[1],
        "refused_last_24h": refused[0],
        "invoices": await ledger.count_invoices(btcpay.db, store_id),
        "polled_until": None if cursor is None else cursor.get("covered_until"),
        "permission_warnings": row["settings"].get("permission_warnings", []),
    }


async def _webhook_health(client: BTCPayClient, store_id: str, hook_id: str) -> dict[str, Any]:
    """BTCPay's own view: did its last delivery to us succeed?"""
    try:
        hook = await client.get_webhook(store_id, hook_id)
        deliveries = await client.list_webhook_deliveries(store_id, hook_id, count=1)
    except BTCPayNotFound:
        return {"health": "missing at BTCPay (run `sovterm setup btcpay` again to repair)"}
    except BTCPayError as exc:
        return {"health": f"unknown ({exc.message})"}
    if not hook.enabled:
        return {"health": "disabled at BTCPay (run `sovterm setup btcpay` again to repair)", "last_delivery": None}
    if not deliveries:
        return {"health": "no deliveries yet", "last_delivery": None}
    last = deliveries[0]
    ok = last.status == "HttpSuccess"
    return {
        "health": "ok" if ok else "failing",
        "last_delivery": {
            "at": last.delivery_time or last.timestamp, "status": last.status, "http_code": last.http_code,
            "ok": ok, "error": last.error_message,
        },
    }
