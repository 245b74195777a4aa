"""Migrations, secrets and the key file."""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from sovterm.errors import StartupRefused
from sovterm.store import keyring
from sovterm.store.db import Database, Migration, bundled_migrations
from sovterm.store.secrets import KEY_FILE_NAME, Secret, SecretBox, SecretStore

OLD_DB = Path(__file__).parent / "data" / "sovterm-v1.db"


async def test_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    try:
        assert await db.schema_version() == len(bundled_migrations())
        tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"secrets", "kv", "loop_runs", "audit", "schema_version"} <= tables
        journal = await db.fetchone("PRAGMA journal_mode")
        fks = await db.fetchone("PRAGMA foreign_keys")
        assert journal[0] == "wal" and fks[0] == 1
    finally:
        await db.close()


async def test_upgrade_real_old_database_makes_a_backup_first(tmp_path: Path) -> None:
    """tests/spine/data/sovterm-v1.db was written by the first schema; it must upgrade cleanly."""
    path = tmp_path / "sovterm.db"
    shutil.copy(OLD_DB, path)
    db = await Database.open(path, backup_dir=tmp_path / "backups")
    try:
        assert await db.schema_version() == len(bundled_migrations())
        row = await db.fetchone("SELECT value FROM kv WHERE key = 'fixture'")
        assert row is not None and row[0] == '"kept"'  # data survives the upgrade
    finally:
        await db.close()
    backups = list((tmp_path / "backups").glob("sovterm-v1-*.db"))
    assert len(backups) == 1
    old = await Database.open(backups[0], migrations=bundled_migrations()[:1])
    try:
        assert await old.schema_version() == 1
    finally:
        await old.close()


async def test_newer_database_refused(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    await db.close()
    with pytest.raises(StartupRefused, match="newer than this sovterm knows"):
        await Database.open(tmp_path / "s.db", migrations=bundled_migrations()[:1])


async def test_failed_migration_rolls_back_with_its_version(tmp_path: Path) -> None:
    good = bundled_migrations()[:1]
    bad = Migration(2, "broken", "CREATE TABLE half_done(x INTEGER);\nINSERT INTO no_such_table VALUES (1);")
    with pytest.raises(Exception, match="no_such_table"):
        await Database.open(tmp_path / "s.db", migrations=[*good, bad])
    db = await Database.open(tmp_path / "s.db", migrations=good)
    try:
        assert await db.schema_version() == 1
        assert await db.fetchone("SELECT name FROM sqlite_master WHERE name='half_done'") is None
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO kv(key, value, updated_at) VALUES('a', '1', 0)")
                raise RuntimeError("crash between two writes")
        assert await db.fetchone("SELECT 1 FROM kv WHERE key='a'") is None
    finally:
        await db.close()


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2-api-key")

    class Model(BaseModel):
        key: Secret

    stream = io.StringIO()
    logger = logging.getLogger("test.secret")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("key is %s / %r", secret, secret)
    finally:
        logger.removeHandler(handler)
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", stream.getvalue(),
             str(ValueError(secret)), Model(key="hunter2-api-key").model_dump_json(), repr(Model(key=secret))]
    assert all("hunter2" not in s for s in shown)
    assert secret.reveal() == "hunter2-api-key"


async def test_secret_store_encrypts_at_rest(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.db")
    try:
        store = SecretStore(db, SecretBox(os.urandom(32)))
        await store.put("btcpay:api_key", Secret("plaintext-api-key-123"))
        assert (await store.get("btcpay:api_key")).reveal() == "plaintext-api-key-123"
        await db.close()
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
        assert b"plaintext-api-key-123" not in raw
    finally:
        pass


async def _store(data_dir: Path) -> tuple[Database, SecretStore]:
    db = await Database.open(data_dir / "sovterm.db")
    return db, await keyring.unlock(db, data_dir)


async def test_rotation_reencrypts_and_old_key_no_longer_opens(tmp_path: Path) -> None:
    db, store = await _store(tmp_path)
    await store.put("qbo:tokens:1", "token-value")
    old_key = (tmp_path / KEY_FILE_NAME).read_bytes()
    count = await keyring.rotate(store, tmp_path)
    assert count == 2  # the secret and the canary
    assert (tmp_path / KEY_FILE_NAME).read_bytes() != old_key
    assert (await store.get("qbo:tokens:1")).reveal() == "token-value"
    await db.close()
    db, store = await _store(tmp_path)
    assert (await store.get("qbo:tokens:1")).reveal() == "token-value"
    await db.close()
    (tmp_path / KEY_FILE_NAME).write_bytes(old_key)
    db = await Database.open(tmp_path / "sovterm.db")
    with pytest.raises(StartupRefused, match="does not belong to this database"):
        await keyring.unlock(db, tmp_path)
    await db.close()


async def test_rotation_interrupted_before_commit_keeps_old_key(tmp_path: Path) -> None:
    db, store = await _store(tmp_path)
    await store.put("btcpay:api_key", "k")
    await db.close()
    (tmp_path / (KEY_FILE_NAME + ".new")).write_bytes((tmp_path / KEY_FILE_NAME).read_bytes().replace(b"a", b"b", 1))
    (tmp_path / (KEY_FILE_NAME + ".new")).chmod(0o600)
    db, store = await _store(tmp_path)
    assert (await store.get("btcpay:api_key")).reveal() == "k"
    assert not (tmp_path / (KEY_FILE_NAME + ".new")).exists()
    await db.close()


async def test_rotation_interrupted_after_commit_finishes(tmp_path: Path, monkeypatch) -> None:
    db, store = await _store(tmp_path)
    await store.put("btcpay:api_key", "k")
    real_replace = os.replace

    def crash_on_final_rename(src, dst):
        if str(src).endswith(".new"):
            raise SystemExit("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(keyring.os, "replace", crash_on_final_rename)
    with pytest.raises(SystemExit):
        await keyring.rotate(store, tmp_path)
    monkeypatch.setattr(keyring.os, "replace", real_replace)
    await db.close()
    db, store = await _store(tmp_path)
    assert (await store.get("btcpay:api_key")).reveal() == "k"
    assert not (tmp_path / (KEY_FILE_NAME + ".new")).exists()
    await db.close()


async def test_missing_key_file_with_secrets_refused_clearly(tmp_path: Path) -> None:
    db, store = await _store(tmp_path)
    await db.close()
    (tmp_path / KEY_FILE_NAME).unlink()
    db = await Database.open(tmp_path / "sovterm.db")
    with pytest.raises(StartupRefused, match="no key file") as err:
        await keyring.unlock(db, tmp_path)
    assert "copy the key file" in str(err.value)
    await db.close()


async def test_cancelled_while_beginning_leaves_no_open_transaction(tmp_path: Path) -> None:
    """A task cancelled while BEGIN runs in aiosqlite's thread must not leave the writer stuck."""
    import asyncio

    db = await Database.open(tmp_path / "s.db")
    try:
        for _ in range(20):
            async def write() -> None:
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO kv(key, value, updated_at) VALUES('x', '1', 0) "
                                     "ON CONFLICT(key) DO NOTHING")

            task = asyncio.create_task(write())
            await asyncio.sleep(0)  # let it reach BEGIN
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await db.write("UPDATE kv SET updated_at = 1 WHERE key = 'x'") in (0, 1)
    finally:
        await db.close()
