"""Unlocking and rotating the master key that encrypts every secret.

A canary secret proves the key file belongs to the database. Rotation writes the new key beside the
old one (`sovterm.key.new`), re-encrypts every secret and the canary in one transaction, then renames
the new key into place; a crash anywhere in between is finished (or undone) at the next start.
"""

from __future__ import annotations

import os
import secrets as pysecrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovterm.errors import UserFacingError
from sovterm.store.db import Database
from sovterm.store.secrets import (
    KEY_FILE_NAME,
    KeyFileError,
    SecretBox,
    SecretStore,
    check_key_file_mode,
    load_or_create_key,
    parse_key,
    write_key_file,
)

CANARY = "store:canary"
PENDING_SUFFIX = ".new"


async def _canary_opens(db: Database, box: SecretBox) -> bool | None:
    """True/False whether the canary decrypts under `box`; None when there is no canary yet."""
    row = await db.fetchone("SELECT ciphertext FROM secrets WHERE name = ?", (CANARY,))
    if row is None:
        return None
    try:
        box.decrypt(row[0], name=CANARY)
    except UserFacingError:
        return False
    return True


async def unlock(db: Database, data_dir: Path) -> SecretStore:
    """The secret store for this database, refusing a key file that does not belong to it."""
    key_path = data_dir / KEY_FILE_NAME
    pending = key_path.with_name(KEY_FILE_NAME + PENDING_SUFFIX)
    has_canary = await db.fetchone("SELECT 1 FROM secrets WHERE name = ?", (CANARY,)) is not None
    if has_canary and not key_path.exists() and not pending.exists():
        raise KeyFileError(
            f"the database holds encrypted secrets but there is no key file at {key_path}",
            fix="copy the key file from the old node's data directory (or your backup) next to "
            "the database; without it the stored API keys and tokens cannot be read and must be "
            "entered again after moving the database aside",
        )
    if not key_path.exists() and pending.exists():
        os.replace(pending, key_path)  # crashed between the two renames of a rotation
    key = load_or_create_key(data_dir, create=not has_canary)
    box = SecretBox(key)
    opens = await _canary_opens(db, box)
    if opens is False and pending.exists():
        check_key_file_mode(pending)
        new_box = SecretBox(parse_key(pending.read_bytes(), source=str(pending)))
        if await _canary_opens(db, new_box):
            os.replace(pending, key_path)  # the re-encryption committed; finish the rotation
            return SecretStore(db, new_box)
    if opens is False:
        raise KeyFileError(
            f"the key file {key_path} does not belong to this database",
            fix="put back the key file that was next to this database when it was last used",
        )
    if pending.exists():
        pending.unlink()  # rotation died before committing: the old key is still the key
    store = SecretStore(db, box)
    if opens is None:
        await store.put(CANARY, pysecrets.token_hex(16))
    return store


async def rotate(store: SecretStore, data_dir: Path) -> int:
    """Re-encrypt every secret under a fresh key; returns how many secrets were re-encrypted.

    The whole rotation holds the database's write lock (it is one write transaction), and every secret
    write encrypts inside a write transaction, so a rotation and any `SecretStore.put` (a token refresh,
    a link-signing key, a webhook secret) or another rotation never interleave: nothing is written
    under a key that is about to disappear, and no rotation re-encrypts a value read before a newer write.
    """
    key_path = data_dir / KEY_FILE_NAME
    pending = key_path.with_name(KEY_FILE_NAME + PENDING_SUFFIX)
    new_key = AESGCM.generate_key(bit_length=256)
    new_box = SecretBox(new_key)
    async with store.rotating():
        old_box = store.box
        try:
            async with store.db.transaction() as tx:
                old_box = store.box  # read under the lock: a rotation before this one may have swapped it
                write_key_file(pending, new_key)
                async with tx.execute("SELECT name, ciphertext FROM secrets ORDER BY name") as cur:
                    rows = list(await cur.fetchall())
                for name, blob in rows:
                    value = old_box.decrypt(blob, name=name)
                    await tx.execute(
                        "UPDATE secrets SET ciphertext = ?, updated_at = strftime('%s','now') WHERE name = ?",
                        (new_box.encrypt(value.reveal(), name=name), name),
                    )
                # Swapped before COMMIT, still under the write lock: the next writer encrypts with it.
                store.box = new_box
        except BaseException:
            store.box = old_box  # the re-encryption did not commit: the old key is still the key
            raise
        os.replace(pending, key_path)
    return len(rows)
