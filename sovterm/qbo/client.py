"""A thin async client for the QuickBooks Online Accounting API v3 (plain dicts in and out).

Every call: a fresh access token from `TokenManager`, a slot from the company's `RealmLimiter`, a
timeout, `minorversion` pinned below, the `intuit_tid` logged, and the body checked for a `Fault`
even on HTTP 200. Every write carries a `requestid` derived from the logical operation, so a retry
after a timeout or a dropped connection is answered with the first response instead of a second
document. Throttling (429 or the XML `ThrottleExceeded` fault) and unavailability are retried with
exponential backoff and jitter; a 500 is resubmitted once, as Intuit advises.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import aiohttp

from sovterm.qbo.errors import (
    QBOAuthError,
    QBOError,
    QBOReconnectRequired,
    QBOServerError,
    QBOThrottled,
    QBOUnavailable,
    QBOWrongEnvironment,
    error_from_response,
    fault_to_error,
    parse_fault_body,
)
from sovterm.qbo.limiter import RealmLimiter
from sovterm.qbo.models import BatchItem, BatchResult, dumps, loads
from sovterm.qbo.tokens import TokenManager

log = logging.getLogger(__name__)

MINOR_VERSION = "75"  # Intuit ignores 1-74 since 2025-08-01; the only place it is set
MAX_BATCH_ITEMS = 30
MAX_QUERY_PAGE = 1000
VOID_BY_UPDATE = {"salesreceipt", "payment", "billpayment"}  # operation=update&include=void
VOID_BY_OPERATION = {"invoice"}  # operation=void


def request_id(*parts: object) -> str:
    """A requestid derived from the logical operation: same operation, same id (36 chars, UUID form).

    36 characters fit both a single call (Intuit allows 50) and a batch (36).
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote_literal(value: str) -> str:
    """A query string literal: backslash-escaped quotes and backslashes, no control characters."""
    if _CONTROL.search(value):
        raise ValueError("query values cannot contain control characters")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_PAGING = re.compile(r"\b(startposition|maxresults)\b", re.IGNORECASE)


