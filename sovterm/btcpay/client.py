"""Async BTCPay Server Greenfield v1 client (aiohttp).

Store-scoped routes everywhere (`/api/v1/stores/{storeId}/…`): they exist from v1.13 to v2.4.1, while
the store-less forms only appeared in v2.4.x. Reads retry with exponential backoff and full jitter on
network errors, timeouts, 5xx and 429 (honouring Retry-After); writes are never retried blindly,
because BTCPay has no idempotency keys and a lost response may hide a completed write.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError

from sovterm.amounts import plain
from sovterm.btcpay.errors import (
    BTCPayAuthError,
    BTCPayBadResponse,
    BTCPayError,
    BTCPayNotFound,
    BTCPayRateLimited,
    BTCPayUnavailable,
    BTCPayValidationError,
    FieldError,
)
from sovterm.btcpay.models import (
    ApiKeyInfo,
    AppBase,
    AppSales,
    CrowdfundApp,
    Health,
    Invoice,
    InvoicePaymentMethod,
    LightningBalance,
    LightningPayment,
    OnChainWallet,
    OnChainWalletTransaction,
    Payout,
    PullPayment,
    ServerInfo,
    Store,
    StoreRate,
    Webhook,
    WebhookDelivery,
)
from sovterm.btcpay.webhooks import SUBSCRIBED_EVENTS
from sovterm.store.secrets import Secret

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_Q = quote  # path segments are ids from BTCPay or the operator: always escape


class BTCPayClient:
    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 30.0,
        retry_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry_attempts = retry_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._rng = random.Random()

    # -- transport -----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        body: Any = None,
        auth: bool = True,
    ) -> tuple[Any, int]:
        """Send one call; returns (decoded JSON or None, observed_at_ms of the attempt that answered)."""
        retry = method == "GET"
        attempts = 1 + (self.retry_attempts if retry else 0)
        query = _encode_params(params)
        last: BTCPayError | None = None
        for attempt in range(attempts):
            if attempt:
                delay = self._backoff(attempt, last)
                log.debug("BTCPay %s %s: retry %d in %.2fs (%s)", method, path, attempt, delay, last)
                await asyncio.sleep(delay)
            observed_at_ms = int(time.time() * 1000)
            try:
                return await self._once(method, path, query, body, auth), observed_at_ms
            except (BTCPayUnavailable, BTCPayRateLimited) as exc:
                last = exc
                if not retry:
                    raise
        assert last is not None
        raise last

    async def _once(
        self, method: str, path: str, query: list[tuple[str, str]], body: Any, auth: bool
    ) -> Any:
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"token {self._api_key.reveal()}"
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, default=_json_default).encode()
        url = self.base_url + path
        log.debug("BTCPay %s %s %s", method, path, query or "")
        try:
            async with self._session.request(
                method, url, params=query, data=data, headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError as exc:
            raise BTCPayUnavailable(f"BTCPay did not answer {method} {path} in time") from exc
        except aiohttp.ClientError as exc:
            raise BTCPayUnavailable(
                f"cannot reach BTCPay for {method} {path}: {type(exc).__name__}"
            ) from exc
        log.debug("BTCPay %s %s -> %d (%d bytes)", method, path, status, len(raw))
        if 200 <= status < 300:
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BTCPayBadResponse(
                    f"BTCPay answered {method} {path} with a body that is not JSON", status=status
                ) from exc
        raise _error_for(method, path, status, raw, retry_after)

    def _backoff(self, attempt: int, last: BTCPayError | None) -> float:
        if isinstance(last, BTCPayRateLimited) and last.retry_after_s is not None:
            return min(last.retry_after_s, self._backoff_max_s)
        cap = min(self._backoff_max_s, self._backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(0, cap)

    async def _get_model(self, model: type[M], path: str, **kw: Any) -> M:
        data, observed = await self._request("GET", path, **kw)
        return _parse(model, data, path, observed)

    async def _get_list(self, model: type[M], path: str, **kw: Any) -> list[M]:
        data, observed = await self._request("GET", path, **kw)
        if not isinstance(data, list):
            raise BTCPayBadResponse(f"BTCPay answered GET {path} with {type(data).__name__}, not a list")
        return [_parse(model, item, path, observed) for item in data]

    # -- server ----------------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self._get_model(Health, "/api/v1/health", auth=False)

    async def server_info(self) -> ServerInfo:
        return await self._get_model(ServerInfo, "/api/v1/server/info")

    async def current_api_key(self) -> ApiKeyInfo:
        """The key's own label and permissions: the basis of the permission report."""
        return await self._get_model(ApiKeyInfo, "/api/v1/api-keys/current")

    # -- stores ----------------------------------------------------------------------------------

    async def list_stores(self) -> list[Store]:
        return await self._get_list(Store, "/api/v1/stores")

    async def get_store(self, store_id: str) -> Store:
        return await self._get_model(Store, f"/api/v1/stores/{_Q(store_id)}")

    # -- invoices --------------------------------------------------------------------------------

    async def list_invoices(
        self,
        store_id: str,
        *,
        skip: int | None = None,
        take: int | None = None,
        start_date: int | None = None,
        end_date: int | None = None,
        status: Iterable[str] | None = None,
        order_ids: Iterable[str] | None = None,
        text_search: str | None = None,
        include_payment_methods: bool = False,
    ) -> list[Invoice]:
        """Newest first. Dates are unix seconds, both inclusive. No total count, no cursor."""
        params: list[tuple[str, Any]] = []
        for s in status or ():
            params.append(("status", s))
        for o in order_ids or ():
            params.append(("orderId", o))
        for name, value in (
            ("textSearch", text_search), ("startDate", start_date), ("endDate", end_date),
            ("skip", skip), ("take", take),
        ):
            if value is not None:
                params.append((name, value))
        if include_payment_methods:
            params.append(("includePaymentMethods", True))
        return await self._get_list(Invoice, f"/api/v1/stores/{_Q(store_id)}/invoices", params=params)

    async def get_invoice(self, store_id: str, invoice_id: str) -> Invoice:
        return await self._get_model(Invoice, f"/api/v1/stores/{_Q(store_id)}/invoices/{_Q(invoice_id)}")

    async def get_invoice_payment_methods(
        self, store_id: str, invoice_id: str, *, only_accounted_payments: bool = True
    ) -> list[InvoicePaymentMethod]:
        return await self._get_list(
            InvoicePaymentMethod,
            f"/api/v1/stores/{_Q(store_id)}/invoices/{_Q(invoice_id)}/payment-methods",
            params={"onlyAccountedPayments": only_accounted_payments},
        )

    async def get_store_payment_method_config(self, store_id: str, payment_method_id: str) -> dict[str, Any] | None:
        """A payment method's store settings (`includeConfig=true`, which BTCPay gives only to a key with
        `canmodifystoresettings`): a plugin's own JSON, e.g. BTCNutServer's `trustedMintsUrls` for `CASHU`.
        Raises BTCPayNotFound when the store has no such method (or the plugin is not installed)."""
        raw, _ = await self._request("GET", f"/api/v1/stores/{_Q(store_id)}/payment-methods/{_Q(payment_method_id)}",
                                     params={"includeConfig": True})
        config = raw.get("config") if isinstance(raw, dict) else None
        return config if isinstance(config, dict) else None

    async def create_invoice(
        self,
        store_id: str,
        *,
        amount: Decimal | None,
        currency: str,
        metadata: Mapping[str, Any] | None = None,
        expiration_minutes: int | None = None,
        payment_methods: Iterable[str] | None = None,
        redirect_url: str | None = None,
        additional_search_terms: Iterable[str] | None = None,
    ) -> Invoice:
        """Not retried: a timeout may hide a created invoice (look it up by `metadata.orderId`)."""
        checkout: dict[str, Any] = {}
        if expiration_minutes is not None:
            checkout["expirationMinutes"] = expiration_minutes
        if payment_methods is not None:
            checkout["paymentMethods"] = list(payment_methods)
        if redirect_url is not None:
            checkout["redirectURL"] = redirect_url
        body: dict[str, Any] = {
            "amount": None if amount is None else plain(amount),
            "currency": currency,
            "metadata": dict(metadata or {}),
        }
        if checkout:
            body["checkout"] = checkout
        if additional_search_terms is not None:
            body["additionalSearchTerms"] = list(additional_search_terms)
        data, observed = await self._request("POST", f"/api/v1/stores/{_Q(store_id)}/invoices", body=body)
        return _parse(Invoice, data, "create invoice", observed)

    async def mark_invoice_status(self, store_id: str, invoice_id: str, status: str) -> Invoice:
        """`Settled` or `Invalid` by hand (needs `btcpay.store.canmodifyinvoices`). BTCPay answers 422
        (`BTCPayValidationError`) when the invoice's state does not allow it, e.g. already Settled.
        Not retried: the caller re-reads the invoice to learn what happened."""
        data, observed = await self._request(
            "POST", f"/api/v1/stores/{_Q(store_id)}/invoices/{_Q(invoice_id)}/status", body={"status": status}
        )
        return _parse(Invoice, data, "mark invoice status", observed)

    async def refund_invoice(
        self,
        store_id: str,
        invoice_id: str,
        *,
        refund_variant: str,
        payout_methods: Iterable[str] | None = None,
        name: str | None = None,
        description: str | None = None,
        subtract_percentage: Decimal | None = None,
        custom_amount: Decimal | None = None,
        custom_currency: str | None = None,
    ) -> PullPayment:
        """Creates a pull payment the customer claims; not retried (a retry would create a second one)."""
        body: dict[str, Any] = {"refundVariant": refund_variant}
        optional = {
            "payoutMethods": None if payout_methods is None else list(payout_methods),
            "name": name,
            "description": description,
            "subtractPercentage": None if subtract_percentage is None else plain(subtract_percentage),
            "customAmount": None if custom_amount is None else plain(custom_amount),
            "customCurrency": custom_currency,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        data, observed = await self._request(
            "POST", f"/api/v1/stores/{_Q(store_id)}/invoices/{_Q(invoice_id)}/refund", body=body
        )
        return _parse(PullPayment, data, "refund invoice", observed)

    # -- webhooks --------------------------------------------------------------------------------

    @staticmethod
    def _webhook_body(
        url: str, secret: Secret | None, events: Iterable[str] | None, enabled: bool, automatic_redelivery: bool
    ) -> dict[str, Any]:
        specific = list(SUBSCRIBED_EVENTS if events is None else events)
        return {
            "url": url,
            "enabled": enabled,
            "automaticRedelivery": automatic_redelivery,
            "authorizedEvents": {"everything": False, "specificEvents": specific},
            "secret": secret.reveal() if secret else None,
        }

    async def create_webhook(
        self,
        store_id: str,
        url: str,
        *,
        secret: Secret | None = None,
        events: Iterable[str] | None = None,
        enabled: bool = True,
        automatic_redelivery: bool = True,
    ) -> Webhook:
        """Returns the webhook with its secret (BTCPay shows it only here). Events default to ours."""
        body = self._webhook_body(url, secret, events, enabled, automatic_redelivery)
        data, observed = await self._request("POST", f"/api/v1/stores/{_Q(store_id)}/webhooks", body=body)
        return _parse(Webhook, data, "create webhook", observed)

    async def list_webhooks(self, store_id: str) -> list[Webhook]:
        return await self._get_list(Webhook, f"/api/v1/stores/{_Q(store_id)}/webhooks")

    async def get_webhook(self, store_id: str, webhook_id: str) -> Webhook:
        return await self._get_model(Webhook, f"/api/v1/stores/{_Q(store_id)}/webhooks/{_Q(webhook_id)}")

    async def update_webhook(
        self,
        store_id: str,
        webhook_id: str,
        url: str,
        *,
        secret: Secret | None = None,
        events: Iterable[str] | None = None,
        enabled: bool = True,
        automatic_redelivery: bool = True,
    ) -> Webhook:
        """PUT is a full replace at BTCPay; `secret=None` keeps the current secret."""
        body = self._webhook_body(url, secret, events, enabled, automatic_redelivery)
        data, observed = await self._request(
            "PUT", f"/api/v1/stores/{_Q(store_id)}/webhooks/{_Q(webhook_id)}", body=body
        )
        return _parse(Webhook, data, "update webhook", observed)

    async def delete_webhook(self, store_id: str, webhook_id: str) -> None:
        await self._request("DELETE", f"/api/v1/stores/{_Q(store_id)}/webhooks/{_Q(webhook_id)}")

    async def list_webhook_deliveries(
        self, store_id: str, webhook_id: str, *, count: int | None = None
    ) -> list[WebhookDelivery]:
        params = None if count is None else {"count": count}
        return await self._get_list(
            WebhookDelivery,
            f"/api/v1/stores/{_Q(store_id)}/webhooks/{_Q(webhook_id)}/deliveries",
            params=params,
        )

    async def redeliver_webhook_delivery(self, store_id: str, webhook_id: str, delivery_id: str) -> str:
        """Asks BTCPay to send the delivery again; returns the new delivery id."""
        data, _ = await self._request(
            "POST",
            f"/api/v1/stores/{_Q(store_id)}/webhooks/{_Q(webhook_id)}/deliveries/{_Q(delivery_id)}/redeliver",
        )
        if not isinstance(data, str):
            raise BTCPayBadResponse("BTCPay answered redeliver without a delivery id")
        return data

    # -- payouts and pull payments ---------------------------------------------------------------

    async def list_payouts(self, store_id: str, *, include_cancelled: bool = False) -> list[Payout]:
        """All payouts of the store (no paging at BTCPay)."""
        return await self._get_list(
            Payout, f"/api/v1/stores/{_Q(store_id)}/payouts", params={"includeCancelled": include_cancelled}
        )

    async def get_payout(self, store_id: str, payout_id: str) -> Payout:
        return await self._get_model(Payout, f"/api/v1/stores/{_Q(store_id)}/payouts/{_Q(payout_id)}")

    async def approve_payout(
        self, store_id: str, payout_id: str, *, revision: int, rate_rule: str | None = None
    ) -> Payout:
        """Approve the revision the operator saw; a stale one gives BTCPayError `old-revision` (400)."""
        data, observed = await self._request(
            "POST",
            f"/api/v1/stores/{_Q(store_id)}/payouts/{_Q(payout_id)}",
            body={"revision": revision, "rateRule": rate_rule},
        )
        return _parse(Payout, data, "approve payout", observed)

    async def cancel_payout(self, store_id: str, payout_id: str) -> None:
        await self._request("DELETE", f"/api/v1/stores/{_Q(store_id)}/payouts/{_Q(payout_id)}")

    async def mark_payout_paid(self, store_id: str, payout_id: str) -> None:
        await self._request("POST", f"/api/v1/stores/{_Q(store_id)}/payouts/{_Q(payout_id)}/mark-paid")

    async def list_pull_payments(self, store_id: str, *, include_archived: bool = False) -> list[PullPayment]:
        return await self._get_list(
            PullPayment,
            f"/api/v1/stores/{_Q(store_id)}/pull-payments",
            params={"includeArchived": include_archived},
        )

    async def get_pull_payment(self, pull_payment_id: str) -> PullPayment:
        """BTCPay has only the store-less (anonymous) route for one pull payment."""
        return await self._get_model(PullPayment, f"/api/v1/pull-payments/{_Q(pull_payment_id)}")

    async def get_store_rates(self, store_id: str, pairs: list[str]) -> list[StoreRate]:
        """The store's rates for `pairs` (e.g. BTC_USD) under its own rate rules (`canviewstoresettings`)."""
        return await self._get_list(StoreRate, f"/api/v1/stores/{_Q(store_id)}/rates",
                                    params=[("currencyPair", p) for p in pairs])

    # -- the store's wallet and Lightning node ----------------------------------------------------
    # `btcpay.store.canviewwallet` (on-chain) and `btcpay.store.canuselightningnode` (Lightning); both are
    # included in `canmodifystoresettings`.

    async def get_onchain_wallet(self, store_id: str) -> OnChainWallet:
        return await self._get_model(OnChainWallet, f"/api/v1/stores/{_Q(store_id)}/payment-methods/BTC-CHAIN/wallet")

    async def list_onchain_transactions(self, store_id: str) -> list[OnChainWalletTransaction]:
        """The wallet's whole history, newest first."""
        return await self._get_list(
            OnChainWalletTransaction, f"/api/v1/stores/{_Q(store_id)}/payment-methods/BTC-CHAIN/wallet/transactions"
        )

    async def get_onchain_transaction(self, store_id: str, txid: str) -> OnChainWalletTransaction:
        return await self._get_model(
            OnChainWalletTransaction,
            f"/api/v1/stores/{_Q(store_id)}/payment-methods/BTC-CHAIN/wallet/transactions/{_Q(txid)}",
        )

    async def get_lightning_balance(self, store_id: str) -> LightningBalance:
        return await self._get_model(LightningBalance, f"/api/v1/stores/{_Q(store_id)}/lightning/BTC/balance")

    async def get_lightning_payment(self, store_id: str, payment_hash: str) -> LightningPayment:
        return await self._get_model(
            LightningPayment, f"/api/v1/stores/{_Q(store_id)}/lightning/BTC/payments/{_Q(payment_hash)}"
        )

    # -- apps ------------------------------------------------------------------------------------

    async def list_apps(self, store_id: str) -> list[AppBase]:
        return await self._get_list(AppBase, f"/api/v1/stores/{_Q(store_id)}/apps")

    async def get_crowdfund_app(self, app_id: str) -> CrowdfundApp:
        return await self._get_model(CrowdfundApp, f"/api/v1/apps/crowdfund/{_Q(app_id)}")

    async def get_app_sales(self, app_id: str, *, number_of_days: int = 7) -> AppSales:
        return await self._get_model(
            AppSales, f"/api/v1/apps/{_Q(app_id)}/sales", params={"numberOfDays": number_of_days}
        )


def _encode_params(params: Mapping[str, Any] | list[tuple[str, Any]] | None) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else (params or [])
    out: list[tuple[str, str]] = []
    for key, value in items:
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, str(value)))
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    raise TypeError(f"cannot send {type(value).__name__} to BTCPay")


