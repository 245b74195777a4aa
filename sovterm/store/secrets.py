"""Secrets at rest and in memory.

`Secret` wraps a sensitive string so that repr/str/format never reveal it: it can be logged, put in
an exception or a pydantic model without leaking. `SecretBox` encrypts with AES-256-GCM under the
key in the data directory's key file; `SecretStore` keeps named secrets encrypted in SQLite.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovterm.errors import StartupRefused, UserFacingError

if TYPE_CHECKING:
    from sovterm.store.db import Database

KEY_FILE_NAME = "sovterm.key"
_KEY_HEADER = b"SOVTERM-KEY-1\n"
_NONCE_BYTES = 12
_MASK = "**********"


class Secret:
    """A string that never shows itself by accident; call `.reveal()` where it is really needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # refuse to be pickled into some cache in clear
        raise TypeError("Secret values cannot be pickled")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            lambda v: v if isinstance(v, Secret) else Secret(str(v)),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: str(v)),
        )


class KeyFileError(StartupRefused):
    code = "key_file"


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that group or others could read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {mode:04o}: it must be readable by its owner only",
            fix=f"chmod 600 {path}  (and check who could have copied it)",
        )


def load_or_create_key(data_dir: Path, *, create: bool = True) -> bytes:
    """Read the 256-bit master key, creating it (mode 0600, atomically) on first start."""
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        if not create:
            raise KeyFileError(
                f"no key file at {path}",
                fix="restore the key file from your backup next to the database",
            )
        key = AESGCM.generate_key(bit_length=256)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _KEY_HEADER + key.hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return key
    check_key_file_mode(path)
    return parse_key(path.read_bytes(), source=str(path))


def parse_key(raw: bytes, *, source: str) -> bytes:
    if not raw.startswith(_KEY_HEADER):
        raise KeyFileError(f"{source} is not a sovterm key file", fix="restore the right key file")
    try:
        key = bytes.fromhex(raw[len(_KEY_HEADER):].strip().decode())
    except ValueError as exc:
        raise KeyFileError(f"{source} is damaged", fix="restore the key file from backup") from exc
    if len(key) != 32:
        raise KeyFileError(f"{source} does not hold a 256-bit key", fix="restore the key file")
    return key


def write_key_file(path: Path, key: bytes) -> None:
    """Atomically replace the key file (used by rotation and restore)."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _KEY_HEADER + key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class SecretBox:
    """AES-256-GCM with a random nonce; the secret's name is bound as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, name: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), name.encode())

    def decrypt(self, blob: bytes, *, name: str) -> Secret:
        try:
            plain = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], name.encode())
        except InvalidTag as exc:
            raise UserFacingError(
                f"secret {name!r} cannot be decrypted with this key file",
                fix="use the key file that belongs to this database",
            ) from exc
        return Secret(plain.decode())


class SecretStore:
    """Named secrets, encrypted in the `secrets` table.

    Names are namespaced by part, e.g. `btcpay:api_key` (server-wide), `btcpay:api_key:<store>` (a
    store's own key), `btcpay:webhook:<store>`, `qbo:tokens:<realm>`, `links:signing:<kid>`.

    Every write encrypts inside a write transaction (the caller's, or its own), so it is serialised with
    key rotation, which holds the write lock throughout (`keyring.rotate`).
    """

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self.box = box
        self._rotated = asyncio.Event()
        self._rotated.set()
        self._rotations = 0

    @asynccontextmanager
    async def rotating(self) -> AsyncIterator[None]:
        """Held by a key rotation: a read that raced one waits until none runs and tries again."""
        self._rotations += 1
        self._rotated.clear()
        try:
            yield
        finally:
            self._rotations -= 1
            if not self._rotations:
                self._rotated.set()

    @property
    def db(self) -> Database:
        return self._db

    async def put(self, name: str, value: Secret | str, *, conn: Any = None) -> None:
        plain = value.reveal() if isinstance(value, Secret) else value
        sql = (
            "INSERT INTO secrets(name, ciphertext, updated_at) VALUES(?, ?, strftime('%s','now')) "
            "ON CONFLICT(name) DO UPDATE SET ciphertext=excluded.ciphertext, updated_at=excluded.updated_at"
        )
        if conn is not None:
            await conn.execute(sql, (name, self.box.encrypt(plain, name=name)))
        else:
            async with self._db.transaction() as tx:
                await tx.execute(sql, (name, self.box.encrypt(plain, name=name)))

    async def get(self, name: str) -> Secret | None:
        while True:
            box, rotating = self.box, not self._rotated.is_set()
            row = await self._db.fetchone("SELECT ciphertext FROM secrets WHERE name = ?", (name,))
            if row is None:
                return None
            try:
                return box.decrypt(row[0], name=name)
            except UserFacingError:
                if not rotating and self._rotated.is_set() and box is self.box:
                    raise  # no rotation raced this read: the key really does not open it
                await self._rotated.wait()  # read across a rotation: read again under the new key

    async def delete(self, name: str, *, conn: Any = None) -> None:
        if conn is not None:
            await conn.execute("DELETE FROM secrets WHERE name = ?", (name,))
        else:
            async with self._db.transaction() as tx:
                await tx.execute("DELETE FROM secrets WHERE name = ?", (name,))

    async def names(self, prefix: str = "") -> list[str]:
        rows = await self._db.fetchall(
            "SELECT name FROM secrets WHERE name LIKE ? ORDER BY name", (prefix + "%",)
        )
        return [r[0] for r in rows]
