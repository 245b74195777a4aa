"""`sovterm backup create|restore`: a consistent copy of the database, its manifest and (by default) its key.

A backup is a plain tar file (mode 0600) holding `manifest.json`, `sovterm.db` (made with VACUUM INTO,
safe while the daemon writes) and usually `sovterm.key`. The manifest names the key by fingerprint, so a
restore can say exactly which key file is missing or wrong instead of failing later at start-up.
Restoring is offline: it takes the daemon's data-directory lock and refuses while a daemon runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

from sovterm.errors import UserFacingError
from sovterm.ops.files import create_private, daemon_stopped, exports_dir, sha256_file, unique_name
from sovterm.store.db import Database, bundled_migrations
from sovterm.store.keyring import CANARY
from sovterm.store.secrets import KEY_FILE_NAME, SecretBox, check_key_file_mode, parse_key, write_key_file

FORMAT = "sovterm-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "sovterm.db"
DB_SIDE_FILES = ("sovterm.db", "sovterm.db-wal", "sovterm.db-shm")


def key_fingerprint(key: bytes) -> str:
    """Names a master key without revealing it: first 16 hex digits of SHA-256 of the 32 key bytes."""
    return hashlib.sha256(key).hexdigest()[:16]


def read_key(data_dir: Path) -> tuple[bytes, bytes]:
    """(raw key, key file bytes) of the data directory's key file, checking its mode."""
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        raise UserFacingError(f"no key file at {path}", fix="the daemon creates it at first start")
    check_key_file_mode(path)
    raw = path.read_bytes()
    return parse_key(raw, source=str(path)), raw


def _schema_version(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o600
    return info


async def create_backup(
    db: Database, data_dir: Path, *, include_key: bool, version: str, now: float | None = None
) -> dict[str, Any]:
    """Write `<data_dir>/exports/sovterm-backup-<UTC time>.tar`; returns its name, size, digest and manifest."""
    now = time.time() if now is None else now
    out_dir = exports_dir(data_dir)
    key, key_file = read_key(data_dir)
    tmp_db = out_dir / f".tmp-{uuid.uuid4().hex}.db"
    try:
        await db.backup_to(tmp_db)
        return await asyncio.to_thread(
            _write_archive, out_dir, tmp_db, key, key_file if include_key else None, version, now
        )
    finally:
        tmp_db.unlink(missing_ok=True)


def _write_archive(
    out_dir: Path, db_copy: Path, key: bytes, key_file: bytes | None, version: str, now: float
) -> dict[str, Any]:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sovterm_version": version,
        "schema_version": _schema_version(db_copy),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "key_fingerprint": key_fingerprint(key),
        "includes_key": key_file is not None,
        "database": {"name": DATABASE, "size": db_copy.stat().st_size, "sha256": sha256_file(db_copy)},
    }
    name = unique_name(out_dir, "backup", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), ".tar")
    final = out_dir / name
    partial = out_dir / f".{name}.partial"
    fd = create_private(partial)
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                body = json.dumps(manifest, indent=2).encode()
                tar.addfile(_member(MANIFEST, len(body), now), io.BytesIO(body))
                with db_copy.open("rb") as src:
                    tar.addfile(_member(DATABASE, manifest["database"]["size"], now), src)
                if key_file is not None:
                    tar.addfile(_member(KEY_FILE_NAME, len(key_file), now), io.BytesIO(key_file))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {
        "name": name,
        "path": str(final),
        "size": final.stat().st_size,
        "sha256": sha256_file(final),
        "manifest": manifest,
    }


# ---- restore --------------------------------------------------------------------------------------


def _not_a_backup(path: Path, why: str) -> UserFacingError:
    return UserFacingError(f"{path} is not a usable sovterm backup: {why}", fix="check that you picked the right file")


