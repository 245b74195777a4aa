"""Signed link tokens: tampering, expiry, wrong and retired keys, rotation."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from sovterm.errors import UserFacingError
from sovterm.links.tokens import LinkClaims, SigningKeys, TokenGone, TokenInvalid, decode, encode
from tests.links.harness import World

KEY = b"k" * 32
NOW = 1_800_000_000


def claims(**kw: object) -> LinkClaims:
    base = {"link_id": "abc123", "expires_at": NOW + 3600, "qbo_invoice_id": "42", "qbo_doc_number": "1001"}
    base.update(kw)
    return LinkClaims(**base)  # type: ignore[arg-type]


def test_round_trip_is_compact_and_url_safe() -> None:
    token = encode(claims(), "0a1b2c3d", KEY)
    assert decode(token, KEY, now=NOW) == claims()
    assert len(token) < 120 and all(c.isalnum() or c in "-_." for c in token)
    fixed = LinkClaims("l1", NOW + 60, amount=Decimal("25.00"), currency="USD", memo="Gift card")
    assert decode(encode(fixed, "0a1b2c3d", KEY), KEY, now=NOW) == fixed


def test_tampered_payload_is_refused() -> None:
    kid, payload, tag = encode(claims(), "0a1b2c3d", KEY).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["q"] = "43"  # someone else's invoice
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid, match="bad signature"):
        decode(f"{kid}.{forged}.{tag}", KEY, now=NOW)
    with pytest.raises(TokenInvalid):
        decode(f"{kid}.{payload}.{tag[:-1]}A" if tag[-1] != "A" else f"{kid}.{payload}.{tag[:-1]}B", KEY, now=NOW)
    with pytest.raises(TokenInvalid, match="malformed"):
        decode("not-a-token", KEY, now=NOW)


def test_wrong_key_and_expiry() -> None:
    token = encode(claims(), "0a1b2c3d", KEY)
    with pytest.raises(TokenInvalid, match="bad signature"):
        decode(token, b"x" * 32, now=NOW)
    with pytest.raises(TokenGone, match="expired"):
        decode(token, KEY, now=NOW + 3600)


async def test_rotation_keeps_old_links_until_retired(world: World) -> None:
    keys = SigningKeys(world.db, world.secrets, clock=lambda: NOW)
    old_kid, old_token = await keys.sign(claims())
    new_kid = await keys.rotate()
    assert new_kid != old_kid
    assert (await keys.verify(old_token))[1] == claims()  # still verifies after rotation
    kid, fresh = await keys.sign(claims(link_id="def"))
    assert kid == new_kid
    with pytest.raises(UserFacingError, match="active key"):
        await keys.retire(new_kid)
    await keys.retire(old_kid)
    with pytest.raises(TokenGone, match="retired key"):
        await keys.verify(old_token)
    # a fresh SigningKeys (no cache) reads the same state from the database
    again = SigningKeys(world.db, world.secrets, clock=lambda: NOW)
    with pytest.raises(TokenGone):
        await again.verify(old_token)
    assert (await again.verify(fresh))[1].link_id == "def"
    listed = {k.kid: k for k in await again.list()}
    assert listed[old_kid].retired_at == NOW and listed[new_kid].active
    assert await world.secrets.get("links:signing:" + old_kid) is None  # the key material is gone
    with pytest.raises(TokenInvalid, match="unknown key"):
        await again.verify(fresh.replace(new_kid, "ffffffff", 1))
