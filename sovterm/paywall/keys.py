"""The paywall's macaroon-signing keys: rotatable like the link-signing keys, and all held in memory.

Keys live in the SecretStore as `paywall:signing:<kid>` (encrypted under the master key); which kid is
active and which are retired is kept in `kv`. Unlike link keys, every live key is loaded when the part
starts, so verifying a credential never reads the database (a credential naming an unknown or retired
key is refused from memory too). New challenges are signed with the active key; tokens signed with an
older key keep verifying until it is retired.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from sovterm.errors import UserFacingError
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.secrets import SecretStore

SECRET_PREFIX = "paywall:signing:"
KEYS_KV = "paywall.signing.keys"  # JSON {kid: {"created_at": int, "retired_at": int|None}, ...}
ACTIVE_KV = "paywall.signing.active"


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    created_at: int
    retired_at: int | None
    active: bool


class PaywallKeys:
    def __init__(self, db: Database, secrets: SecretStore, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.secrets = secrets
        self.clock = clock
        self.live: dict[str, bytes] = {}  # kid -> key, every key not retired
        self.active_kid: str | None = None
        self._first = asyncio.Lock()

    async def load(self) -> None:
        """Read every live key into memory (the first key is created by the first challenge, not at start)."""
        keys = await kv.get(self.db, KEYS_KV, {})
        for kid, meta in keys.items():
            if not meta.get("retired_at"):
                secret = await self.secrets.get(SECRET_PREFIX + kid)
                if secret is not None:
                    self.live[kid] = base64.urlsafe_b64decode(secret.reveal())
        active = await kv.get(self.db, ACTIVE_KV, None)
        self.active_kid = active if active in self.live else None

    async def active(self) -> tuple[str, bytes]:
        """The key signing new challenges, created on first use."""
        async with self._first:  # concurrent first challenges create one key
            if self.active_kid is None:
                await self.rotate()
        assert self.active_kid is not None
        return self.active_kid, self.live[self.active_kid]

    async def list(self) -> list[KeyInfo]:
        keys = await kv.get(self.db, KEYS_KV, {})
        return [KeyInfo(kid, meta["created_at"], meta.get("retired_at"), kid == self.active_kid)
                for kid, meta in sorted(keys.items(), key=lambda item: item[1]["created_at"])]

    async def rotate(self) -> str:
        """A new active key; tokens signed with older keys keep verifying until those are retired."""
        kid = os.urandom(4).hex()
        raw = os.urandom(32)
        async with self.db.transaction() as conn:
            keys = await kv.get(self.db, KEYS_KV, {})
            keys[kid] = {"created_at": int(self.clock()), "retired_at": None}
            await self.secrets.put(SECRET_PREFIX + kid, base64.urlsafe_b64encode(raw).decode(), conn=conn)
            await kv.put(None, KEYS_KV, keys, conn=conn)
            await kv.put(None, ACTIVE_KV, kid, conn=conn)
        self.live[kid] = raw
        self.active_kid = kid
        return kid

    async def retire(self, kid: str) -> None:
        """Destroy a key: every token it signed stops working. The active key cannot be retired."""
        keys = await kv.get(self.db, KEYS_KV, {})
        if kid not in keys:
            raise UserFacingError(f"no paywall signing key {kid!r}", fix="see `sovterm paywall keys list`")
        if kid == self.active_kid:
            raise UserFacingError(f"key {kid} is the active key",
                                  fix="run `sovterm paywall keys rotate` first, then retire it")
        if keys[kid].get("retired_at"):
            return
        keys[kid]["retired_at"] = int(self.clock())
        async with self.db.transaction() as conn:
            await self.secrets.delete(SECRET_PREFIX + kid, conn=conn)
            await kv.put(None, KEYS_KV, keys, conn=conn)
        self.live.pop(kid, None)
