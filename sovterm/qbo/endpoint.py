"""Intuit's OAuth token and revoke endpoints, spoken with authlib's building blocks over aiohttp.

authlib has no aiohttp integration, so we use its transport-agnostic parts: `prepare_token_request`
for the form body and `ClientAuth` (client_secret_basic) for the header; aiohttp does the I/O.
Tokens and auth headers are never logged; `intuit_tid` always is.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from sovterm.config import QBOSettings
from sovterm.errors import ConfigError
from sovterm.qbo.errors import OAuthError, QBOUnavailable
from sovterm.qbo.models import loads
from sovterm.store.secrets import Secret

log = logging.getLogger(__name__)

# Opt-in header: the response then says when the refresh token reaches its 5-year end of life.
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"


class InvalidGrant(OAuthError):
    """The code or refresh token is expired, revoked, already used or from another key set."""

    code = "qbo_invalid_grant"


class TokenEndpoint:
    def __init__(self, settings: QBOSettings, session: aiohttp.ClientSession) -> None:
        secret = settings.resolved_client_secret()
        if not settings.client_id or not secret:
            raise ConfigError(
                "qbo.client_id and qbo.client_secret are not set",
                fix="copy the app's keys from developer.intuit.com into the [qbo] section",
            )
        self.settings = settings
        self._session = session
        self._client_id = settings.client_id
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)

    @property
    def client_id(self) -> str:
        return self._client_id

    async def _post_form(self, body: str) -> dict[str, Any]:
        auth = ClientAuth(self._client_id, self._secret.reveal(), "client_secret_basic")
        url, headers, body = auth.prepare(
            "POST", self.settings.token_url,
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
             HARD_EXPIRY_HEADER: "true"},
            body,
        )
        try:
            async with self._session.post(
                url, data=dict(parse_qsl(body)), headers=headers, timeout=self._timeout
            ) as resp:
                text = await resp.text()
                tid = resp.headers.get("intuit_tid")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise QBOUnavailable(f"Intuit token endpoint unreachable ({type(exc).__name__})") from None
        log.info("qbo token call status=%s intuit_tid=%s", status, tid)
        try:
            data = loads(text) if text else {}
        except ValueError:
            data = {}
        if status == 200 and isinstance(data, dict) and "access_token" in data:
            return data
        error = str(data.get("error", "")) if isinstance(data, dict) else ""
        described = str(data.get("error_description", "")) if isinstance(data, dict) else ""
        where = f" (intuit_tid {tid})" if tid else ""
        if error == "invalid_grant":
            raise InvalidGrant(f"Intuit refused the grant: {described or error}{where}")
        if status >= 500 or status == 429:
            raise QBOUnavailable(f"Intuit token endpoint answered HTTP {status}{where}")
        raise OAuthError(
            f"Intuit token endpoint answered HTTP {status} {error} {described}".rstrip() + where,
            fix="check qbo.client_id/client_secret belong to the key set of qbo.environment",
        )

    async def exchange_code(self, code: str, redirect_uri: str) -> dict[str, Any]:
        return await self._post_form(
            prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri)
        )

    async def refresh(self, refresh_token: Secret) -> dict[str, Any]:
        return await self._post_form(
            prepare_token_request("refresh_token", refresh_token=refresh_token.reveal())
        )

    async def revoke(self, token: Secret) -> None:
        auth = ClientAuth(self._client_id, self._secret.reveal(), "client_secret_basic")
        _, headers, _ = auth.prepare(
            "POST", self.settings.revoke_url,
            {"Accept": "application/json", "Content-Type": "application/json"}, "",
        )
        try:
            async with self._session.post(
                self.settings.revoke_url, json={"token": token.reveal()}, headers=headers,
                timeout=self._timeout,
            ) as resp:
                await resp.read()
                tid = resp.headers.get("intuit_tid")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise QBOUnavailable(f"Intuit revoke endpoint unreachable ({type(exc).__name__})") from None
        log.info("qbo revoke status=%s intuit_tid=%s", status, tid)
        if status != 200:
            raise OAuthError(f"Intuit revoke answered HTTP {status} (intuit_tid {tid})")
