"""Access tokens for each connected company: refreshed ahead of expiry, one refresh at a time.

Intuit rotates refresh tokens: once a refresh returns a new refresh token the previous one is dead,
and two refreshes with the same token make the second fail with `invalid_grant` (and may invalidate
the token). So, per company:

* one `asyncio.Lock` serialises refreshes; a caller that waited re-reads the tokens and usually finds
  them fresh, so concurrent callers cause a single call to the token endpoint;
* the new token set is saved (secret + expiry columns, one transaction) **before** the new access token
  is handed out;
* recovery when that save fails: the new set is kept in memory as *unsaved* (retrying the old refresh
  token is no option: Intuit has already retired it). The save is retried a few times at once; if it
  still fails the caller gets `QBOTokenStoreError` and the next call saves the kept set first, without
  calling Intuit again. Only a crash inside that window loses the tokens; `refresh_started_at`
  is set before each refresh and cleared by the save, so a later `invalid_grant` is then reported as
  "tokens lost during a refresh" instead of a mystery;
* `invalid_grant` or an authentication fault marks the company `reconnect_required`: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sovterm.qbo.endpoint import InvalidGrant, TokenEndpoint
from sovterm.qbo.errors import QBOReconnectRequired, QBOTokenStoreError
from sovterm.qbo.models import Connection, ConnectionState, Environment
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretStore

log = logging.getLogger(__name__)

DEFAULT_LEEWAY_S = 300
REFRESH_WARN_DAYS = 30
DAY_S = 86_400


def token_secret_name(realm_id: str) -> str:
    return f"qbo:tokens:{realm_id}"


@dataclass(frozen=True)
class TokenSet:
    access_token: Secret
    refresh_token: Secret
    access_expires_at: int
    refresh_expires_at: int
    refresh_hard_expires_at: int | None = None

    @classmethod
    def from_response(cls, data: dict[str, Any], now: float, previous: TokenSet | None = None) -> TokenSet:
        """Build from a token-endpoint answer; keep the old refresh token if none is returned."""
        refresh = data.get("refresh_token")
        if not refresh and previous is None:
            raise ValueError("token response without a refresh token")
        refresh_secret = Secret(refresh) if refresh else previous.refresh_token  # type: ignore[union-attr]
        if "x_refresh_token_expires_in" in data:
            refresh_end = int(now + int(data["x_refresh_token_expires_in"]))
        elif previous is not None and not refresh:
            refresh_end = previous.refresh_expires_at
        else:
            refresh_end = int(now + 100 * DAY_S)
        hard = data.get("x_refresh_token_hard_expires_in")
        return cls(
            access_token=Secret(str(data["access_token"])),
            refresh_token=refresh_secret,
            access_expires_at=int(now + int(data.get("expires_in", 3600))),
            refresh_expires_at=refresh_end,
            refresh_hard_expires_at=int(now + int(hard)) if hard is not None else (
                previous.refresh_hard_expires_at if previous else None
            ),
        )

    def to_secret(self) -> Secret:
        return Secret(json.dumps({
            "access_token": self.access_token.reveal(), "refresh_token": self.refresh_token.reveal(),
            "access_expires_at": self.access_expires_at, "refresh_expires_at": self.refresh_expires_at,
            "refresh_hard_expires_at": self.refresh_hard_expires_at,
        }))

    @classmethod
    def from_secret(cls, secret: Secret) -> TokenSet:
        raw = json.loads(secret.reveal())
        return cls(
            Secret(raw["access_token"]), Secret(raw["refresh_token"]), int(raw["access_expires_at"]),
            int(raw["refresh_expires_at"]), raw.get("refresh_hard_expires_at"),
        )

    @property
    def refresh_end_of_life(self) -> int:
        ends = [self.refresh_expires_at] + ([self.refresh_hard_expires_at] if self.refresh_hard_expires_at else [])
        return min(ends)


_CONNECTION_COLUMNS = (
    "realm_id, environment, sandbox, auto_sync, status, access_expires_at, refresh_expires_at, "
    "refresh_hard_expires_at, connected_at"
)


def _connection(row: Any) -> Connection:
    return Connection(
        realm_id=row[0], environment=row[1], sandbox=bool(row[2]), auto_sync=bool(row[3]), status=row[4],
        access_expires_at=row[5], refresh_expires_at=row[6], refresh_hard_expires_at=row[7],
        connected_at=row[8],
    )


async def get_connection(db: Database, realm_id: str) -> Connection | None:
    row = await db.fetchone(f"SELECT {_CONNECTION_COLUMNS} FROM qbo_connections WHERE realm_id = ?", (realm_id,))
    return None if row is None else _connection(row)


async def list_connections(db: Database) -> list[Connection]:
    rows = await db.fetchall(f"SELECT {_CONNECTION_COLUMNS} FROM qbo_connections ORDER BY connected_at")
    return [_connection(r) for r in rows]


async def set_auto_sync(db: Database, realm_id: str, enabled: bool) -> None:
    """The operator's switch: sandbox companies start with auto-sync off."""
    await db.write(
        "UPDATE qbo_connections SET auto_sync = ?, updated_at = strftime('%s','now') WHERE realm_id = ?",
        (int(enabled), realm_id),
    )