class QBOClient:
    def __init__(
        self,
        api_base: str,
        realm_id: str,
        tokens: TokenManager,
        session: aiohttp.ClientSession,
        *,
        limiter: RealmLimiter,
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rng: random.Random | None = None,
        on_error: Callable[[QBOError], None] | None = None,  # counts errors for /metrics
    ) -> None:
        self.realm_id = realm_id
        self._on_error = on_error
        self._base = f"{api_base.rstrip('/')}/v3/company/{realm_id}"
        self._tokens = tokens
        self._session = session
        self._limiter = limiter
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base_s
        self._backoff_max = backoff_max_s
        self._rng = rng or random.Random()

    # -- transport ---------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return min(self._backoff_max, self._backoff_base * 2**attempt) * (0.5 + self._rng.random())

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return (await self._exchange(method, path, **kwargs))[0]

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        text_body: str | None = None,
        batch: bool = False,
        retry_unknown: bool = True,
    ) -> tuple[dict[str, Any], str | None]:
        """One API call with refresh-on-401 and retries: (the answer, its intuit_tid). `retry_unknown=False`
        raises `QBOUnavailable` at once when the request went out but no answer came back (the caller
        checks first)."""
        url = f"{self._base}/{path}"
        query = {"minorversion": MINOR_VERSION, **(params or {})}
        data: str | None = None
        headers = {"Accept": "application/json"}
        if json_body is not None:
            data, headers["Content-Type"] = dumps(json_body), "application/json"
        elif text_body is not None:
            data, headers["Content-Type"] = text_body, "application/text"
        refreshed = False
        server_errors = 0
        attempt = 0
        while True:
            token = await self._tokens.access_token(self.realm_id)
            headers["Authorization"] = f"Bearer {token.reveal()}"
            status, tid, text = 0, None, ""
            error: QBOError | None
            try:
                async with self._limiter.slot(batch=batch):
                    async with self._session.request(
                        method, url, params=query, data=data, headers=headers, timeout=self._timeout
                    ) as resp:
                        status, tid = resp.status, resp.headers.get("intuit_tid")
                        text = await resp.text()
                error = error_from_response(status, text, tid, secret=token.reveal())
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = QBOUnavailable(f"QuickBooks did not answer ({type(exc).__name__})")
            log.info("qbo %s %s status=%s intuit_tid=%s realm=%s%s", method, path, status or "-", tid, self.realm_id,
                     f": {error.message}" if error is not None else "")
            if error is None:
                return (loads(text) if text else {}), tid
            if self._on_error is not None:
                self._on_error(error)
            if status == 0 and not retry_unknown:
                raise error
            if isinstance(error, QBOWrongEnvironment):
                raise error
            if isinstance(error, QBOAuthError):
                if status == 401 and not refreshed:
                    refreshed = True
                    await self._tokens.force_refresh(self.realm_id, token)
                    continue
                if status == 401 or error.fault_code == "120":
                    # the operator sees Intuit's words and the intuit_tid, not just "HTTP 401"
                    await self._tokens.mark_reconnect_required(self.realm_id, error.message)
                    raise QBOReconnectRequired(self.realm_id, error.message) from error
                raise error
            retryable = isinstance(error, (QBOThrottled, QBOUnavailable))
            if isinstance(error, QBOServerError) and not retryable:
                server_errors += 1
                retryable = server_errors <= 1
            attempt += 1
            if not retryable or attempt >= self._max_attempts:
                raise error
            delay = self._backoff(attempt - 1)
            log.warning("qbo %s %s: %s; retrying in %.2fs", method, path, error.code, delay)
            await asyncio.sleep(delay)

    # -- entities ----------------------------------------------------------------------------------

    @staticmethod
    def _entity_of(entity: str, answer: dict[str, Any]) -> dict[str, Any]:
        for key, value in answer.items():
            if key.lower() == entity.lower() and isinstance(value, dict):
                return value
        raise QBOError(f"QuickBooks answer without the {entity}")

    async def create(
        self, entity: str, body: dict[str, Any], *, request_id: str, retry_unknown: bool = True
    ) -> dict[str, Any]:
        answer = await self._call(
            "POST", entity.lower(), params={"requestid": request_id}, json_body=body, retry_unknown=retry_unknown
        )
        return self._entity_of(entity, answer)

    async def update(
        self, entity: str, body: dict[str, Any], *, request_id: str, sparse: bool = True
    ) -> dict[str, Any]:
        if "Id" not in body or "SyncToken" not in body:
            raise ValueError("an update needs Id and SyncToken")
        payload = {**body, "sparse": sparse}
        answer = await self._call("POST", entity.lower(), params={"requestid": request_id}, json_body=payload)
        return self._entity_of(entity, answer)

    async def void(self, entity: str, entity_id: str, sync_token: str, *, request_id: str) -> dict[str, Any]:
        name = entity.lower()
        if name in VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void", "requestid": request_id}
            body: dict[str, Any] = {"Id": entity_id, "SyncToken": sync_token, "sparse": True}
        elif name in VOID_BY_OPERATION:
            params = {"operation": "void", "requestid": request_id}
            body = {"Id": entity_id, "SyncToken": sync_token}
        else:
            raise ValueError(f"{entity} cannot be voided")
        return self._entity_of(entity, await self._call("POST", name, params=params, json_body=body))

    async def delete(self, entity: str, entity_id: str, sync_token: str, *, request_id: str) -> None:
        await self._call(
            "POST", entity.lower(), params={"operation": "delete", "requestid": request_id},
            json_body={"Id": entity_id, "SyncToken": sync_token},
        )

    async def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        return self._entity_of(entity, await self._call("GET", f"{entity.lower()}/{entity_id}"))

    # -- queries -----------------------------------------------------------------------------------

    async def _query_page(self, sql: str) -> dict[str, Any]:
        answer = await self._call("POST", "query", text_body=sql)
        page = answer.get("QueryResponse", {})
        return page if isinstance(page, dict) else {}

    async def query(self, sql: str, *, page_size: int = MAX_QUERY_PAGE, limit: int | None = None) -> list[dict[str, Any]]:
        """All rows of a SELECT, fetched page by page (STARTPOSITION/MAXRESULTS are added here)."""
        if _PAGING.search(sql):
            raise ValueError("leave STARTPOSITION/MAXRESULTS to query()")
        if not 1 <= page_size <= MAX_QUERY_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_QUERY_PAGE}")
        rows: list[dict[str, Any]] = []
        start = 1
        while limit is None or len(rows) < limit:
            size = page_size if limit is None else min(page_size, limit - len(rows))
            page = await self._query_page(f"{sql} STARTPOSITION {start} MAXRESULTS {size}")
            found = next((v for v in page.values() if isinstance(v, list)), [])
            rows.extend(found)
            if len(found) < size:
                break
            start += len(found)
        return rows

    async def count(self, sql_from_where: str) -> int:
        """`count("FROM Invoice WHERE ...")` → the number of matching rows."""
        page = await self._query_page(f"SELECT COUNT(*) {sql_from_where}")
        return int(page.get("totalCount", 0))

    async def currency_settings(self) -> tuple[str, bool]:
        """(home currency, multicurrency enabled) from the company's Preferences."""
        prefs = (await self.query("SELECT * FROM Preferences", limit=1) or [{}])[0]
        currency = prefs.get("CurrencyPrefs", {})
        home = currency.get("HomeCurrency", {}).get("value", "USD")
        return str(home), bool(currency.get("MultiCurrencyEnabled", False))

    async def exchange_rate(self, source_currency: str, as_of: str) -> Decimal:
        """QuickBooks' own rate (home units per one `source_currency` unit) on `as_of` (YYYY-MM-DD): the
        rate a foreign-currency document is booked at, so sovterm agrees with the company's books."""
        answer = await self._call("GET", "exchangerate",
                                  params={"sourcecurrencycode": source_currency.upper(), "asofdate": as_of})
        rate = (answer.get("ExchangeRate") or {}).get("Rate")
        if rate is None:
            raise QBOError(f"QuickBooks has no {source_currency} exchange rate for {as_of}")
        return Decimal(str(rate))

    # -- batch -------------------------------------------------------------------------------------

    async def batch(
        self, items: Sequence[BatchItem], *, request_id: str | None = None, retry_unknown: bool = True
    ) -> list[BatchResult]:
        """Up to 30 operations in one call; each result carries its entity, rows or typed error.
        `retry_unknown=False`: raise `QBOUnavailable` when the answer was lost (the caller looks up)."""
        if not items:
            return []
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}")
        bids = [i.bid for i in items]
        if len(set(bids)) != len(bids):
            raise ValueError("batch bIds must be unique")
        params = {"requestid": request_id} if request_id else None
        answer, tid = await self._exchange(
            "POST", "batch", params=params, json_body={"BatchItemRequest": [i.to_json() for i in items]},
            batch=True, retry_unknown=retry_unknown,
        )
        results = {bid: BatchResult(bid, error=QBOError(f"batch item {bid} has no answer")) for bid in bids}
        for entry in answer.get("BatchItemResponse", []):
            bid = str(entry.get("bId"))
            if bid not in results:
                continue
            if "Fault" in entry:
                parsed = parse_fault_body(dumps({"Fault": entry["Fault"]}))
                fault_type, faults = parsed if parsed else ("", [])
                results[bid] = BatchResult(bid, error=fault_to_error(fault_type, faults, http_status=None, intuit_tid=tid))
            elif "QueryResponse" in entry:
                page = entry["QueryResponse"]
                rows = next((v for v in page.values() if isinstance(v, list)), [])
                results[bid] = BatchResult(bid, rows=rows)
            else:
                key = next((k for k, v in entry.items() if k != "bId" and isinstance(v, dict)), None)
                results[bid] = BatchResult(bid, entity=key, data=entry.get(key) if key else None)
        return [results[b] for b in bids]