def read_manifest(tar: tarfile.TarFile, path: Path) -> dict[str, Any]:
    try:
        member = tar.getmember(MANIFEST)
        data = tar.extractfile(member)
        manifest = json.loads(data.read() if data else b"")
    except (KeyError, ValueError):
        raise _not_a_backup(path, "it has no readable manifest.json") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _not_a_backup(path, "its manifest is not a sovterm backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _not_a_backup(path, f"backup format {manifest.get('format_version')!r} is not known to this sovterm")
    newest = bundled_migrations()[-1].version
    if int(manifest.get("schema_version", 0)) > newest:
        raise UserFacingError(
            f"{path} was made by a newer sovterm ({manifest.get('sovterm_version')}, schema "
            f"{manifest['schema_version']}); this one knows schema {newest}",
            fix="install that sovterm version (or newer) first, then restore",
        )
    return manifest


def _regular(tar: tarfile.TarFile, name: str, path: Path) -> tarfile.TarInfo | None:
    try:
        member = tar.getmember(name)
    except KeyError:
        return None
    if not member.isfile():
        raise _not_a_backup(path, f"{name} in it is not a regular file")
    return member


def _key_for_restore(
    tar: tarfile.TarFile, archive: Path, manifest: dict[str, Any], data_dir: Path
) -> tuple[bytes, bytes | None, bool]:
    """(key, key file bytes to write or None, whether an existing different key file is replaced)."""
    expected = manifest.get("key_fingerprint")
    key_path = data_dir / KEY_FILE_NAME
    existing: bytes | None = None
    if key_path.exists():
        check_key_file_mode(key_path)
        existing = parse_key(key_path.read_bytes(), source=str(key_path))
    member = _regular(tar, KEY_FILE_NAME, archive)
    if member is not None:
        data = tar.extractfile(member)
        raw = data.read() if data else b""
        key = parse_key(raw, source=f"{archive}:{KEY_FILE_NAME}")
        if key_fingerprint(key) != expected:
            raise _not_a_backup(archive, "its key file does not match its manifest (damaged?)")
        if existing is not None and key_fingerprint(existing) == expected:
            return key, None, False
        return key, raw, existing is not None
    if existing is None:
        raise UserFacingError(
            f"{archive} was made without its key file, and {key_path} does not exist: the stored "
            "API keys and tokens could not be decrypted",
            fix=f"copy the key file sovterm.key (fingerprint {expected}) from the old node's data "
            f"directory or your key backup to {key_path} (mode 0600), then run the restore again",
        )
    if key_fingerprint(existing) != expected:
        raise UserFacingError(
            f"the key file {key_path} (fingerprint {key_fingerprint(existing)}) is not the one this "
            f"backup was made with (fingerprint {expected})",
            fix=f"put the matching sovterm.key (fingerprint {expected}) at {key_path}, then run the restore again",
        )
    return existing, None, False


def _check_database(candidate: Path, manifest: dict[str, Any], key: bytes, archive: Path) -> None:
    expected = manifest.get("database") or {}
    if sha256_file(candidate) != expected.get("sha256"):
        raise _not_a_backup(archive, "the database in it does not match its manifest (damaged or changed)")
    try:
        with sqlite3.connect(f"file:{candidate}?mode=ro", uri=True) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            canary = conn.execute("SELECT ciphertext FROM secrets WHERE name = ?", (CANARY,)).fetchone()
    except sqlite3.DatabaseError as exc:
        raise _not_a_backup(archive, f"its database cannot be read ({exc})") from None
    if result != "ok":
        raise _not_a_backup(archive, f"its database fails SQLite's integrity check ({result})")
    if canary is not None:
        try:
            SecretBox(key).decrypt(canary[0], name=CANARY)
        except UserFacingError:
            raise UserFacingError(
                f"the key file does not open the secrets in {archive}",
                fix=f"use the sovterm.key with fingerprint {manifest.get('key_fingerprint')}",
            ) from None


def restore_backup(archive: Path, data_dir: Path, *, force: bool = False, now: float | None = None) -> dict[str, Any]:
    """Put a backup's database (and key) into `data_dir`; the daemon must be stopped."""
    now = time.time() if now is None else now
    if not archive.is_file():
        raise UserFacingError(f"no backup file at {archive}")
    with daemon_stopped(data_dir):
        try:
            tar = tarfile.open(archive, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise _not_a_backup(archive, f"it is not a tar file ({exc})") from None
        with tar:
            manifest = read_manifest(tar, archive)
            key, key_to_write, replaces_key = _key_for_restore(tar, archive, manifest, data_dir)
            present = [data_dir / n for n in DB_SIDE_FILES if (data_dir / n).exists()]
            if (present or replaces_key) and not force:
                what = ", ".join(p.name for p in present) + (" and a different sovterm.key" if replaces_key else "")
                raise UserFacingError(
                    f"{data_dir} already holds {what.lstrip(', ')}; restoring would replace it",
                    fix="add --force to move the current files aside (into a replaced-<time> folder) and restore",
                )
            db_member = _regular(tar, DATABASE, archive)
            if db_member is None:
                raise _not_a_backup(archive, "it holds no database")
            candidate = data_dir / f".restore-{uuid.uuid4().hex}.db"
            try:
                with os.fdopen(create_private(candidate), "wb") as out:
                    src = tar.extractfile(db_member)
                    assert src is not None
                    shutil.copyfileobj(src, out)
                    out.flush()
                    os.fsync(out.fileno())
                _check_database(candidate, manifest, key, archive)
                moved = None
                if present or replaces_key:
                    moved = data_dir / f"replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
                    moved.mkdir(mode=0o700)
                    for path in present + ([data_dir / KEY_FILE_NAME] if replaces_key else []):
                        os.replace(path, moved / path.name)
                os.replace(candidate, data_dir / DATABASE)
            finally:
                candidate.unlink(missing_ok=True)
            if key_to_write is not None:
                write_key_file(data_dir / KEY_FILE_NAME, key)
            _give_to_owner(data_dir)
    return {
        "database": str(data_dir / DATABASE),
        "schema_version": manifest["schema_version"],
        "created": manifest.get("created"),
        "key": "restored from the backup" if key_to_write is not None else "the existing key file (it matches)",
        "key_fingerprint": manifest["key_fingerprint"],
        "moved_aside": str(moved) if moved else None,
    }


def _give_to_owner(data_dir: Path) -> None:
    """Run as root (e.g. `sudo sovterm backup restore`), hand the files to the data directory's owner."""
    if os.geteuid() != 0:
        return
    st = data_dir.stat()
    for name in (DATABASE, KEY_FILE_NAME):
        path = data_dir / name
        if path.exists():
            os.chown(path, st.st_uid, st.st_gid)
