"""Properties of the pay-link token parser (sovterm/links/tokens.py): what we sign reads back as signed,
a one-character change anywhere is refused, and no text a customer's browser can send makes it raise
anything but `TokenInvalid` (a pay page answers that with a plain 404, anything else with a 500 and a
logged traceback per request)."""

from __future__ import annotations

import string
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sovterm.links.tokens import LinkClaims, TokenGone, TokenInvalid, decode, encode, split

NOW = 1_800_000_000
keys = st.binary(min_size=32, max_size=32)
kids = st.text("0123456789abcdef", min_size=8, max_size=8)
texts = st.text(max_size=60)
qbo_claims = st.builds(LinkClaims, link_id=texts, expires_at=st.integers(NOW + 1, 2**53),
                       qbo_invoice_id=texts, qbo_doc_number=st.none() | texts)
fixed_claims = st.builds(LinkClaims, link_id=texts, expires_at=st.integers(NOW + 1, 2**53),
                         amount=st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=Decimal("0.01"),
                                            max_value=Decimal("1e9")),
                         currency=st.sampled_from(["USD", "EUR", "BTC", "SATS"]), memo=st.none() | texts.filter(bool))
claims = qbo_claims | fixed_claims
TOKEN_CHARS = string.ascii_letters + string.digits + "-_."


@given(claims, kids, keys)
def test_what_we_sign_reads_back(link: LinkClaims, kid: str, key: bytes) -> None:
    token = encode(link, kid, key)
    assert split(token)[0] == kid
    assert decode(token, key, now=NOW) == link


@given(claims, kids, keys)
def test_an_expired_link_is_gone_not_invalid(link: LinkClaims, kid: str, key: bytes) -> None:
    token = encode(link, kid, key)
    try:
        decode(token, key, now=link.expires_at)
    except TokenGone as gone:
        assert gone.reason == "expired"
    else:
        raise AssertionError("an expired link was accepted")


@given(claims, kids, keys, st.data())
def test_a_one_character_change_is_refused(link: LinkClaims, kid: str, key: bytes, data: st.DataObject) -> None:
    token = encode(link, kid, key)
    i = data.draw(st.integers(0, len(token) - 1), label="index")
    new = data.draw(st.sampled_from(TOKEN_CHARS) | st.characters(), label="char")
    tampered = token[:i] + new + token[i + 1:]
    if tampered == token:
        return
    try:
        decode(tampered, key, now=NOW)
    except TokenInvalid as refused:
        assert not isinstance(refused, TokenGone)
    else:
        raise AssertionError(f"a tampered token was accepted: {tampered!r}")


@given(claims, kids, keys, keys)
def test_another_key_is_refused(link: LinkClaims, kid: str, key: bytes, other: bytes) -> None:
    if key == other:
        return
    try:
        decode(encode(link, kid, key), other, now=NOW)
    except TokenInvalid as refused:
        assert refused.reason == "bad signature"
    else:
        raise AssertionError("a token signed with another key was accepted")


# what a browser can put in /pay/{token}: anything, but mostly token-shaped
token_like = st.text(max_size=300) | st.builds(
    lambda kid, a, b: f"{kid}.{a}.{b}", kids | texts, st.text(TOKEN_CHARS) | texts, st.text(TOKEN_CHARS) | texts)


@given(token_like, keys)
def test_any_text_is_refused_with_token_invalid(text: str, key: bytes) -> None:
    try:
        decode(text, key, now=NOW)
    except TokenInvalid:
        return
    raise AssertionError(f"an unsigned token was accepted: {text!r}")