async def store_new_connection(
    db: Database, secrets: SecretStore, realm_id: str, environment: Environment, tokens: TokenSet, now: int
) -> Connection:
    """Save a freshly authorised company and its tokens in one transaction."""
    sandbox = environment == "sandbox"
    async with db.transaction() as tx:
        await secrets.put(token_secret_name(realm_id), tokens.to_secret(), conn=tx)
        await tx.execute(
            "INSERT INTO qbo_connections(realm_id, environment, sandbox, auto_sync, status, status_reason,"
            " access_expires_at, refresh_expires_at, refresh_hard_expires_at, refresh_started_at,"
            " connected_at, updated_at) VALUES(?, ?, ?, ?, 'connected', NULL, ?, ?, ?, NULL, ?, ?)"
            " ON CONFLICT(realm_id) DO UPDATE SET environment=excluded.environment,"
            " sandbox=excluded.sandbox, auto_sync=CASE WHEN excluded.sandbox=1 THEN 0 ELSE"
            " qbo_connections.auto_sync END, status='connected', status_reason=NULL,"
            " access_expires_at=excluded.access_expires_at, refresh_expires_at=excluded.refresh_expires_at,"
            " refresh_hard_expires_at=excluded.refresh_hard_expires_at, refresh_started_at=NULL,"
            " connected_at=excluded.connected_at, updated_at=excluded.updated_at",
            (realm_id, environment, int(sandbox), 0 if sandbox else 1, tokens.access_expires_at,
             tokens.refresh_expires_at, tokens.refresh_hard_expires_at, now, now),
        )
    conn = await get_connection(db, realm_id)
    assert conn is not None
    return conn


