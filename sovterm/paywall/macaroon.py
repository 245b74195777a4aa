"""L402 macaroons: minted and verified as pure functions, in the libmacaroons v2 binary format.

Why our own: the one Python library, pymacaroons 0.13 (2018), is unmaintained and pulls PyNaCl for the
third-party caveats L402 never uses. A first-party macaroon is a short HMAC-SHA256 chain: the signature
starts as HMAC(derived root key, identifier) and each caveat replaces it with HMAC(signature, caveat), so
caveats can be added but never removed or altered. The wire format is libmacaroons' v2 binary format
(what lnd and Aperture emit), so L402 tools that decode macaroons read ours.

The identifier is L402's: version (uint16, 0), the payment hash (32 bytes) and a token id (32 bytes).
Our token id starts with the 4-byte id of the paywall signing key; the root key of one macaroon is
HMAC(signing key, token id), so verification needs only the signing keys, held in memory, and no
database row per token. Caveats are `name=value` conditions (L402 spec): `resource`, `amount_msat`,
`valid_until` (unix seconds), `store`, `invoice` (the BTCPay invoice id), `network` (CAIP-2). An unknown caveat refuses the
macaroon (a macaroon must be refused when any caveat cannot be checked).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

VERSION = 2  # libmacaroons binary format v2
_EOS, _LOCATION, _IDENTIFIER, _VID, _SIGNATURE = 0, 1, 2, 4, 6
_KEYGEN = b"macaroons-key-generator"
L402_ID_VERSION = 0
MAX_MACAROON_BYTES = 1024
LOCATION = "sovterm"
CAVEATS = ("resource", "amount_msat", "valid_until", "store", "invoice", "network")


class MacaroonRefused(Exception):
    """Why a credential is refused; `reason` is a short code, shown to the client and counted."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Grant:
    """What one macaroon says: which payment (hash) buys which resource, how much, until when."""

    payment_hash: bytes
    resource: str
    amount_msat: int
    valid_until: int
    store: str
    invoice: str
    network: str  # CAIP-2 id of the chain the invoice is on
    kid: str = ""
    token_id: bytes = b""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(kind: int, data: bytes) -> bytes:
    return bytes([kind]) + _varint(len(data)) + data


def _root_key(signing_key: bytes, token_id: bytes) -> bytes:
    root = hmac.new(signing_key, token_id, hashlib.sha256).digest()
    return hmac.new(_KEYGEN, root, hashlib.sha256).digest()  # libmacaroons' derived key


def _signature(signing_key: bytes, identifier: bytes, caveats: list[bytes]) -> bytes:
    sig = hmac.new(_root_key(signing_key, identifier[34:]), identifier, hashlib.sha256).digest()
    for caveat in caveats:
        sig = hmac.new(sig, caveat, hashlib.sha256).digest()
    return sig


def _caveats(grant: Grant) -> list[bytes]:
    values = {"resource": grant.resource, "amount_msat": str(grant.amount_msat),
              "valid_until": str(grant.valid_until), "store": grant.store, "invoice": grant.invoice,
              "network": grant.network}
    return [f"{name}={values[name]}".encode() for name in CAVEATS]


def mint(grant: Grant, kid: str, signing_key: bytes) -> bytes:
    """The serialized macaroon for `grant`, under the signing key `kid` (8 hex digits)."""
    if len(grant.payment_hash) != 32:
        raise ValueError("a payment hash is 32 bytes")
    token_id = bytes.fromhex(kid) + os.urandom(28)
    identifier = L402_ID_VERSION.to_bytes(2, "big") + grant.payment_hash + token_id
    caveats = _caveats(grant)
    out = bytearray([VERSION])
    out += _field(_LOCATION, LOCATION.encode()) + _field(_IDENTIFIER, identifier) + bytes([_EOS])
    for caveat in caveats:
        out += _field(_IDENTIFIER, caveat) + bytes([_EOS])
    out += bytes([_EOS])
    out += _field(_SIGNATURE, _signature(signing_key, identifier, caveats))
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise MacaroonRefused("malformed macaroon")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7


