"""Connecting a QuickBooks company: the OAuth 2.0 authorisation-code flow.

`start()` stores a random single-use `state` server-side (10 minutes) and returns Intuit's authorize
URL. `complete()` takes what came back, either the callback's query string or the whole redirected
URL pasted by an operator whose box has no public HTTPS name; it consumes the state (wrong, missing,
reused or expired → `OAuthStateError`, nothing stored), exchanges the code and saves the tokens
encrypted. The environment is the one of the key set in the settings: a realm id does not tell.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response

from sovterm.config import QBOSettings
from sovterm.qbo.endpoint import InvalidGrant, TokenEndpoint
from sovterm.qbo.errors import OAuthError, OAuthStateError, QBOError
from sovterm.qbo.models import Connection
from sovterm.qbo.tokens import TokenSet, get_connection, store_new_connection, token_secret_name
from sovterm.store.db import Database
from sovterm.store.secrets import SecretStore

log = logging.getLogger(__name__)

SCOPE = "com.intuit.quickbooks.accounting"
STATE_TTL_S = 600


class QBOOAuth:
    def __init__(
        self,
        settings: QBOSettings,
        redirect_uri: str,
        db: Database,
        secrets: SecretStore,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._db = db
        self._secrets = secrets
        self._endpoint = TokenEndpoint(settings, session)
        self._clock = clock

    async def start(self) -> tuple[str, str]:
        """(authorization URL, state); the state is stored and accepted once, for 10 minutes."""
        now = int(self._clock())
        state = generate_token(40)
        client = OAuth2Client(None, client_id=self._endpoint.client_id, scope=SCOPE,
                              redirect_uri=self.redirect_uri)
        url, _ = client.create_authorization_url(self.settings.authorize_url, state=state)
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM qbo_oauth_states WHERE expires_at <= ?", (now,))
            await tx.execute(
                "INSERT INTO qbo_oauth_states(state, environment, redirect_uri, created_at, expires_at)"
                " VALUES(?, ?, ?, ?, ?)",
                (state, self.settings.environment, self.redirect_uri, now, now + STATE_TTL_S),
            )
        return url, state

    async def complete(self, url_or_query: str) -> Connection:
        """Finish the flow from the redirected URL or the callback's query string."""
        text = url_or_query.strip()
        query = urlsplit(text).query if "://" in text else text.lstrip("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if params.get("error"):
            # A denial also consumes the state, so the same link cannot be replayed later.
            await self._consume_state(params.get("state"), required=False)
            described = params.get("error_description") or params["error"]
            raise OAuthError(
                f"QuickBooks did not authorise sovterm: {described}",
                fix="run `sovterm setup qbo` again and choose Connect on Intuit's page",
            )
        stored = await self._consume_state(params.get("state"), required=True)
        assert stored is not None
        environment, redirect_uri = stored
        realm_id = params.get("realmId")
        if not realm_id:
            raise OAuthError("the callback carries no realmId (company id)", fix="start again")
        try:
            parsed = parse_authorization_code_response(
                f"{redirect_uri}?{urlencode(params)}", state=params["state"]
            )
        except OAuth2Error as exc:
            raise OAuthError(f"invalid OAuth callback: {exc.description or exc.error}",
                             fix="run `sovterm setup qbo` again") from None
        now = self._clock()
        try:
            answer = await self._endpoint.exchange_code(parsed["code"], redirect_uri)
        except InvalidGrant as exc:
            raise OAuthError(
                f"{exc.message} (the code was already used, expired, or the redirect URI differs)",
                fix=f"check that {redirect_uri} is registered for this key set, then start again",
            ) from None
        tokens = TokenSet.from_response(answer, now)
        connection = await store_new_connection(
            self._db, self._secrets, realm_id, environment, tokens, int(now)  # type: ignore[arg-type]
        )
        log.info("qbo company connected realm=%s environment=%s", realm_id, environment)
        return connection

    async def _consume_state(self, state: str | None, *, required: bool) -> tuple[str, str] | None:
        if not state:
            if required:
                raise OAuthStateError(
                    "the OAuth callback has no state: it did not come from a flow sovterm started",
                    fix="run `sovterm setup qbo` and use the link it prints",
                )
            return None
        async with self._db.transaction() as tx:
            cur = await tx.execute(
                "DELETE FROM qbo_oauth_states WHERE state = ? RETURNING environment, redirect_uri, expires_at",
                (state,),
            )
            row = await cur.fetchone()
        if row is None:
            if not required:
                return None
            raise OAuthStateError(
                "this QuickBooks authorisation link is unknown or was already used",
                fix="run `sovterm setup qbo` again and use the new link once",
            )
        if row[2] <= self._clock():
            raise OAuthStateError(
                "this QuickBooks authorisation link has expired (links last 10 minutes)",
                fix="run `sovterm setup qbo` again and finish within 10 minutes",
            )
        return row[0], row[1]

    async def disconnect(self, realm_id: str) -> bool:
        """Revoke at Intuit and forget the tokens; False if Intuit could not be told (tokens forgotten anyway)."""
        name = token_secret_name(realm_id)
        secret = await self._secrets.get(name)
        revoked = False
        if secret is not None:
            try:
                await self._endpoint.revoke(TokenSet.from_secret(secret).refresh_token)
                revoked = True
            except (OAuthError, QBOError) as exc:
                log.warning("qbo revoke failed realm=%s: %s", realm_id, exc.message)
        async with self._db.transaction() as tx:
            await self._secrets.delete(name, conn=tx)
            await tx.execute(
                "UPDATE qbo_connections SET status = 'disconnected', auto_sync = 0, status_reason = ?,"
                " updated_at = strftime('%s','now') WHERE realm_id = ?",
                ("disconnected by the operator", realm_id),
            )
        log.info("qbo company disconnected realm=%s revoked=%s", realm_id, revoked)
        return revoked

    async def connection(self, realm_id: str) -> Connection | None:
        return await get_connection(self._db, realm_id)
