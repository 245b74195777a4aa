"""A BTCPay Server Greenfield v1 simulator (aiohttp), for tests and `sovterm demo`.

`create_app(state)` serves the routes sovterm uses, with BTCPay's permission checks, error shapes,
pagination and webhook signing/retries; `BTCPaySimState` (in `btcpay_state`) is the controller tests
drive: pay, confirm, expire, mark, refund, payouts, failure injection. `seed_store()` builds a
realistic store. Run alone: `python -m sovterm.sim.btcpay --port 14142`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from random import Random
from typing import Any

import aiohttp
from aiohttp import web

from sovterm.btcpay.permissions import STORE, has_permission
from sovterm.sim.btcpay_state import (
    SAT,
    SIM_VERSION,
    BTCPaySimState,
    Fault,
    SimApiKey,
    SimClock,
    SimError,
    SimInvoice,
    SimPayout,
    SimPullPayment,
    SimWalletTx,
    SimWebhook,
    legacy_pm,
    normalise_pm,
)

__all__ = ["BTCPaySimState", "Fault", "SimClock", "SimError", "create_app", "seed_store", "SeededStore"]

log = logging.getLogger(__name__)

STATE_KEY = web.AppKey("btcpay_sim_state", BTCPaySimState)
_AUTH = re.compile(r"^(token|bearer)\s+(\S+)$", re.IGNORECASE)
CHAIN_HEIGHT = 870_000  # the tip the simulated node reports (see server_info)
_STATUS_FILTER = {
    "new": "New", "paid": "Processing", "processing": "Processing", "complete": "Settled",
    "confirmed": "Settled", "settled": "Settled", "expired": "Expired", "invalid": "Invalid",
}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, default=_default).encode(), status=status,
        content_type="application/json", headers=headers,
    )


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return _json({"code": code, "message": message, **extra}, status=status)


def _validation(path: str, message: str) -> web.Response:
    return _json([{"path": path, "message": message}], status=422)


# -- auth ------------------------------------------------------------------------------------------


def _key(request: web.Request) -> SimApiKey:
    state = request.app[STATE_KEY]
    match = _AUTH.match(request.headers.get("Authorization", "").strip())
    key = state.api_keys.get(match[2]) if match else None
    if key is None:
        raise SimError(401, "unauthenticated", "Authentication is required for accessing this endpoint")
    return key


def _require(request: web.Request, permission: str, store_id: str) -> SimApiKey:
    """BTCPay answers 403 for a store the key cannot access, including an unknown store."""
    key = _key(request)
    state = request.app[STATE_KEY]
    if store_id not in state.stores or not has_permission(key.permissions, permission, store_id):
        raise SimError(403, "missing-permission", "Insufficient API Permissions. Please use an API key with "
                       f"permission {permission}. You can create an API key in your account's settings / Api Keys.",
                       missingPermission=permission)
    return key


# -- serialisers -----------------------------------------------------------------------------------


def _manual_marks(inv: SimInvoice) -> list[str]:
    marked = inv.additional_status == "Marked"
    out = []
    if inv.status in ("New", "Processing", "Expired", "Invalid") or (marked and inv.status != "Settled"):
        out.append("Settled")
    if inv.status in ("New", "Processing", "Expired") or (marked and inv.status != "Invalid"):
        out.append("Invalid")
    return out


def invoice_json(state: BTCPaySimState, inv: SimInvoice, *, include_payment_methods: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": inv.id,
        "storeId": inv.store_id,
        "amount": str(inv.amount if inv.amount is not None else Decimal("0")),
        "paidAmount": str((inv.net_paid_btc() * inv.rate).quantize(Decimal("0.01"))),  # PaidAmount.Net
        "currency": inv.currency,
        "type": inv.type,
        "checkoutLink": f"{state.public_url}/i/{inv.id}",
        "createdTime": inv.created,
        "expirationTime": inv.expiration,
        "monitoringExpiration": inv.monitoring_expiration,
        "status": inv.status,
        "additionalStatus": inv.additional_status,
        "availableStatusesForManualMarking": _manual_marks(inv),
        "archived": inv.archived,
        "metadata": inv.metadata,
        "checkout": {
            "speedPolicy": state.stores[inv.store_id].speed_policy,
            "paymentMethods": list(inv.methods),
            "expirationMinutes": (inv.expiration - inv.created) // 60,
            "monitoringMinutes": (inv.monitoring_expiration - inv.expiration) // 60,
            "paymentTolerance": float(state.stores[inv.store_id].payment_tolerance),
        },
        "receipt": {"enabled": True, "showQR": None, "showPayments": None},
    }
    if include_payment_methods:
        data["paymentMethods"] = payment_methods_json(state, inv)
    return data


def payment_methods_json(state: BTCPaySimState, inv: SimInvoice, *, only_accounted: bool = True) -> list[dict]:
    total_paid = inv.paid_btc()
    tolerance = state.stores[inv.store_id].payment_tolerance
    out = []
    for pm_id, pm in inv.methods.items():
        payments = [p for p in pm.payments if not only_accounted or p.status != "Invalid"]
        paid_here = sum((p.value for p in pm.payments if p.status != "Invalid"), Decimal(0))
        # PaymentPrompt.Calculate(): amount = TotalDue (price + fees paid + the next payment's fee while under-paid)
        amount = inv.gross_due_btc(pm, tolerance)
        item: dict[str, Any] = {
            "paymentMethodId": pm_id,
            "currency": "BTC",
            "destination": pm.destination,
            "paymentLink": ("bitcoin:" if pm_id == "BTC-CHAIN" else "lightning:") + pm.destination,
            "rate": str(inv.rate),
            "paymentMethodPaid": str(paid_here),
            "totalPaid": str(total_paid),
            "due": str(amount - total_paid),
            "amount": str(amount),
            "paymentMethodFee": str(amount - inv.amount_btc()),  # (grossDue - price) / rate
            "payments": [
                {"id": p.id, "receivedDate": p.received_date, "value": str(p.value), "fee": str(p.fee),
                 "status": p.status, "destination": p.destination}
                for p in payments
            ],
            "activated": True,
            "additionalData": {},
        }
        if state.legacy_ids:
            item["paymentMethod"] = legacy_pm(item.pop("paymentMethodId"))
            item["cryptoCode"] = item.pop("currency")
            item["networkFee"] = item.pop("paymentMethodFee")
        out.append(item)
    return out


def webhook_json(hook: SimWebhook, *, with_secret: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": hook.id, "enabled": hook.enabled, "automaticRedelivery": hook.automatic_redelivery,
        "url": hook.url,
        "authorizedEvents": {"everything": hook.everything, "specificEvents": hook.specific_events},
    }
    if with_secret:
        data["secret"] = hook.secret
    return data


def payout_json(p: SimPayout) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": p.id, "revision": p.revision, "pullPaymentId": p.pull_payment_id,
        "date": p.date,  # a number in the code, a string in the spec: the code wins
        "destination": p.destination, "originalCurrency": p.original_currency,
        "originalAmount": str(p.original_amount), "payoutCurrency": p.payout_currency,
        "payoutAmount": None if p.payout_amount is None else str(p.payout_amount),
        "payoutMethodId": p.payout_method_id, "state": p.state, "metadata": p.metadata,
    }
    if p.pull_payment_id is None:
        del data["pullPaymentId"]
    if p.payment_proof is not None:
        data["paymentProof"] = p.payment_proof
    return data


def pull_payment_json(state: BTCPaySimState, pp: SimPullPayment) -> dict[str, Any]:
    return {
        "id": pp.id, "name": pp.name, "description": pp.description, "currency": pp.currency,
        "amount": str(pp.amount), "BOLT11Expiration": "30", "autoApproveClaims": pp.auto_approve_claims,
        "archived": pp.archived, "viewLink": f"{state.public_url}/pull-payments/{pp.id}",
        "startsAt": pp.starts_at, "expiresAt": None,
    }


# -- handlers --------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return _json({"synchronized": request.app[STATE_KEY].fully_synched})


async def server_info(request: web.Request) -> web.Response:
    _key(request)
    state = request.app[STATE_KEY]
    return _json({
        "version": SIM_VERSION, "supportedPaymentMethods": ["BTC-CHAIN", "BTC-LN", "BTC-LNURL"],
        "fullySynched": state.fully_synched,
        "syncStatus": [{
            "paymentMethodId": "BTC-CHAIN",
            "nodeInformation": {"headers": 870000, "blocks": 870000, "verificationProgress": 1.0},
            "chainHeight": 870000, "syncHeight": 870000, "available": state.fully_synched,
        }],
    })


async def api_key_current(request: web.Request) -> web.Response:
    key = _key(request)
    return _json({"apiKey": key.key, "label": key.label, "permissions": key.permissions})


def _store_json(store: Any) -> dict[str, Any]:
    return {
        "id": store.id, "name": store.name, "defaultCurrency": store.default_currency,
        "invoiceExpiration": store.invoice_expiration_s, "monitoringExpiration": store.monitoring_expiration_s,
        "speedPolicy": store.speed_policy, "paymentTolerance": float(store.payment_tolerance),
        "networkFeeMode": store.network_fee_mode,
    }


async def list_stores(request: web.Request) -> web.Response:
    key = _key(request)
    state = request.app[STATE_KEY]
    return _json([
        _store_json(s) for s in state.stores.values()
        if has_permission(key.permissions, STORE + "canviewstoresettings", s.id)
    ])


async def get_store(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewstoresettings", store_id)
    return _json(_store_json(request.app[STATE_KEY].stores[store_id]))


def _int_param(request: web.Request, name: str, message: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _ValidationFailed(name, message) from None


class _ValidationFailed(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _bool_param(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    return default if raw is None else raw.lower() == "true"


async def list_invoices(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewinvoices", store_id)
    state = request.app[STATE_KEY]
    start = _int_param(request, "startDate", "Invalid unix timestamp")
    end = _int_param(request, "endDate", "Invalid unix timestamp")
    if start is not None and end is not None and start > end:
        return _validation("startDate", "startDate should not be above endDate")
    skip = _int_param(request, "skip", "The value is not valid.") or 0
    take = _int_param(request, "take", "The value is not valid.")
    statuses = {_STATUS_FILTER[s.lower()] for s in request.query.getall("status", []) if s.lower() in _STATUS_FILTER}
    order_ids = set(request.query.getall("orderId", []))
    text = (request.query.get("textSearch") or "")[:512]
    include_archived = _bool_param(request, "includeArchived", False)
    found = []
    for inv in state.invoices.values():
        if inv.store_id != store_id or (inv.archived and not include_archived):
            continue
        if start is not None and inv.created < start or end is not None and inv.created > end:
            continue
        if statuses and inv.status not in statuses:
            continue
        if order_ids and str(inv.metadata.get("orderId")) not in order_ids:
            continue
        if text and not any(t.startswith(text) for t in [inv.id, *inv.search_terms,
                                                        str(inv.metadata.get("orderId", ""))]):
            continue
        found.append(inv)
    found.sort(key=lambda i: (i.created, i.seq), reverse=True)
    page = found[skip: None if take is None else skip + take]
    include_pms = _bool_param(request, "includePaymentMethods", False)
    return _json([invoice_json(state, i, include_payment_methods=include_pms) for i in page])


async def create_invoice(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "cancreateinvoice", store_id)
    state = request.app[STATE_KEY]
    body = await _body(request)
    amount = body.get("amount")
    try:
        amount_dec = None if amount in (None, "") else Decimal(str(amount))
    except ArithmeticError:
        return _validation("amount", "Invalid amount")
    if amount_dec is not None and amount_dec < 0:
        return _validation("amount", "Amount should be greater than 0")
    checkout = body.get("checkout") or {}
    exp = checkout.get("expirationMinutes")
    if exp is not None and (not isinstance(exp, int | float) or exp <= 0):
        return _validation("checkout.expirationMinutes", "expirationMinutes must be positive")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        return _validation("metadata", "metadata should be an object")
    inv = state.create_invoice(
        store_id, amount_dec, body.get("currency"), metadata=metadata, expiration_minutes=exp,
        monitoring_minutes=checkout.get("monitoringMinutes"),
        payment_methods=checkout.get("paymentMethods"), search_terms=body.get("additionalSearchTerms"),
    )
    return _json(invoice_json(state, inv, include_payment_methods=False))


async def get_invoice(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewinvoices", store_id)
    state = request.app[STATE_KEY]
    inv = state.invoice(request.match_info["invoiceId"], store_id)
    include_pms = _bool_param(request, "includePaymentMethods", False)
    return _json(invoice_json(state, inv, include_payment_methods=include_pms))


async def get_payment_methods(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewinvoices", store_id)
    state = request.app[STATE_KEY]
    inv = state.invoice(request.match_info["invoiceId"], store_id)
    only = _bool_param(request, "onlyAccountedPayments", True)
    return _json(payment_methods_json(state, inv, only_accounted=only))


async def mark_invoice_status(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canmodifyinvoices", store_id)
    state = request.app[STATE_KEY]
    body = await _body(request)
    inv = state.invoice(request.match_info["invoiceId"], store_id)
    if body.get("status") not in ("Settled", "Invalid"):
        return _validation("Status", "Status can only be Settled or Invalid")
    try:
        state.mark_status(inv.id, body["status"])
    except SimError as exc:
        return _validation("Status", exc.message)
    return _json(invoice_json(state, inv, include_payment_methods=False))


async def refund_invoice(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    key = _require(request, STORE + "cancreatenonapprovedpullpayments", store_id)
    state = request.app[STATE_KEY]
    body = await _body(request)
    inv = state.invoice(request.match_info["invoiceId"], store_id)
    variant = body.get("refundVariant")
    if not variant:
        return _validation("RefundVariant", "RefundVariant is required")

    def dec(name: str) -> Decimal | None:
        v = body.get(name)
        return None if v in (None, "") else Decimal(str(v))

    try:
        pp = state.refund(
            inv.id, variant, name=body.get("name"), description=body.get("description") or "",
            custom_amount=dec("customAmount"), custom_currency=body.get("customCurrency"),
            subtract_percentage=dec("subtractPercentage") or Decimal(0),
            can_auto_approve=has_permission(key.permissions, STORE + "cancreatepullpayments", store_id),
        )
    except SimError as exc:
        if exc.status == 422:
            return _validation("refundVariant", exc.message)
        raise
    return _json(pull_payment_json(state, pp))


def _hook(request: web.Request, store_id: str) -> SimWebhook:
    hook = request.app[STATE_KEY].webhooks.get(request.match_info["webhookId"])
    if hook is None or hook.store_id != store_id:
        raise SimError(404, "webhook-not-found", "The webhook was not found")
    return hook


def _webhook_args(body: dict[str, Any]) -> dict[str, Any] | web.Response:
    url = body.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/]+", url):
        return _validation("Url", "Url is invalid (it must be an absolute URL)")
    events = body.get("authorizedEvents") or {}
    return {
        "url": url,
        "enabled": body.get("enabled", True) is not False,
        "automatic_redelivery": body.get("automaticRedelivery", True) is not False,
        "everything": events.get("everything", True) is not False,
        "specific_events": list(events.get("specificEvents") or []),
    }


async def list_webhooks(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    hooks = [h for h in request.app[STATE_KEY].webhooks.values() if h.store_id == store_id]
    return _json([webhook_json(h) for h in hooks])


async def create_webhook(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    body = await _body(request)
    args = _webhook_args(body)
    if isinstance(args, web.Response):
        return args
    hook = request.app[STATE_KEY].create_webhook(store_id, secret=body.get("secret") or None, **args)
    return _json(webhook_json(hook, with_secret=True))


async def get_webhook(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    return _json(webhook_json(_hook(request, store_id)))


async def update_webhook(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    hook = _hook(request, store_id)
    body = await _body(request)
    args = _webhook_args(body)
    if isinstance(args, web.Response):
        return args
    for name, value in args.items():
        setattr(hook, name, value)
    if body.get("secret"):
        hook.secret = body["secret"]
    return _json(webhook_json(hook))


async def delete_webhook(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    hook = _hook(request, store_id)
    del request.app[STATE_KEY].webhooks[hook.id]
    return web.Response(status=200)


def _delivery_json(d: Any) -> dict[str, Any]:
    data = {"id": d.id, "timestamp": d.timestamp, "deliveryTime": d.delivery_time or d.timestamp,
            "httpCode": d.http_code, "status": d.status}
    if d.error_message:
        data["errorMessage"] = d.error_message
    return data


async def list_deliveries(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    hook = _hook(request, store_id)
    count = _int_param(request, "count", "The value is not valid.")
    items = [d for d in request.app[STATE_KEY].deliveries.values() if d.webhook_id == hook.id]
    items.reverse()  # newest first (dicts keep insertion order)
    return _json([_delivery_json(d) for d in items[:count]])


async def get_delivery_request(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    hook = _hook(request, store_id)
    d = request.app[STATE_KEY].deliveries.get(request.match_info["deliveryId"])
    if d is None or d.webhook_id != hook.id:
        raise SimError(404, "webhookdelivery-not-found", "The delivery does not exist.")
    if d.pruned:
        raise SimError(409, "webhookdelivery-pruned", "This webhook delivery has been pruned")
    return web.Response(body=d.body, content_type="application/json")


async def redeliver(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "webhooks.canmodifywebhooks", store_id)
    hook = _hook(request, store_id)
    new = request.app[STATE_KEY].redeliver(hook.id, request.match_info["deliveryId"])
    return _json(new.id)


async def list_payouts(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewpayouts", store_id)
    include_cancelled = _bool_param(request, "includeCancelled", False)
    return _json([
        payout_json(p) for p in request.app[STATE_KEY].payouts.values()
        if p.store_id == store_id and (include_cancelled or p.state != "Cancelled")
    ])


async def get_payout(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewpayouts", store_id)
    return _json(payout_json(request.app[STATE_KEY].payout(store_id, request.match_info["payoutId"])))


async def approve_payout(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canmanagepayouts", store_id)
    body = await _body(request)
    revision = body.get("revision", 0)  # non-nullable int in BTCPay: omitted = 0
    if not isinstance(revision, int):
        return _validation("Revision", "The revision must be an integer")
    p = request.app[STATE_KEY].approve_payout(store_id, request.match_info["payoutId"], revision, body.get("rateRule"))
    return _json(payout_json(p))


async def cancel_payout(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canmanagepayouts", store_id)
    request.app[STATE_KEY].cancel_payout(store_id, request.match_info["payoutId"])
    return web.Response(status=200)


async def mark_payout_paid(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canmanagepayouts", store_id)
    request.app[STATE_KEY].mark_payout_paid(store_id, request.match_info["payoutId"])
    return web.Response(status=200)


async def list_pull_payments(request: web.Request) -> web.Response:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewpullpayments", store_id)
    state = request.app[STATE_KEY]
    include_archived = _bool_param(request, "includeArchived", False)
    return _json([
        pull_payment_json(state, pp) for pp in state.pull_payments.values()
        if pp.store_id == store_id and (include_archived or not pp.archived)
    ])


async def get_pull_payment(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    pp = state.pull_payments.get(request.match_info["pullPaymentId"])
    if pp is None:
        raise SimError(404, "pullpayment-not-found", "The pull payment was not found")
    return _json(pull_payment_json(state, pp))


# -- the store's wallet (on-chain) and Lightning node ------------------------------------------------


def _onchain_wallet(request: web.Request) -> tuple[BTCPaySimState, str]:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewwallet", store_id)
    if normalise_pm(request.match_info["paymentMethodId"]) != "BTC-CHAIN":
        raise SimError(404, "paymentmethod-not-configured", "The payment method is not configured")
    return request.app[STATE_KEY], store_id


def wallet_tx_json(tx: SimWalletTx, height: int) -> dict[str, Any]:
    """As the code sends it: `blockHeight`/`confirmations` are numbers and `labels` an object (the spec says
    strings and an array)."""
    confirmed = tx.confirmations > 0
    return {
        "transactionHash": tx.txid, "comment": tx.comment, "labels": {}, "amount": str(tx.amount),
        "blockHash": hashlib.sha256(tx.txid.encode()).hexdigest() if confirmed else None,
        "blockHeight": height - tx.confirmations + 1 if confirmed else None,
        "confirmations": tx.confirmations, "timestamp": tx.timestamp,
        "status": "Confirmed" if confirmed else "Unconfirmed",
    }


async def wallet_overview(request: web.Request) -> web.Response:
    state, store_id = _onchain_wallet(request)
    confirmed, unconfirmed = state.onchain_balance(store_id)
    return _json({"label": f"wpkh([{store_id[:8]}/84'/0'/0'])", "balance": str(confirmed + unconfirmed),
                  "unconfirmedBalance": str(unconfirmed), "confirmedBalance": str(confirmed)})


async def wallet_transactions(request: web.Request) -> web.Response:
    state, store_id = _onchain_wallet(request)
    skip = _int_param(request, "skip", "The value is not valid.") or 0
    limit = _int_param(request, "limit", "The value is not valid.")
    txs = state.onchain_transactions(store_id)[skip: None if limit is None else skip + limit]
    return _json([wallet_tx_json(t, CHAIN_HEIGHT) for t in txs])


async def wallet_transaction(request: web.Request) -> web.Response:
    state, store_id = _onchain_wallet(request)
    txid = request.match_info["transactionId"]
    tx = next((t for t in state.onchain_transactions(store_id) if t.txid == txid), None)
    if tx is None:
        raise SimError(404, "transaction-not-found", "The transaction was not found.")
    return _json(wallet_tx_json(tx, CHAIN_HEIGHT))


def _lightning_node(request: web.Request) -> tuple[BTCPaySimState, str]:
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canuselightningnode", store_id)
    if request.match_info["cryptoCode"].upper() != "BTC":
        raise SimError(404, "paymentmethod-not-configured", "The payment method is not configured")
    return request.app[STATE_KEY], store_id


async def lightning_balance(request: web.Request) -> web.Response:
    state, store_id = _lightning_node(request)
    local = state.lightning_local_msat(store_id)
    return _json({
        "onchain": {"confirmed": "0", "unconfirmed": "0", "reserved": "0"},
        "offchain": {"opening": "0", "local": str(local), "remote": str(max(0, 500_000_000 - local)), "closing": "0"},
    })


def _store_payment_methods(request: web.Request, only_enabled: bool) -> list[dict[str, Any]]:
    """`GreenfieldStorePaymentMethodsController.GetStorePaymentMethods` (btcpayserver@03345c2): every method
    with a config (the simulator knows only those seeded with one, e.g. `configure_cashu`), `config` only with
    `includeConfig=true`, which also needs `canmodifystoresettings`; a null config is left out of the JSON."""
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewstoresettings", store_id)
    include_config = _bool_param(request, "includeConfig", False)
    if include_config:
        _require(request, STORE + "canmodifystoresettings", store_id)
    store = request.app[STATE_KEY].stores[store_id]
    out = []
    for pmid, config in store.payment_method_configs.items():
        enabled = pmid not in store.payment_methods_disabled
        if only_enabled and not enabled:
            continue
        item: dict[str, Any] = {"enabled": enabled, "paymentMethodId": pmid}
        if include_config:
            item["config"] = config
        out.append(item)
    return out


async def list_store_payment_methods(request: web.Request) -> web.Response:
    """`GET /api/v1/stores/{storeId}/payment-methods?onlyEnabled=&includeConfig=`."""
    return _json(_store_payment_methods(request, _bool_param(request, "onlyEnabled", False)))


async def get_store_payment_method(request: web.Request) -> web.Response:
    """`GET /api/v1/stores/{storeId}/payment-methods/{paymentMethodId}?includeConfig=`; 404
    `paymentmethod-not-found` for a method the store has no config for (or a plugin not installed)."""
    wanted = request.match_info["paymentMethodId"].upper()
    found = [m for m in _store_payment_methods(request, False) if m["paymentMethodId"] == wanted]
    if not found:
        raise SimError(404, "paymentmethod-not-found", "The payment method is not found")
    return _json(found[0])


async def get_store_rates(request: web.Request) -> web.Response:
    """`GET /api/v1/stores/{storeId}/rates?currencyPair=BTC_USD` (Greenfield `Stores_GetStoreRates`, in
    swagger.template.stores-rates.json): one `StoreRateResult` per pair; the simulator's single BTC rate
    for every fiat currency, and an error for a pair its rules cannot compute."""
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canviewstoresettings", store_id)
    state = request.app[STATE_KEY]
    out = []
    for pair in request.query.getall("currencyPair", []):
        base, _, quote = pair.upper().partition("_")
        if base == "BTC" and len(quote) == 3 and quote.isalpha():
            out.append({"currencyPair": pair, "errors": [], "rate": str(state.rate)})
        else:
            out.append({"currencyPair": pair, "errors": [f"The rate rule for {pair} is missing"], "rate": None})
    return _json(out)


async def lightning_payment(request: web.Request) -> web.Response:
    state, store_id = _lightning_node(request)
    p = state.lightning_payment(store_id, request.match_info["paymentHash"])
    return _json({"id": p.payment_hash, "status": "Complete", "BOLT11": p.bolt11, "paymentHash": p.payment_hash,
                  "preimage": p.preimage, "createdAt": p.created, "totalAmount": str(p.amount_msat + p.fee_msat),
                  "feeAmount": str(p.fee_msat)})


async def get_crowdfund_app(request: web.Request) -> web.Response:
    _key(request)
    state = request.app[STATE_KEY]
    app = state.apps.get(request.match_info["appId"])
    if app is None:
        raise SimError(404, "app-not-found", "The app was not found")
    return _json({
        "id": app.id, "appName": app.name, "storeId": app.store_id, "created": app.created,
        "appType": "Crowdfund", "archived": False, "title": app.title, "description": None, "enabled": True,
        "enforceTargetAmount": app.enforce_target_amount, "startDate": app.start_date, "endDate": app.end_date,
        "resetEvery": app.reset_every, "resetEveryAmount": app.reset_every_amount,
        "targetCurrency": app.target_currency, "targetAmount": float(app.target_amount),
        "perks": app.perks,
    })


async def list_store_apps(request: web.Request) -> web.Response:
    """`GET /api/v1/stores/{storeId}/apps`: basic data of every app of the store (AppBaseData)."""
    state = request.app[STATE_KEY]
    store_id = request.match_info["storeId"]
    _require(request, STORE + "canmodifystoresettings", store_id)
    state.store(store_id)
    return _json([
        {"id": a.id, "appName": a.name, "storeId": a.store_id, "created": a.created, "appType": "Crowdfund",
         "archived": False}
        for a in state.apps.values() if a.store_id == store_id
    ])


async def get_app_sales(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    app = state.apps.get(request.match_info["appId"])
    if app is None:
        _key(request)
        raise SimError(404, "app-not-found", "The app was not found")
    _require(request, STORE + "canmodifystoresettings", app.store_id)
    days = _int_param(request, "numberOfDays", "The value is not valid.") or 7
    today = state.now() // 86_400 * 86_400
    first = today - (days - 1) * 86_400
    counts = {first + i * 86_400: 0 for i in range(days)}
    for inv in state.app_invoices(app.id):
        if inv.status in ("Processing", "Settled"):
            day = inv.created // 86_400 * 86_400
            if day in counts:
                counts[day] += 1
    series = [
        {"date": day, "label": datetime.fromtimestamp(day, UTC).strftime("%b %d"), "salesCount": n}
        for day, n in counts.items()
    ]
    return _json({"salesCount": sum(counts.values()), "series": series})


async def checkout_page(request: web.Request) -> web.Response:
    """A bare checkout page so the demo can 'pay' an invoice from a browser."""
    state = request.app[STATE_KEY]
    inv = state.invoice(request.match_info["invoiceId"])
    buttons = "".join(
        f'<form method="post" action="/i/{inv.id}/pay"><input type="hidden" name="method" value="{pm}">'
        f'<button>Pay with {pm}</button></form>'
        for pm in inv.methods
    ) if inv.status in ("New", "Expired") else ""
    confirm = (f'<form method="post" action="/i/{inv.id}/confirm"><button>Confirm on-chain payments</button></form>'
               if inv.status == "Processing" else "")
    html = (f"<!doctype html><title>Invoice {inv.id}</title><h1>{inv.amount} {inv.currency}</h1>"
            f"<p>{inv.amount_btc()} BTC &middot; status {inv.status} ({inv.additional_status})</p>{buttons}{confirm}")
    return web.Response(text=html, content_type="text/html")


async def checkout_pay(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    inv = state.invoice(request.match_info["invoiceId"])
    form = await request.post()
    state.pay(inv.id, method=str(form.get("method", "BTC-LN")))
    raise web.HTTPSeeOther(f"/i/{inv.id}")


async def checkout_confirm(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    inv = state.invoice(request.match_info["invoiceId"])
    state.confirm(inv.id)
    raise web.HTTPSeeOther(f"/i/{inv.id}")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SimError(400, "invalid-json", "The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise SimError(400, "invalid-json", "The request body must be a JSON object")
    return data


# -- app -------------------------------------------------------------------------------------------


@web.middleware
async def _sim_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    for prefix, delay in state.latency_s.items():
        if request.path.startswith(prefix):
            await asyncio.sleep(delay)
    for fault in list(state.faults):
        if fault.matches(request.method, request.path):
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    state.faults.remove(fault)
            if fault.kind == "timeout":
                await asyncio.sleep(fault.sleep_s)
                return web.Response(status=504, text="Gateway Timeout", headers={"X-Sim-Fault": "timeout"})
            headers = {"X-Sim-Fault": "status"}
            if fault.retry_after:
                headers["Retry-After"] = fault.retry_after
            return web.Response(status=fault.status, text="injected failure", headers=headers)
    state.tick()
    try:
        return await handler(request)
    except SimError as exc:
        return _error(exc.status, exc.code, exc.message, **exc.extra)
    except _ValidationFailed as exc:
        return _validation(exc.path, exc.message)


def create_app(state: BTCPaySimState) -> web.Application:
    app = web.Application(middlewares=[_sim_middleware])
    app[STATE_KEY] = state

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        await state.start_delivery(session)
        yield
        await state.stop_delivery()
        await session.close()

    app.cleanup_ctx.append(delivery)
    s = "/api/v1/stores/{storeId}"
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/server/info", server_info)
    app.router.add_get("/api/v1/api-keys/current", api_key_current)
    app.router.add_get("/api/v1/stores", list_stores)
    app.router.add_get(s, get_store)
    app.router.add_get(s + "/invoices", list_invoices)
    app.router.add_post(s + "/invoices", create_invoice)
    app.router.add_get(s + "/invoices/{invoiceId}", get_invoice)
    app.router.add_get(s + "/invoices/{invoiceId}/payment-methods", get_payment_methods)
    app.router.add_post(s + "/invoices/{invoiceId}/status", mark_invoice_status)
    app.router.add_post(s + "/invoices/{invoiceId}/refund", refund_invoice)
    app.router.add_get(s + "/webhooks", list_webhooks)
    app.router.add_post(s + "/webhooks", create_webhook)
    app.router.add_get(s + "/webhooks/{webhookId}", get_webhook)
    app.router.add_put(s + "/webhooks/{webhookId}", update_webhook)
    app.router.add_delete(s + "/webhooks/{webhookId}", delete_webhook)
    app.router.add_get(s + "/webhooks/{webhookId}/deliveries", list_deliveries)
    app.router.add_get(s + "/webhooks/{webhookId}/deliveries/{deliveryId}/request", get_delivery_request)
    app.router.add_post(s + "/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver", redeliver)
    app.router.add_get(s + "/rates", get_store_rates)
    app.router.add_get(s + "/payouts", list_payouts)
    app.router.add_get(s + "/payouts/{payoutId}", get_payout)
    app.router.add_post(s + "/payouts/{payoutId}", approve_payout)
    app.router.add_delete(s + "/payouts/{payoutId}", cancel_payout)
    app.router.add_post(s + "/payouts/{payoutId}/mark-paid", mark_payout_paid)
    app.router.add_get(s + "/pull-payments", list_pull_payments)
    app.router.add_get("/api/v1/pull-payments/{pullPaymentId}", get_pull_payment)
    app.router.add_get(s + "/payment-methods", list_store_payment_methods)
    app.router.add_get(s + "/payment-methods/{paymentMethodId}", get_store_payment_method)
    app.router.add_get(s + "/payment-methods/{paymentMethodId}/wallet", wallet_overview)
    app.router.add_get(s + "/payment-methods/{paymentMethodId}/wallet/transactions", wallet_transactions)
    app.router.add_get(s + "/payment-methods/{paymentMethodId}/wallet/transactions/{transactionId}",
                       wallet_transaction)
    app.router.add_get(s + "/lightning/{cryptoCode}/balance", lightning_balance)
    app.router.add_get(s + "/lightning/{cryptoCode}/payments/{paymentHash}", lightning_payment)
    app.router.add_get("/api/v1/apps/crowdfund/{appId}", get_crowdfund_app)
    app.router.add_get("/api/v1/stores/{storeId}/apps", list_store_apps)
    app.router.add_get("/api/v1/apps/{appId}/sales", get_app_sales)
    app.router.add_get("/i/{invoiceId}", checkout_page)
    app.router.add_post("/i/{invoiceId}/pay", checkout_pay)
    app.router.add_post("/i/{invoiceId}/confirm", checkout_confirm)
    return app


# -- seeding ---------------------------------------------------------------------------------------

#: The permissions of the minimal key sovterm documents, plus what the demo exercises.
DEMO_PERMISSIONS = [
    STORE + p for p in (
        "canviewstoresettings", "webhooks.canmodifywebhooks", "canmanagepayouts", "cancreateinvoice",
        "canmodifyinvoices", "cancreatepullpayments", "canmodifystoresettings",
    )
]

_ITEMS = ["Espresso beans 1kg", "Hoodie", "Consulting hour", "Sticker pack", "Hardware wallet",
          "Annual membership", "Workshop ticket", "Book: Mastering Bitcoin"]


@dataclass(frozen=True)
class SeededStore:
    store_id: str
    api_key: str
    app_id: str
    payout_ids: tuple[str, ...]


def seed_store(
    state: BTCPaySimState, n_invoices: int = 300, days: int = 60, rng_seed: int = 0, *, name: str = "Satoshi's Coffee"
) -> SeededStore:
    """A realistic store: invoices over `days` in every state, refunds, payouts awaiting approval,
    a crowdfund app. Deterministic for a given seed and clock; emits no webhooks (history)."""
    rng = Random(rng_seed)
    now = state.now()
    state.muted = True
    try:
        store = state.create_store(name)
        key = state.create_api_key([p + ":" + store.id for p in DEMO_PERMISSIONS], label="sovterm demo")
        app = state.create_crowdfund_app(
            store.id, "New roaster fund", target_amount=Decimal("5000"),
            perks=[{"id": "mug", "title": "Mug", "priceType": "Fixed", "price": "25.00", "inventory": None},
                   {"id": "bag", "title": "1kg bag", "priceType": "Fixed", "price": "40.00", "inventory": 50}],
        )
        outcomes = [
            ("settled_chain", 30), ("settled_ln", 22), ("expired", 14), ("expired_partial", 5),
            ("paid_late", 3), ("overpaid", 4), ("processing", 3), ("new", 3), ("invalid", 2),
            ("marked_settled", 2), ("marked_invalid", 1), ("refunded", 3), ("partial_new", 2),
        ]
        names, weights = zip(*outcomes, strict=True)
        times = sorted(rng.randint(now - days * 86_400, now - 3_600) for _ in range(n_invoices))
        # every outcome at least once (when there are enough invoices), the rest by weight
        forced = list(names)
        rng.shuffle(forced)
        for n, created in enumerate(times):
            outcome = forced[n] if n < len(forced) else rng.choices(names, weights)[0]
            if outcome in ("processing", "new", "partial_new"):
                created = now - rng.randint(60, 600)
            amount = Decimal(rng.randint(300, 50_000)) / 100
            rate = Decimal(rng.randint(5_800_000, 7_200_000)) / 100
            crowdfund = rng.random() < 0.08
            metadata: dict[str, Any] = {"orderId": f"{rng.randint(1000, 99999)}", "itemDesc": rng.choice(_ITEMS)}
            if rng.random() < 0.5:
                metadata["buyerEmail"] = f"buyer{rng.randint(1, 999)}@example.com"
            if crowdfund:
                metadata["itemCode"] = rng.choice(["mug", "bag"])
                metadata["orderUrl"] = app.order_url()
            inv = state.create_invoice(
                store.id, amount, "USD", metadata=metadata, created=created, rate=rate,
                search_terms=[f"crowdfund-app_{app.id}"] if crowdfund else None,
            )
            _play(state, inv, outcome, rng)
        for i in range(3):
            state.create_payout(
                store.id, Decimal(rng.randint(2_000, 40_000)) / 100, "USD",
                metadata={"source": "Supplier invoice #" + str(100 + i)}, at=now - rng.randint(3_600, 86_400),
            )
        refunded = [pp for pp in state.pull_payments.values() if pp.store_id == store.id]
        if refunded:
            pp = refunded[0]
            state.create_payout(store.id, pp.amount, pp.currency, pull_payment_id=pp.id,
                                metadata={"source": "Refund claim"}, at=now - 1_800)
        paid = state.create_payout(store.id, Decimal("0.00150000"), "BTC", at=now - 5 * 86_400)
        state.approve_payout(store.id, paid.id, paid.revision)
        state.pay_payouts(store.id, [paid.id], at=now - 5 * 86_400)  # from the wallet, with a miner fee
    finally:
        state.muted = False
    payouts = tuple(p.id for p in state.payouts.values() if p.store_id == store.id)
    return SeededStore(store.id, key, app.id, payouts)


def _play(state: BTCPaySimState, inv: SimInvoice, outcome: str, rng: Random) -> None:
    t = inv.created + rng.randint(20, 600)
    if outcome == "settled_chain":
        state.pay(inv.id, at=t)
        state.confirm(inv.id, at=t + 900)
    elif outcome == "settled_ln":
        state.pay(inv.id, method="BTC-LN", at=t)
    elif outcome == "marked_invalid":
        state.pay(inv.id, at=t)
        state.mark_status(inv.id, "Invalid", at=t + 86_400)
    elif outcome == "overpaid":
        state.pay(inv.id, amount_btc=inv.amount_btc() + Decimal("0.00010000"), at=t)
        state.confirm(inv.id, at=t + 900)
    elif outcome == "processing":
        state.pay(inv.id, at=t if t < state.now() else state.now())
    elif outcome == "partial_new":
        state.pay(inv.id, amount_btc=(inv.amount_btc() / 2).quantize(SAT), at=min(t, state.now()))
    elif outcome == "expired":
        state._tick_invoice(inv, inv.expiration)
    elif outcome == "expired_partial":  # the customer sent a third; it confirmed after the invoice expired
        state.pay(inv.id, amount_btc=(inv.amount_btc() / 3).quantize(SAT), at=t)
        state._tick_invoice(inv, inv.expiration)
        state.confirm(inv.id, at=inv.expiration + 900)
    elif outcome == "paid_late":
        state._tick_invoice(inv, inv.expiration)
        state.pay(inv.id, at=inv.expiration + 300)
        state.confirm(inv.id, at=inv.expiration + 1_200)
    elif outcome == "invalid":
        state.pay(inv.id, at=t)
        state._tick_invoice(inv, inv.monitoring_expiration)
    elif outcome == "marked_settled":
        state._tick_invoice(inv, inv.expiration)
        state.mark_status(inv.id, "Settled", at=inv.expiration + 3_600)
    elif outcome == "refunded":
        state.pay(inv.id, at=t)
        state.confirm(inv.id, at=t + 900)
        state.refund(inv.id, rng.choice(["RateThen", "CurrentRate", "Fiat"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="BTCPay Server Greenfield simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=14142)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--invoices", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args(argv)
    state = BTCPaySimState(seed=args.seed)
    state.public_url = f"http://{args.host}:{args.port}"
    seeded = seed_store(state, args.invoices, args.days, args.seed)
    print(f"store id: {seeded.store_id}\napi key:  {seeded.api_key}", flush=True)
    web.run_app(create_app(state), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