def _read_section(data: bytes, pos: int) -> tuple[dict[int, bytes], int]:
    fields: dict[int, bytes] = {}
    while True:
        if pos >= len(data):
            raise MacaroonRefused("malformed macaroon")
        kind = data[pos]
        pos += 1
        if kind == _EOS:
            return fields, pos
        if kind in fields or kind not in (_LOCATION, _IDENTIFIER, _VID):
            raise MacaroonRefused("malformed macaroon")
        length, pos = _read_varint(data, pos)
        if pos + length > len(data):
            raise MacaroonRefused("malformed macaroon")
        fields[kind] = data[pos:pos + length]
        pos += length


def parse(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(identifier, caveats, signature) of a v2 macaroon, refusing anything else."""
    if not data or len(data) > MAX_MACAROON_BYTES or data[0] != VERSION:
        raise MacaroonRefused("malformed macaroon")
    header, pos = _read_section(data, 1)
    identifier = header.get(_IDENTIFIER)
    if identifier is None:
        raise MacaroonRefused("malformed macaroon")
    caveats: list[bytes] = []
    while pos < len(data) and data[pos] != _EOS:
        fields, pos = _read_section(data, pos)
        if _VID in fields or _IDENTIFIER not in fields:
            raise MacaroonRefused("third-party caveat")
        caveats.append(fields[_IDENTIFIER])
    if pos >= len(data):
        raise MacaroonRefused("malformed macaroon")
    pos += 1
    if data[pos:pos + 1] != bytes([_SIGNATURE]):
        raise MacaroonRefused("malformed macaroon")
    length, pos = _read_varint(data, pos + 1)
    if length != 32 or pos + 32 != len(data):
        raise MacaroonRefused("malformed macaroon")
    return identifier, caveats, data[pos:]


def key_id(data: bytes) -> str:
    """The signing key id a macaroon names (before its signature is checked)."""
    identifier, _, _ = parse(data)
    if len(identifier) != 66 or int.from_bytes(identifier[:2], "big") != L402_ID_VERSION:
        raise MacaroonRefused("not an L402 macaroon")
    return identifier[34:38].hex()


def verify(data: bytes, signing_key: bytes, *, now: int) -> Grant:
    """The grant of an authentic, unexpired macaroon; `MacaroonRefused` otherwise. The signature is checked
    (constant time) before any caveat is believed."""
    identifier, caveats, signature = parse(data)
    if len(identifier) != 66 or int.from_bytes(identifier[:2], "big") != L402_ID_VERSION:
        raise MacaroonRefused("not an L402 macaroon")
    if not hmac.compare_digest(signature, _signature(signing_key, identifier, caveats)):
        raise MacaroonRefused("bad signature")
    values: dict[str, str] = {}
    for caveat in caveats:
        name, sep, value = caveat.decode("utf-8", "replace").partition("=")
        if not sep or name not in CAVEATS:
            raise MacaroonRefused("unknown caveat")
        if name in values and name != "valid_until":
            raise MacaroonRefused("conflicting caveats")
        if name == "valid_until":  # a holder may add a stricter expiry (caveats only narrow): the earliest holds
            if not value.isdigit():
                raise MacaroonRefused("malformed caveat")
            value = str(min(int(value), int(values.get(name, value))))
        values[name] = value
    try:
        grant = Grant(identifier[2:34], values["resource"], int(values["amount_msat"]), int(values["valid_until"]),
                      values["store"], values["invoice"], values["network"], identifier[34:38].hex(), identifier[34:])
    except (KeyError, ValueError):
        raise MacaroonRefused("missing caveat") from None
    if grant.valid_until <= now:
        raise MacaroonRefused("expired", 401)
    return grant


def preimage_matches(grant: Grant, preimage: bytes) -> bool:
    return len(preimage) == 32 and hmac.compare_digest(hashlib.sha256(preimage).digest(), grant.payment_hash)
