"""#19 point 10: key rotation racing every kind of secret write loses nothing.

Each round runs two master-key rotations at once with a QuickBooks token refresh, a link-signing key
rotation and a webhook-secret write (what `btcpay webhook rotate` stores); afterwards every secret must
open, hold the last value written, and open again after a restart from the key file on disk.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from sovterm.links.tokens import SECRET_PREFIX, SigningKeys
from sovterm.qbo.tokens import TokenManager, TokenSet, store_new_connection, token_secret_name
from sovterm.store import keyring
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretStore

ROUNDS = 40
REALM = "9341450000000001"
WEBHOOK = "btcpay:webhook:StoreA"


class CountingTokenEndpoint:
    """Intuit's token endpoint as far as a refresh goes: every call rotates both tokens."""

    def __init__(self) -> None:
        self.calls = 0

    async def refresh(self, refresh_token: Secret) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(0)
        return {"access_token": f"access-{self.calls}", "refresh_token": f"refresh-{self.calls}",
                "expires_in": 3600, "x_refresh_token_expires_in": 8_640_000}


async def _open(data_dir: Path) -> tuple[Database, SecretStore]:
    db = await Database.open(data_dir / "sovterm.db")
    return db, await keyring.unlock(db, data_dir)


async def test_rotation_races_every_secret_write(tmp_path: Path) -> None:
    db, store = await _open(tmp_path)
    ticks = itertools.count()
    endpoint = CountingTokenEndpoint()
    tokens = TokenManager(db, store, endpoint, clock=lambda: 1_800_000_000 + 7200 * next(ticks))  # type: ignore[arg-type]
    first = TokenSet(Secret("access-0"), Secret("refresh-0"), 1_800_003_600, 1_900_000_000)
    await store_new_connection(db, store, REALM, "production", first, 1_800_000_000)
    keys = SigningKeys(db, store)
    await keys.rotate()
    webhook_values: list[str] = []

    async def write_webhook_secret(i: int) -> None:
        value = f"whsec-{i}"
        await store.put(WEBHOOK, value)
        webhook_values.append(value)

    try:
        for i in range(ROUNDS):
            await asyncio.gather(
                keyring.rotate(store, tmp_path),
                tokens.access_token(REALM),
                keys.rotate(),
                write_webhook_secret(i),
                keyring.rotate(store, tmp_path),
            )
            for name in await store.names():
                assert await store.get(name) is not None, f"round {i}: {name} no longer opens"
        expected_access = f"access-{endpoint.calls}"
        kids = [info.kid for info in await keys.list()]
    finally:
        await db.close()

    db, store = await _open(tmp_path)  # a restart: the key file on disk must open everything
    try:
        names = await store.names()
        for name in names:
            assert await store.get(name) is not None, f"{name} does not open after a restart"
        saved = TokenSet.from_secret(await store.get(token_secret_name(REALM)))
        assert saved.access_token.reveal() == expected_access
        assert (await store.get(WEBHOOK)).reveal() == webhook_values[-1]
        assert sorted(n.removeprefix(SECRET_PREFIX) for n in names if n.startswith(SECRET_PREFIX)) == sorted(kids)
        assert len(kids) == ROUNDS + 1
    finally:
        await db.close()