def _parse(model: type[M], data: Any, what: str, observed_at_ms: int) -> M:
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        raise BTCPayBadResponse(f"BTCPay's answer to {what} is not what we expect ({fields})") from exc
    if isinstance(obj, Invoice):
        obj.observed_at_ms = observed_at_ms
    return obj


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_for(method: str, path: str, status: int, raw: bytes, retry_after: str | None) -> BTCPayError:
    try:
        body: Any = json.loads(raw) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    where = f"{method} {path}"
    text = f"BTCPay refused {where} ({status}{' ' + code if code else ''}): {message or 'no details'}"
    if status == 422 or (status == 400 and isinstance(body, list)):
        errors = [
            FieldError(str(e.get("path", "")), str(e.get("message", "")))
            for e in (body if isinstance(body, list) else [])
            if isinstance(e, dict)
        ]
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors) or "invalid request"
        return BTCPayValidationError(f"BTCPay rejected {where}: {detail}", errors=errors, status=status)
    if status in (401, 403):
        missing = body.get("missingPermission") if isinstance(body, dict) else None
        return BTCPayAuthError(
            text, status=status, btcpay_code=code, btcpay_message=message, missing_permission=missing
        )
    if status == 404:
        return BTCPayNotFound(text, status=status, btcpay_code=code, btcpay_message=message)
    if status == 429:
        return BTCPayRateLimited(f"BTCPay rate-limited {where}", retry_after_s=_retry_after_s(retry_after))
    if status >= 500:
        return BTCPayUnavailable(f"BTCPay failed {where} with HTTP {status}", status=status)
    return BTCPayError(text, status=status, btcpay_code=code, btcpay_message=message)
