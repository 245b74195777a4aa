"""Signed pay-link tokens and their signing keys.

A token is `<kid>.<payload>.<tag>`: base64url (no padding) compact JSON naming the link, and a
128-bit truncated HMAC-SHA256 tag over `kid.payload` under the key `kid`. The key id lets keys rotate:
new links are signed with the active key while links signed with an older key keep verifying until
the operator retires that key. Keys live in the SecretStore as `links:signing:<kid>`; which kid is
active and which are retired is kept in `kv`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sovterm.errors import UserFacingError
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretStore

SECRET_PREFIX = "links:signing:"
KEYS_KV = "links.signing.keys"  # JSON {kid: {"created_at": int, "retired_at": int|None}, ...}
ACTIVE_KV = "links.signing.active"
TAG_BYTES = 16
_KID = re.compile(r"^[0-9a-f]{8}$")
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_TOKEN_CHARS = 2048


class TokenInvalid(Exception):
    """Why a token is refused; `reason` is for logs and tests, never shown to the customer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenGone(TokenInvalid):
    """Authentic, but no longer usable (expired, or signed by a retired key)."""


@dataclass(frozen=True)
class LinkClaims:
    link_id: str
    expires_at: int
    qbo_invoice_id: str | None = None
    qbo_doc_number: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    memo: str | None = None

    @property
    def kind(self) -> str:
        return "qbo" if self.qbo_invoice_id is not None else "fixed"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"l": self.link_id, "e": self.expires_at}
        if self.qbo_invoice_id is not None:
            out.update(q=self.qbo_invoice_id, n=self.qbo_doc_number)
        else:
            out.update(a=str(self.amount), c=self.currency)
            if self.memo:
                out["m"] = self.memo
        return out

    @classmethod
    def from_json(cls, data: Any) -> LinkClaims:
        if not isinstance(data, dict) or not isinstance(data.get("l"), str) or not isinstance(data.get("e"), int):
            raise TokenInvalid("payload lacks link id or expiry")
        if isinstance(data.get("q"), str):
            doc = data.get("n")
            return cls(data["l"], data["e"], qbo_invoice_id=data["q"], qbo_doc_number=doc if isinstance(doc, str) else None)
        try:
            amount = Decimal(str(data["a"]))
        except (KeyError, InvalidOperation):
            raise TokenInvalid("payload lacks an amount") from None
        if not isinstance(data.get("c"), str):
            raise TokenInvalid("payload lacks a currency")
        memo = data.get("m")
        return cls(data["l"], data["e"], amount=amount, currency=data["c"], memo=memo if isinstance(memo, str) else None)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64.match(text):
        raise TokenInvalid("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise TokenInvalid("not base64url") from None


def _tag(key: bytes, kid: str, payload: str) -> str:
    return _b64(hmac.new(key, f"{kid}.{payload}".encode("ascii"), hashlib.sha256).digest()[:TAG_BYTES])


def encode(claims: LinkClaims, kid: str, key: bytes) -> str:
    payload = _b64(json.dumps(claims.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return f"{kid}.{payload}.{_tag(key, kid, payload)}"


def split(token: str) -> tuple[str, str, str]:
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenInvalid("too long")
    parts = token.split(".")
    # every part checked here, before any is hashed: a non-ASCII payload or tag raised UnicodeEncodeError (a 500)
    if len(parts) != 3 or not _KID.fullmatch(parts[0]) or not all(_B64.fullmatch(p) for p in parts[1:]):
        raise TokenInvalid("malformed")
    return parts[0], parts[1], parts[2]


def decode(token: str, key: bytes, *, now: int) -> LinkClaims:
    """Check the tag (constant time) before reading anything, then the expiry."""
    kid, payload, tag = split(token)
    if not hmac.compare_digest(tag.encode("ascii"), _tag(key, kid, payload).encode("ascii")):
        raise TokenInvalid("bad signature")
    try:
        claims = LinkClaims.from_json(json.loads(_unb64(payload)))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TokenInvalid("payload is not JSON") from None
    if claims.expires_at <= now:
        raise TokenGone("expired")
    return claims


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    created_at: int
    retired_at: int | None
    active: bool


class SigningKeys:
    """The link-signing keys: one active (signs new links), older ones verify until retired."""

    def __init__(self, db: Database, secrets: SecretStore, *, clock: Any = time.time) -> None:
        self.db = db
        self.secrets = secrets
        self.clock = clock
        self._cache: dict[str, bytes] = {}

    async def list(self) -> list[KeyInfo]:
        keys = await kv.get(self.db, KEYS_KV, {})
        active = await kv.get(self.db, ACTIVE_KV, None)
        return [
            KeyInfo(kid, meta["created_at"], meta.get("retired_at"), kid == active)
            for kid, meta in sorted(keys.items(), key=lambda kv: kv[1]["created_at"])
        ]

    async def rotate(self) -> str:
        """Make a new key the active one; older keys keep verifying their links."""
        kid = os.urandom(4).hex()
        now = int(self.clock())
        raw = os.urandom(32)
        async with self.db.transaction() as conn:
            keys = await kv.get(self.db, KEYS_KV, {})
            keys[kid] = {"created_at": now, "retired_at": None}
            await self.secrets.put(SECRET_PREFIX + kid, _b64(raw), conn=conn)
            await kv.put(None, KEYS_KV, keys, conn=conn)
            await kv.put(None, ACTIVE_KV, kid, conn=conn)
        self._cache[kid] = raw
        return kid

    async def retire(self, kid: str) -> None:
        """Destroy a key: every link it signed stops working. The active key cannot be retired."""
        keys = await kv.get(self.db, KEYS_KV, {})
        if kid not in keys:
            raise UserFacingError(f"no link-signing key {kid!r}", fix="see `sovterm link keys list`")
        if kid == await kv.get(self.db, ACTIVE_KV, None):
            raise UserFacingError(
                f"key {kid} is the active key", fix="run `sovterm link keys rotate` first, then retire it"
            )
        if keys[kid].get("retired_at"):
            return
        now = int(self.clock())
        keys[kid]["retired_at"] = now
        async with self.db.transaction() as conn:
            await self.secrets.delete(SECRET_PREFIX + kid, conn=conn)
            await kv.put(None, KEYS_KV, keys, conn=conn)
        self._cache.pop(kid, None)

    async def active(self) -> tuple[str, bytes]:
        """The signing key for new links, created on first use."""
        kid = await kv.get(self.db, ACTIVE_KV, None)
        key = await self.key(kid) if kid else None
        if kid is None or key is None:
            kid = await self.rotate()
            key = self._cache[kid]
        return kid, key

    async def key(self, kid: str) -> bytes | None:
        if kid in self._cache:
            return self._cache[kid]
        secret: Secret | None = await self.secrets.get(SECRET_PREFIX + kid)
        if secret is None:
            return None
        raw = _unb64(secret.reveal())
        self._cache[kid] = raw
        return raw

    async def is_retired(self, kid: str) -> bool:
        keys = await kv.get(self.db, KEYS_KV, {})
        return bool(keys.get(kid, {}).get("retired_at"))

    async def sign(self, claims: LinkClaims) -> tuple[str, str]:
        kid, key = await self.active()
        return kid, encode(claims, kid, key)

    async def verify(self, token: str, *, now: int | None = None) -> tuple[str, LinkClaims]:
        """(kid, claims) of an authentic, unexpired token; TokenGone / TokenInvalid otherwise."""
        kid, _, _ = split(token)
        key = await self.key(kid)
        if key is None:
            if await self.is_retired(kid):
                raise TokenGone("retired key")
            raise TokenInvalid("unknown key")
        return kid, decode(token, key, now=int(self.clock()) if now is None else now)