class TokenManager:
    def __init__(
        self,
        db: Database,
        secrets: SecretStore,
        endpoint: TokenEndpoint,
        *,
        leeway_s: int = DEFAULT_LEEWAY_S,
        clock: Callable[[], float] = time.time,
        save_attempts: int = 3,
        save_retry_s: float = 0.05,
    ) -> None:
        self._db = db
        self._secrets = secrets
        self._endpoint = endpoint
        self._leeway = leeway_s
        self._clock = clock
        self._save_attempts = save_attempts
        self._save_retry_s = save_retry_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._unsaved: dict[str, TokenSet] = {}

    def _lock(self, realm_id: str) -> asyncio.Lock:
        return self._locks.setdefault(realm_id, asyncio.Lock())

    async def access_token(self, realm_id: str) -> Secret:
        """A valid access token, refreshed first if it expires within the leeway."""
        async with self._lock(realm_id):
            tokens = await self._current(realm_id)
            if tokens.access_expires_at - self._leeway > self._clock():
                return tokens.access_token
            return (await self._refresh(realm_id, tokens)).access_token

    async def force_refresh(self, realm_id: str, rejected: Secret) -> Secret:
        """After a 401: refresh, unless another caller already replaced the rejected token."""
        async with self._lock(realm_id):
            tokens = await self._current(realm_id)
            if tokens.access_token != rejected:
                return tokens.access_token
            return (await self._refresh(realm_id, tokens)).access_token

    async def _current(self, realm_id: str) -> TokenSet:
        if realm_id in self._unsaved:
            await self._save(realm_id, self._unsaved[realm_id])
            return self._unsaved.pop(realm_id)
        row = await self._db.fetchone(
            "SELECT status, status_reason FROM qbo_connections WHERE realm_id = ?", (realm_id,)
        )
        if row is None or row[0] == "disconnected":
            raise QBOReconnectRequired(realm_id, "the company is not connected")
        if row[0] == "reconnect_required":
            raise QBOReconnectRequired(realm_id, row[1] or "authorisation was lost")
        secret = await self._secrets.get(token_secret_name(realm_id))
        if secret is None:
            raise QBOReconnectRequired(realm_id, "no tokens are stored for it")
        return TokenSet.from_secret(secret)

    async def _refresh(self, realm_id: str, old: TokenSet) -> TokenSet:
        now = self._clock()
        if old.refresh_end_of_life <= now:
            await self.mark_reconnect_required(realm_id, "the refresh token has expired")
            raise QBOReconnectRequired(realm_id, "the refresh token has expired")
        row = await self._db.fetchone(
            "SELECT refresh_started_at FROM qbo_connections WHERE realm_id = ?", (realm_id,)
        )
        lost_before = row is not None and row[0] is not None
        await self._db.write(
            "UPDATE qbo_connections SET refresh_started_at = ? WHERE realm_id = ?", (int(now), realm_id)
        )
        try:
            answer = await self._endpoint.refresh(old.refresh_token)
        except InvalidGrant as exc:
            reason = (
                "tokens from an earlier, interrupted refresh were probably lost" if lost_before
                else "Intuit refused the refresh token (expired, revoked or replaced)"
            )
            await self.mark_reconnect_required(realm_id, reason)
            raise QBOReconnectRequired(realm_id, reason) from exc
        new = TokenSet.from_response(answer, self._clock(), previous=old)
        self._unsaved[realm_id] = new
        await self._save(realm_id, new)
        self._unsaved.pop(realm_id, None)
        log.info("qbo tokens refreshed realm=%s", realm_id)
        return new

    async def _save(self, realm_id: str, tokens: TokenSet) -> None:
        last: Exception | None = None
        for attempt in range(self._save_attempts):
            try:
                async with self._db.transaction() as tx:
                    await self._secrets.put(token_secret_name(realm_id), tokens.to_secret(), conn=tx)
                    await tx.execute(
                        "UPDATE qbo_connections SET access_expires_at = ?, refresh_expires_at = ?,"
                        " refresh_hard_expires_at = ?, refresh_started_at = NULL,"
                        " updated_at = strftime('%s','now') WHERE realm_id = ?",
                        (tokens.access_expires_at, tokens.refresh_expires_at,
                         tokens.refresh_hard_expires_at, realm_id),
                    )
                return
            except Exception as exc:  # disk full, locked database...: keep the tokens, retry
                last = exc
                log.warning("saving refreshed qbo tokens failed realm=%s attempt=%d: %s",
                            realm_id, attempt + 1, type(exc).__name__)
                await asyncio.sleep(self._save_retry_s * (attempt + 1))
        raise QBOTokenStoreError(
            f"new QuickBooks tokens for company {realm_id} could not be saved ({type(last).__name__});"
            " they are kept in memory and will be saved on the next call",
            fix="check free disk space and the database file's permissions; do not restart the daemon"
            " until this clears",
        )

    async def mark_reconnect_required(self, realm_id: str, reason: str) -> None:
        log.warning("qbo company %s needs reconnecting: %s", realm_id, reason)
        await self._db.write(
            "UPDATE qbo_connections SET status = 'reconnect_required', status_reason = ?,"
            " updated_at = strftime('%s','now') WHERE realm_id = ? AND status != 'disconnected'",
            (reason, realm_id),
        )

    async def state(self, realm_id: str) -> ConnectionState:
        """connected | reconnect_required | refresh_expiring (with days left) | disconnected."""
        row = await self._db.fetchone(
            "SELECT status, status_reason, refresh_expires_at, refresh_hard_expires_at, sandbox"
            " FROM qbo_connections WHERE realm_id = ?", (realm_id,),
        )
        if row is None or row[0] == "disconnected":
            return ConnectionState(realm_id, "disconnected", sandbox=bool(row[4]) if row else False)
        sandbox = bool(row[4])
        if row[0] == "reconnect_required":
            return ConnectionState(realm_id, "reconnect_required", reason=row[1], sandbox=sandbox)
        end = min(x for x in (row[2], row[3]) if x is not None)
        left = end - self._clock()
        if left <= 0:
            return ConnectionState(realm_id, "reconnect_required", 0, "the refresh token has expired", sandbox)
        days = int(left // DAY_S)
        if days < REFRESH_WARN_DAYS:
            log.warning("qbo company %s: refresh token ends in %d days", realm_id, days)
            return ConnectionState(realm_id, "refresh_expiring", days,
                                   f"authorisation ends in {days} days: reconnect before then", sandbox)
        return ConnectionState(realm_id, "connected", days, sandbox=sandbox)

    async def states(self) -> list[ConnectionState]:
        return [await self.state(c.realm_id) for c in await list_connections(self._db)]

    def forget(self, realm_id: str) -> None:
        self._unsaved.pop(realm_id, None)
