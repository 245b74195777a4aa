"""What goes over HTTP: the 402 challenge (L402 and x402 v2), the credential a retry carries, the receipt.

L402 (lightninglabs/L402 protocol-specification): `WWW-Authenticate: L402 version="0", token="<base64
macaroon>", invoice="<bolt11>"`; the retry sends `Authorization: L402 <base64 macaroon>:<hex preimage>`
(the legacy `LSAT` scheme is accepted too, with a hex or base64 preimage).

x402 v2 has no Lightning scheme yet; the requirement follows the draft `scheme_exact_bip122`: scheme
"exact", network `bip122:<genesis hash prefix>`, asset "BTC", amount in millisatoshi, `payTo` the node's
public key, `extra{paymentFlow: "upfront", assetTransferMethod: "bolt11", invoice}`, and the client pays
the invoice and sends `payload{preimage}` in `PAYMENT-SIGNATURE`. We add our macaroon to `extra`
(`extra.macaroon`): the client echoes the requirement it accepted, so the retry is verified statelessly,
exactly like an L402 one. Bodies and headers are built and parsed with the x402 package's own v2 models
(`PaymentRequired`, `PaymentRequirements`, `ResourceInfo`, `PaymentPayload`, `SettleResponse`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from pydantic import ValidationError
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse

from sovterm.paywall.macaroon import MacaroonRefused

#: CAIP-2 ids of the draft: `bip122:` + the first 32 hex digits of the chain's genesis block hash.
NETWORKS = {
    "bc": "bip122:000000000019d6689c085ae165831e93",  # mainnet
    "tb": "bip122:000000000933ea01ad0ee984209779ba",  # testnet3
    "tbs": "bip122:00000008819873e925422c1ff0f99f7c",  # signet
    "bcrt": "bip122:0f9188f13cb7b2c71f2a335e3a4fc328",  # regtest
}
PAYMENT_REQUIRED = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE = "PAYMENT-RESPONSE"
LEGACY_X_PAYMENT = "X-PAYMENT"
MAX_HEADER_CHARS = 8192


@dataclass(frozen=True)
class Invoice402:
    """The Lightning invoice a challenge asks to be paid, as decoded from BTCPay's BOLT11."""

    bolt11: str
    payment_hash: bytes
    amount_msat: int
    payee: str  # the node's public key, hex
    network: str  # CAIP-2
    expires_at: int


@dataclass(frozen=True)
class Credential:
    """A retry's proof: the macaroon we minted and the preimage the payment revealed."""

    macaroon: bytes
    preimage: bytes
    via: str  # "L402" | "LSAT" | "x402"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    text = text.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                                validate=True)
    except (binascii.Error, ValueError):
        raise MacaroonRefused("malformed credential", 400) from None


def _preimage(text: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else _unb64(text)
    except ValueError:
        raise MacaroonRefused("malformed credential", 400) from None
    if len(raw) != 32:
        raise MacaroonRefused("malformed credential", 400)
    return raw


def www_authenticate(macaroon: bytes, invoice: Invoice402) -> str:
    return f'L402 version="0", token="{_b64(macaroon)}", invoice="{invoice.bolt11}"'


def requirement(macaroon: bytes, invoice: Invoice402, *, now: int) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact", network=invoice.network, asset="BTC", amount=str(invoice.amount_msat), pay_to=invoice.payee,
        max_timeout_seconds=max(1, invoice.expires_at - now),
        extra={"paymentFlow": "upfront", "assetTransferMethod": "bolt11", "invoice": invoice.bolt11,
               "macaroon": _b64(macaroon)},
    )


def payment_required(macaroon: bytes, invoice: Invoice402, *, url: str, description: str, now: int,
                     error: str | None = None) -> PaymentRequired:
    return PaymentRequired(error=error or "payment required", resource=ResourceInfo(url=url, description=description),
                           accepts=[requirement(macaroon, invoice, now=now)])


def encode_header(model: PaymentRequired | SettleResponse) -> str:
    """x402's header encoding: base64 of the model's JSON (camelCase, no nulls)."""
    return _b64(model.model_dump_json(by_alias=True, exclude_none=True).encode())


def receipt(invoice_payment_hash: bytes, network: str, amount_msat: int) -> SettleResponse:
    """The `PAYMENT-RESPONSE` of a verified retry: the payment hash is the draft's `transaction`."""
    return SettleResponse(success=True, transaction=invoice_payment_hash.hex(), network=network,
                          amount=str(amount_msat), payer="")


def credential(authorization: str | None, x402_header: str | None) -> Credential | None:
    """The credential a request carries, None when it carries none; `MacaroonRefused` (400) when one is
    there but malformed."""
    if authorization:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.upper() in ("L402", "LSAT"):
            if len(rest) > MAX_HEADER_CHARS:
                raise MacaroonRefused("malformed credential", 400)
            token, sep, preimage = rest.strip().rpartition(":")
            if not sep or not token:
                raise MacaroonRefused("malformed credential", 400)
            if token.startswith("macaroon="):  # the older `macaroon="…"` key form
                token = token.removeprefix("macaroon=").strip('"')
            return Credential(_unb64(token.split(",")[0]), _preimage(preimage), scheme.upper())
    if x402_header:
        if len(x402_header) > MAX_HEADER_CHARS:
            raise MacaroonRefused("malformed credential", 400)
        try:
            payload = PaymentPayload.model_validate(json.loads(_unb64(x402_header)))
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
            raise MacaroonRefused("malformed credential", 400) from None
        macaroon = payload.accepted.extra.get("macaroon")
        preimage = payload.payload.get("preimage")
        if payload.x402_version != 2 or not isinstance(macaroon, str) or not isinstance(preimage, str):
            raise MacaroonRefused("malformed credential", 400)
        return Credential(_unb64(macaroon), _preimage(preimage), "x402")
    return None
