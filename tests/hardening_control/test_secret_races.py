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


async def test_config_import_racing_a_rotation_never_stores_secrets_under_the_old_key(tmp_path: Path, monkeypatch) -> None:
    """A rotation that lands between the import's plan and its apply: the import is refused, the secret
    already stored still opens (without the guard the export's old-key ciphertext replaced it)."""
    from sovterm.config import load_settings
    from sovterm.control.client import CallFailed, ControlClient
    from sovterm.control.roles import RolePolicy
    from sovterm.control.server import ControlServer
    from sovterm.logs import LogRing, LogSetup
    from sovterm.ops import config_export
    from sovterm.ops.backup import read_key
    from sovterm.parts.core import register_core_methods
    from sovterm.parts.ops import register
    from sovterm.services import Services
    from sovterm.systemd import Notifier

    data = tmp_path / "data"
    data.mkdir()
    db, store = await _open(data)
    await store.put(WEBHOOK, "whsec-original")
    document = await config_export.export_document(db, read_key(data)[0], version="t")
    settings = load_settings(None, {"SOVTERM_DATA_DIR": str(data), "HOME": str(tmp_path)})
    services = Services(settings, {}, Notifier({}), LogSetup(LogRing(size=100), []))
    services.db, services.secrets = db, store

    async def write_audit(*row: Any, conn: Any = None) -> None:
        return None

    async def no_reload() -> dict[str, Any]:
        return {}

    server = ControlServer(tmp_path / "c.sock", RolePolicy(0, None, None), parts=lambda name: None,
                           audit=write_audit, version="t")
    register_core_methods(server, services, reload=no_reload, loops=None)  # type: ignore[arg-type]
    register(server, services)
    real_plan = config_export.plan_import

    async def plan_then_rotation_lands(*args: Any) -> Any:
        plan = await real_plan(*args)
        await keyring.rotate(store, data)
        return plan

    monkeypatch.setattr(config_export, "plan_import", plan_then_rotation_lands)
    await store.put(WEBHOOK, "whsec-newer")  # so the import has something to change
    await server.start()
    try:
        async with await ControlClient.connect(server.path) as client:
            try:
                await client.call("config.import", document=document, apply=True)
            except CallFailed as exc:
                assert "rotated while this export was being imported" in exc.message
            else:
                raise AssertionError("the import applied an export made under a key that no longer exists")
    finally:
        await server.stop()
        await db.close()
    db, store = await _open(data)
    try:
        assert (await store.get(WEBHOOK)).reveal() == "whsec-newer"
    finally:
        await db.close()
