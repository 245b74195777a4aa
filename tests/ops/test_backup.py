"""Backups: a consistent online copy with manifest and key; offline restore with clear refusals."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from sovterm.errors import UserFacingError
from sovterm.ops.backup import create_backup, key_fingerprint, read_key, restore_backup
from sovterm.store import keyring
from sovterm.store.db import Database
from tests.ops.helpers import read_secret, seed_data_dir

API_KEY = "b7c1e0f4d2a95f3e8c6b1a0d9e8f7a6b5c4d3e2f"


def test_backup_on_a_running_daemon_restores_on_a_new_node(daemon_factory, tmp_path: Path) -> None:
    a = daemon_factory(name="a", start=False)
    asyncio.run(seed_data_dir(a.root / "data", {"btcpay:api_key": API_KEY}))
    a.start()
    out = tmp_path / "node-a.tar"
    made = a.cli("backup", "create", "--output", str(out), "--json")
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "key file" in result["warning"] and result["manifest"]["includes_key"] is True
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["manifest.json", "sovterm.db", "sovterm.key"]
    assert not list((a.root / "data" / "exports").glob("sovterm-backup-*")), "copied out, so removed on the node"

    refused = a.cli("backup", "restore", str(out), "--force")
    assert refused.returncode == 1 and "is running" in refused.stderr and "stop it first" in refused.stderr

    b = daemon_factory(name="b", start=False)
    restored = b.cli("backup", "restore", str(out))
    assert restored.returncode == 0, restored.stderr
    assert asyncio.run(read_secret(b.root / "data", "btcpay:api_key")) == API_KEY
    b.start()
    rotated = b.cli("secrets", "rotate", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["reencrypted"] == 2  # the canary and the API key


async def _backup(tmp_path: Path, include_key: bool) -> tuple[Path, Path]:
    source = tmp_path / "old"
    await seed_data_dir(source, {"btcpay:api_key": API_KEY})
    db = await Database.open(source / "sovterm.db")
    try:
        made = await create_backup(db, source, include_key=include_key, version="test")
    finally:
        await db.close()
    return source, Path(made["path"])


async def test_without_key_on_a_new_node_names_the_key_to_copy(tmp_path: Path) -> None:
    source, archive = await _backup(tmp_path, include_key=False)
    fingerprint = key_fingerprint(read_key(source)[0])
    target = tmp_path / "new"
    with pytest.raises(UserFacingError) as refused:
        restore_backup(archive, target)
    assert "made without its key file" in str(refused.value)
    assert f"sovterm.key (fingerprint {fingerprint})" in str(refused.value)
    assert not (target / "sovterm.db").exists()
    shutil.copy2(source / "sovterm.key", target / "sovterm.key")
    result = restore_backup(archive, target)
    assert result["key"].startswith("the existing key file")
    assert await read_secret(target, "btcpay:api_key") == API_KEY


async def test_existing_database_needs_force_and_is_moved_aside(tmp_path: Path) -> None:
    _, archive = await _backup(tmp_path, include_key=True)
    target = tmp_path / "busy"
    await seed_data_dir(target, {"btcpay:api_key": "the-other-node"})
    with pytest.raises(UserFacingError, match="--force"):
        restore_backup(archive, target)
    assert await read_secret(target, "btcpay:api_key") == "the-other-node"
    result = restore_backup(archive, target, force=True)
    moved = Path(result["moved_aside"])
    assert (moved / "sovterm.db").exists() and (moved / "sovterm.key").exists()
    assert await read_secret(target, "btcpay:api_key") == API_KEY
    assert stat.S_IMODE((target / "sovterm.key").stat().st_mode) == 0o600


async def test_a_different_key_file_is_refused_with_both_fingerprints(tmp_path: Path) -> None:
    _, archive = await _backup(tmp_path, include_key=False)
    target = tmp_path / "other"
    await seed_data_dir(target, {})
    (target / "sovterm.db").unlink()
    with pytest.raises(UserFacingError, match="is not the one this backup was made with"):
        restore_backup(archive, target)


async def test_damaged_backup_is_refused(tmp_path: Path) -> None:
    _, archive = await _backup(tmp_path, include_key=True)
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "sovterm.db":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, fileobj=io.BytesIO(data))
    with pytest.raises(UserFacingError, match="does not match its manifest"):
        restore_backup(damaged, tmp_path / "fresh")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    with pytest.raises(UserFacingError, match="not a usable sovterm backup"):
        restore_backup(tmp_path / "junk.tar", tmp_path / "fresh")


async def test_restore_refuses_while_the_lock_is_held(tmp_path: Path) -> None:
    _, archive = await _backup(tmp_path, include_key=True)
    target = tmp_path / "locked"
    target.mkdir()
    fd = os.open(target / "sovterm.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, b"4242", 0)
        with pytest.raises(UserFacingError, match=r"pid 4242\) is running"):
            restore_backup(archive, target)
    finally:
        os.close(fd)
    restore_backup(archive, target)
    db = await Database.open(target / "sovterm.db")
    try:
        await keyring.unlock(db, target)  # the key opens the restored database
    finally:
        await db.close()
