"""The QuickBooks part as the daemon runs it: one `QBOService` on `services.qbo`.

It owns the OAuth flow, the token manager and one request limiter per company, publishes the
connector state (`/readyz`, `sovterm status`, the TUI) and hands the sync part a ready client.

One company at a time: the most recently connected one is *the* company. Connecting another
company revokes and forgets the previous one, so sync can never post into two sets of books.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import aiohttp

from sovterm.config import QBOSettings
from sovterm.errors import ConfigError, UserFacingError
from sovterm.events import EventBus
from sovterm.health import Connectors
from sovterm.qbo.client import QBOClient, quote_literal
from sovterm.qbo.endpoint import TokenEndpoint
from sovterm.qbo.errors import (
    QBOError,
    QBOReconnectRequired,
    QBOServerError,
    QBOTokenStoreError,
)
from sovterm.qbo.limiter import LimiterRegistry, RealmLimiter
from sovterm.qbo.mapping import AccountMapper, MappingError, StoreMapping, load_mapping
from sovterm.qbo.mapping_options import OVERRIDES
from sovterm.qbo.models import Connection, ConnectionState
from sovterm.qbo.oauth import STATE_TTL_S, QBOOAuth
from sovterm.qbo.postings import CurrencyContext, Poster
from sovterm.qbo.tokens import TokenManager, list_connections, set_auto_sync
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.secrets import SecretStore

log = logging.getLogger(__name__)

TOKENS_LOOP_S = 240
# Refresh when less than this is left: longer than the loop interval, so a tick always lands inside it.
REFRESH_AHEAD_S = 600
STATUS_CALL_TIMEOUT_S = 10.0
SANDBOX_NO_AUTO_SYNC = "sandbox connections do not sync automatically until the operator says so"
SETUP_QBO_KEY = "setup:qbo"
SETUP_ACCOUNTS_KEY = "setup:accounts"

INTUIT_APP_GUIDE = """\
sovterm connects with your own Intuit app (your keys never leave this box):
  1. Sign in at https://developer.intuit.com and open Dashboard → Create an app → QuickBooks Online.
  2. Choose the scope com.intuit.quickbooks.accounting (Accounting) only.
  3. Under Keys & credentials pick Development (sandbox) or Production; production keys need the
     app's compliance questionnaire answered first.
  4. Add this exact redirect URI for that key set: {redirect_uri}
     (production needs HTTPS on a public name; plain http://localhost works for sandbox only.
     No public name? Finish with `sovterm setup qbo --redirected-url URL` by pasting the address
     your browser ends on.)
  5. Put the Client ID in [qbo] client_id and the Client Secret in client_secret_file (a file only
     the daemon can read) or client_secret, set [qbo] environment = "{environment}" to match the
     key set, and restart the daemon."""

REQUIRED_FIELDS = ("deposit_account_id", "income_account_id", "item_id", "fee_account_id", "fee_collected_account_id")


class QBONotConfigured(UserFacingError):
    code = "qbo_not_configured"


class QBONotConnected(UserFacingError):
    code = "qbo_not_connected"


def configuration_problem(settings: QBOSettings) -> str | None:
    """Why the keys are unusable (missing id, missing or empty secret, unreadable file), or None."""
    if not settings.client_id:
        return "qbo.client_id is not set"
    try:
        secret = settings.resolved_client_secret()
    except ConfigError as exc:
        return exc.message
    if not secret:
        where = f"the file {settings.client_secret_file} is empty" if settings.client_secret_file else "it is not set"
        return f"qbo.client_secret: {where}"
    return None


class QBOService:
    def __init__(
        self,
        settings: QBOSettings,
        redirect_uri: str,
        db: Database,
        secrets: SecretStore,
        http: aiohttp.ClientSession,
        *,
        bus: EventBus,
        connectors: Connectors,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[QBOError], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_error = on_error
        self.redirect_uri = redirect_uri
        self._db = db
        self._http = http
        self._bus = bus
        self._connectors = connectors
        self._clock = clock
        self.limiters = LimiterRegistry(lambda: RealmLimiter(
            requests_per_min=settings.requests_per_min, batches_per_min=settings.batches_per_min,
            concurrency=settings.concurrency,
        ))
        self.problem = configuration_problem(settings)
        self.oauth: QBOOAuth | None = None
        self.tokens: TokenManager | None = None
        if self.problem is None:
            self.oauth = QBOOAuth(settings, redirect_uri, db, secrets, http, clock=clock)
            self.tokens = TokenManager(db, secrets, TokenEndpoint(settings, http), leeway_s=REFRESH_AHEAD_S,
                                       clock=clock)
        self._clients: dict[str, QBOClient] = {}
        self._currency: dict[str, CurrencyContext] = {}
        self._company_names: dict[str, str | None] = {}

    # -- configuration and connection ------------------------------------------------------------

    @property
    def db(self) -> Database:
        return self._db

    @property
    def sandbox(self) -> bool:
        return self.settings.environment == "sandbox"

    @property
    def guide(self) -> str:
        return INTUIT_APP_GUIDE.format(redirect_uri=self.redirect_uri, environment=self.settings.environment)

    def _require(self) -> tuple[QBOOAuth, TokenManager]:
        if self.oauth is None or self.tokens is None:
            raise QBONotConfigured(
                f"QuickBooks is not configured: {self.problem}",
                fix="create your own Intuit app and put its keys in the [qbo] section "
                    "(`sovterm setup qbo` prints the steps), then restart the daemon",
            )
        return self.oauth, self.tokens

    async def active_connection(self) -> Connection | None:
        """The company sovterm posts into: the latest one not disconnected (one company at a time)."""
        live = [c for c in await list_connections(self._db) if c.status != "disconnected"]
        return max(live, key=lambda c: c.connected_at) if live else None

    async def _realm(self, realm: str | None) -> str:
        if realm is not None:
            return realm
        connection = await self.active_connection()
        if connection is None:
            raise QBONotConnected("no QuickBooks company is connected", fix="run `sovterm setup qbo`")
        return connection.realm_id

    async def start(self) -> dict[str, Any]:
        """Begin connecting: Intuit's authorisation URL (its state is good for 10 minutes, once)."""
        oauth, _ = self._require()
        url, _state = await oauth.start()
        started_at = self._clock()
        await kv.put(self._db, SETUP_QBO_KEY, {"step": "authorising", "environment": self.settings.environment,
                                               "at": int(started_at)})
        return {"authorization_url": url, "expires_in": STATE_TTL_S, "redirect_uri": self.redirect_uri,
                "environment": self.settings.environment, "sandbox": self.sandbox, "started_at": started_at}

    async def complete(self, url_or_query: str) -> Connection:
        """Finish connecting from the callback's query string or a pasted redirected URL."""
        oauth, _ = self._require()
        connection = await oauth.complete(url_or_query)
        for other in await list_connections(self._db):
            if other.realm_id != connection.realm_id and other.status != "disconnected":
                log.warning("qbo company %s replaced by %s (one company at a time)", other.realm_id,
                            connection.realm_id)
                await self._forget(other.realm_id, revoke=True)
        self._drop_caches(connection.realm_id)
        await kv.put(self._db, SETUP_QBO_KEY, {
            "step": "connected", "realm_id": connection.realm_id, "environment": connection.environment,
            "at": connection.connected_at,
        })
        await self.refresh_state()
        self._bus.publish("qbo.connected", realm_id=connection.realm_id, environment=connection.environment,
                          sandbox=connection.sandbox, connected_at=connection.connected_at)
        return connection

    async def disconnect(self) -> dict[str, Any]:
        """Revoke at Intuit and forget the tokens of the connected company."""
        self._require()
        connection = await self.active_connection()
        if connection is None:
            raise QBONotConnected("no QuickBooks company is connected", fix="nothing to disconnect")
        realm = connection.realm_id
        revoked = await self._forget(realm, revoke=True)
        await kv.put(self._db, SETUP_QBO_KEY, {"step": "disconnected", "realm_id": realm, "at": int(self._clock())})
        await self.refresh_state()
        self._bus.publish("qbo.disconnected", realm_id=realm, revoked=revoked)
        return {"realm_id": realm, "revoked": revoked, "sandbox": connection.sandbox}

    async def _forget(self, realm: str, *, revoke: bool) -> bool:
        oauth, tokens = self._require()
        revoked = await oauth.disconnect(realm) if revoke else False
        tokens.forget(realm)
        self._drop_caches(realm)
        return revoked

    def _drop_caches(self, realm: str) -> None:
        self._clients.pop(realm, None)
        self._currency.pop(realm, None)
        self._company_names.pop(realm, None)

    async def set_auto_sync(self, enabled: bool) -> Connection:
        realm = await self._realm(None)
        await set_auto_sync(self._db, realm, enabled)
        await self.refresh_state()
        connection = await self.active_connection()
        assert connection is not None
        return connection

    # -- what the sync part uses -----------------------------------------------------------------

    async def client(self, realm: str | None = None) -> QBOClient:
        """An Accounting API client for the connected company (or `realm`), sharing its limiter."""
        _, tokens = self._require()
        realm = await self._realm(realm)
        if realm not in self._clients:
            self._clients[realm] = QBOClient(
                self.settings.resolved_api_base(), realm, tokens, self._http,
                limiter=self.limiters.for_realm(realm), timeout_s=self.settings.request_timeout_s,
                on_error=self._on_error,
            )
        return self._clients[realm]

    async def poster(self, realm: str | None = None) -> Poster:
        return Poster(await self.client(realm))

    async def mapper(self, realm: str | None = None) -> AccountMapper:
        return AccountMapper(await self.client(realm), self._db)

    async def find_active(self, entity: str, value: str, role: str) -> dict[str, Any]:
        """An active QuickBooks list entry (Item, Account, Class, TaxCode...) by id or name, for a mapping the
        operator types: inactive ones are found, then refused with the reason; a missing one with the fix."""
        client = await self.client()
        for prop in ("Id", "Name") if value.isdigit() else ("Name",):
            rows = await client.query(f"SELECT * FROM {entity} WHERE {prop} = {quote_literal(value)} "
                                      "AND Active IN (true, false)", limit=1)
            if rows:
                return await (await self.mapper()).get_active(entity, str(rows[0]["Id"]), role)
        raise MappingError(f"{role}: no {entity} named or numbered '{value}' in QuickBooks",
                           fix="see `sovterm setup accounts --list` for the names and ids")

    async def currency_context(self, realm: str | None = None, *, refresh: bool = False) -> CurrencyContext:
        """Home currency and multicurrency flag, read once per company (they practically never change)."""
        realm = await self._realm(realm)
        if refresh or realm not in self._currency:
            home, multi = await (await self.client(realm)).currency_settings()
            self._currency[realm] = CurrencyContext(home, multi)
        return self._currency[realm]

    async def mapping_for(self, store_id: str) -> StoreMapping | None:
        """The store's saved mapping, if it belongs to the connected company."""
        mapping = await load_mapping(self._db, store_id)
        connection = await self.active_connection()
        if mapping is None or connection is None or mapping.realm_id != connection.realm_id:
            return None
        return mapping

    async def can_sync(self) -> tuple[bool, str]:
        """(True, "") when sync may post now, else (False, the reason to show)."""
        if self.problem is not None:
            return False, f"QuickBooks is not configured: {self.problem}"
        connection = await self.active_connection()
        if connection is None:
            return False, "no QuickBooks company is connected"
        state = await self._require()[1].state(connection.realm_id)
        if state.status == "reconnect_required":
            return False, f"QuickBooks must be reconnected: {state.reason}"
        if not connection.auto_sync:
            if connection.sandbox:
                return False, SANDBOX_NO_AUTO_SYNC + " (`sovterm qbo auto-sync on`)"
            return False, "automatic sync is switched off (`sovterm qbo auto-sync on`)"
        return True, ""

    # -- state -----------------------------------------------------------------------------------

    async def connection_state(self) -> tuple[Connection | None, ConnectionState | None]:
        if self.tokens is None:
            return None, None
        connection = await self.active_connection()
        if connection is None:
            return None, None
        return connection, await self.tokens.state(connection.realm_id)

    async def refresh_state(self) -> str:
        """Publish the connector state; returns it."""
        if self.problem is not None:
            self._connectors.set("qbo", "not_configured", f"{self.problem}; see `sovterm setup qbo`")
            return "not_configured"
        connection, state = await self.connection_state()
        if connection is None or state is None or state.status == "disconnected":
            self._connectors.set("qbo", "not_connected", "no company connected: run `sovterm setup qbo`")
            return "not_connected"
        label = f"company {connection.realm_id}" + (" (sandbox)" if connection.sandbox else "")
        if state.status == "reconnect_required":
            self._connectors.set("qbo", "reconnect_required",
                                 f"{label}: {state.reason}; run `sovterm setup qbo`", ready=False)
        elif state.status == "refresh_expiring":
            detail = f"{label}: authorisation ends in {state.days_left} days; run `sovterm setup qbo` to renew"
            self._connectors.set("qbo", "refresh_expiring", detail)
        else:
            sync = "" if connection.auto_sync else ", auto-sync off"
            self._connectors.set("qbo", "connected", f"{label}{sync}")
        return state.status

    async def tokens_tick(self) -> dict[str, Any]:
        """The `qbo.tokens` loop: refresh ahead of expiry (keeps the rolling refresh token alive)."""
        summary: dict[str, Any] = {}
        connection = await self.active_connection() if self.tokens is not None else None
        if self.tokens is not None and connection is not None and connection.status == "connected":
            try:
                await self.tokens.access_token(connection.realm_id)
            except QBOReconnectRequired as exc:
                summary["refresh"] = exc.reason
            except (QBOError, QBOTokenStoreError) as exc:
                log.warning("qbo token refresh failed: %s", exc.message)
                summary["refresh"] = f"failed: {exc.message}"
        summary["state"] = await self.refresh_state()
        return summary

    async def company_name(self, realm: str) -> str | None:
        """CompanyInfo.CompanyName, read once per company (reads are metered); None when QuickBooks
        will not say. Bounded in time: a status display must not wait out the client's backoff."""
        if realm not in self._company_names:
            client = await self.client(realm)
            try:
                async with asyncio.timeout(STATUS_CALL_TIMEOUT_S):
                    info = await client.read("CompanyInfo", realm)
                self._company_names[realm] = str(info.get("CompanyName") or "") or None
            except (TimeoutError, QBOServerError):
                return None  # transient: ask again next time
            except QBOReconnectRequired:
                raise
            except QBOError as exc:
                log.info("qbo CompanyInfo unavailable: %s", exc.code)
                self._company_names[realm] = None
        return self._company_names[realm]

    async def status(self, *, check: bool = False) -> dict[str, Any]:
        """Everything `sovterm qbo status` shows; `check` makes one live call to QuickBooks."""
        out: dict[str, Any] = {
            "configured": self.problem is None, "problem": self.problem,
            "environment": self.settings.environment, "sandbox": self.sandbox,
            "redirect_uri": self.redirect_uri, "connected": False,
        }
        connection = await self.active_connection() if self.tokens is not None else None
        if connection is not None:
            check_error = None
            if check:
                try:
                    async with asyncio.timeout(STATUS_CALL_TIMEOUT_S):
                        await self.currency_context(connection.realm_id, refresh=True)
                except QBOReconnectRequired:
                    pass  # recorded by the token manager; shown through the state below
                except TimeoutError:
                    check_error = f"QuickBooks did not answer within {STATUS_CALL_TIMEOUT_S:.0f} s"
                except (QBOError, QBOTokenStoreError) as exc:
                    check_error = exc.message
            company = None
            if connection.status == "connected":
                try:
                    company = await self.company_name(connection.realm_id)
                except QBOReconnectRequired:
                    company = None
            _, state = await self.connection_state()
            assert state is not None
            out.update({
                "connected": state.status != "disconnected", "realm_id": connection.realm_id,
                "company_name": company, "environment": connection.environment,
                "sandbox": connection.sandbox, "auto_sync": connection.auto_sync,
                "token_state": state.status, "days_left": state.days_left, "reason": state.reason,
                "connected_at": connection.connected_at,
            })
            if check:
                out["check"] = check_error or "ok"
        out["state"] = await self.refresh_state()
        out["can_sync"], out["sync_blocked"] = await self.can_sync()
        return out

    # -- accounts wizard -------------------------------------------------------------------------

    async def list_entities(self, limit: int = 200) -> dict[str, Any]:
        """The company's lists, summarised for choosing a mapping."""
        mapper = await self.mapper()
        out: dict[str, Any] = {}
        for key, rows, fields in (
            ("accounts", await mapper.list_accounts(), ("Name", "AccountType", "AccountSubType")),
            ("items", await mapper.list_items(), ("Name", "Type")),
            ("customers", await mapper.list_customers(), ("DisplayName",)),
            ("payment_methods", await mapper.list_payment_methods(), ("Name", "Type")),
            ("classes", await mapper.list_classes(), ("Name",)),
            ("tax_codes", await mapper.list_tax_codes(), ("Name",)),
            ("locations", await mapper.list_departments(), ("Name",)),
        ):
            out[key] = {
                "count": len(rows),
                "rows": [{"id": str(r.get("Id")), **{f: r.get(f) for f in fields}} for r in rows[:limit]],
            }
        return out

    async def propose(self, store_id: str) -> dict[str, Any]:
        mapper = await self.mapper()
        proposals = await mapper.propose_defaults()
        current = await self.mapping_for(store_id)
        return {
            "store_id": store_id, "realm_id": mapper.realm_id, "sandbox": await self.connected_sandbox(),
            "defaults": [{**asdict(p), "action": p.action} for p in proposals],
            "current": asdict(current) if current else None,
        }

    async def connected_sandbox(self) -> bool:
        connection = await self.active_connection()
        return bool(connection and connection.sandbox)

    async def _resolve(self, client: QBOClient, entity: str, name_field: str, value: str) -> tuple[str, str]:
        """(id, display name) of the entity whose Id or name is `value` (inactive ones too: the mapping's
        validation then says it is inactive, rather than that it does not exist)."""
        for prop in ("Id", name_field) if value.isdigit() else (name_field,):
            rows = await client.query(f"SELECT * FROM {entity} WHERE {prop} = {quote_literal(value)}"
                                      + (" AND Active IN (true, false)" if entity != "Account" else ""), limit=1)
            if rows:
                return str(rows[0]["Id"]), str(rows[0].get(name_field, ""))
        raise MappingError(f"no {entity} named or numbered '{value}' in QuickBooks",
                           fix="see `sovterm setup accounts --list` for the names and ids")

    async def apply_mapping(self, store_id: str, *, auto: bool, overrides: dict[str, str]) -> StoreMapping:
        """Build, validate and save a store's mapping. Only `auto` creates the missing defaults."""
        unknown = sorted(set(overrides) - set(OVERRIDES))
        if unknown:
            raise MappingError(f"unknown mapping option(s): {', '.join(unknown)}",
                               fix=f"use: {', '.join(OVERRIDES)}")
        mapper = await self.mapper()
        client = await self.client()
        ids: dict[str, str]
        if auto:
            ids = await mapper.ensure_defaults(consent=True)
        else:
            ids = {p.key: p.existing_id for p in await mapper.propose_defaults() if p.existing_id}
            current = await self.mapping_for(store_id)
            if current is not None:  # a later run changes what it names, not the rest of this store's mapping
                kept = asdict(current)
                ids.update({f: kept[f] for f, _, _ in OVERRIDES.values() if kept.get(f)})
        for option, value in overrides.items():
            field, entity, name_field = OVERRIDES[option]
            ids[field] = (await self._resolve(client, entity, name_field, value))[0]
        missing = [f for f in REQUIRED_FIELDS if f not in ids]
        if missing:
            options = [o for o, spec in OVERRIDES.items() if spec[0] in missing]
            raise MappingError(
                "nothing was created; the mapping still lacks: " + ", ".join(options),
                fix="pass " + " ".join(f"--{o.replace('_', '-')} NAME|ID" for o in options)
                    + ", or --auto to create sovterm's default accounts",
            )
        mapping = await mapper.save(StoreMapping(store_id=store_id, realm_id=mapper.realm_id, **ids))
        progress = await kv.get(self._db, SETUP_ACCOUNTS_KEY) or {}
        progress[store_id] = {"realm_id": mapping.realm_id, "auto": auto, "at": int(self._clock())}
        await kv.put(self._db, SETUP_ACCOUNTS_KEY, progress)
        return mapping
