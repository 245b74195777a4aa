"""Pydantic models of the Greenfield v1 responses sovterm reads.

Tolerant by design: unknown fields are kept (`extra="allow"`), unknown enum values are kept as the raw
string and logged at WARNING (a BTCPay upgrade must not stop the sync), 1.x field names are accepted
next to 2.x names. Decimal strings become `Decimal`; BTC amounts convert to satoshis exactly.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from sovterm.store.secrets import Secret

log = logging.getLogger(__name__)

SATS_PER_BTC = Decimal(100_000_000)
MSATS_PER_BTC = Decimal(100_000_000_000)

#: Invoice metadata key under which a pay link stores the QuickBooks invoice it settles.
QBO_REF_METADATA_KEY = "qboInvoiceId"


def btc_to_sats(value: Decimal) -> int:
    """Exact BTC → satoshis; a sub-satoshi amount is a ValueError, never silently rounded."""
    sats = value * SATS_PER_BTC
    if sats != sats.to_integral_value():
        raise ValueError(f"{value} BTC is not a whole number of satoshis")
    return int(sats)


def btc_to_sats_rounded(value: Decimal) -> int:
    """BTC → satoshis for Lightning amounts that may carry millisatoshis (BTCPay uses 11 decimals).

    Rounded half-even; callers that need the exact value keep the decimal string next to it.
    """
    return int((value * SATS_PER_BTC).to_integral_value(rounding=ROUND_HALF_EVEN))


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)


def _tolerant_enum(enum_cls: type[StrEnum], value: Any, what: str) -> str:
    """Keep unknown values as raw strings (logged), so a new BTCPay state is never fatal."""
    if value is None:
        return value
    text = str(value)
    for member in enum_cls:
        if member.value.lower() == text.lower():
            return member.value
    log.warning("BTCPay sent an unknown %s %r; kept as is", what, text)
    return text


class InvoiceStatus(StrEnum):
    NEW = "New"
    PROCESSING = "Processing"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    SETTLED = "Settled"


class InvoiceAdditionalStatus(StrEnum):
    NONE = "None"
    PAID_LATE = "PaidLate"
    PAID_PARTIAL = "PaidPartial"
    MARKED = "Marked"
    PAID_OVER = "PaidOver"
    INVALID = "Invalid"  # listed by the spec only; harmless to know


class PaymentStatus(StrEnum):
    INVALID = "Invalid"
    PROCESSING = "Processing"
    SETTLED = "Settled"


class PayoutState(StrEnum):
    AWAITING_APPROVAL = "AwaitingApproval"
    AWAITING_PAYMENT = "AwaitingPayment"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class PaymentMethodKind(StrEnum):
    ONCHAIN = "onchain"
    LIGHTNING = "lightning"
    LNURL = "lnurl"
    CASHU = "cashu"  # BTCNutServer's ecash: held at a mint, not in the store's wallet
    OTHER = "other"


_LIGHTNING_SUFFIXES = {"LN", "LIGHTNINGNETWORK", "LIGHTNINGLIKE", "LIGHTNING"}
_LNURL_SUFFIXES = {"LNURL", "LNURLPAY"}
_CHAIN_SUFFIXES = {"CHAIN", "BTCLIKE", "ONCHAIN"}
#: 1.x wrote on-chain ids as the bare crypto code; plugin ids like `CASHU` are bare too but are not chains.
_BARE_CHAIN_CODES = {"BTC", "LTC", "BCH", "DOGE", "DASH", "GRS", "MONA", "LBTC"}
#: BTCNutServer's payment method id; it records the payment in BTC (`CashuPaymentService.RegisterCashuPayment`).
CASHU_METHOD_ID = "CASHU"


def split_payment_method_id(raw: str) -> tuple[str, PaymentMethodKind]:
    """(currency, kind) of a 1.x or 2.x payment-method id.

    2.x: `BTC-CHAIN`, `BTC-LN`, `BTC-LNURL`; 1.x: `BTC`, `BTC-LightningNetwork`, `BTC_LightningLike`,
    `BTC-LNURLPAY`. Like BTCPay's own parser, `_` and `-` are equivalent and a bare chain code is on-chain.
    """
    text = raw.strip().replace("_", "-")
    if text.upper() == CASHU_METHOD_ID:
        return "BTC", PaymentMethodKind.CASHU
    if "-" not in text:
        code = text.upper()
        return code, PaymentMethodKind.ONCHAIN if code in _BARE_CHAIN_CODES else PaymentMethodKind.OTHER
    currency, _, suffix = text.partition("-")
    suffix = suffix.upper()
    if suffix in _CHAIN_SUFFIXES:
        return currency.upper(), PaymentMethodKind.ONCHAIN
    if suffix in _LIGHTNING_SUFFIXES:
        return currency.upper(), PaymentMethodKind.LIGHTNING
    if suffix in _LNURL_SUFFIXES:
        return currency.upper(), PaymentMethodKind.LNURL
    return currency.upper(), PaymentMethodKind.OTHER


def payment_method_kind(raw: str) -> PaymentMethodKind:
    return split_payment_method_id(raw)[1]


class Payment(_Model):
    id: str
    received_date: int | None = None
    value: Decimal
    fee: Decimal = Decimal(0)
    status: str
    destination: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> str:
        return _tolerant_enum(PaymentStatus, v, "payment status")


class InvoicePaymentMethod(_Model):
    """One element of `GET …/invoices/{id}/payment-methods` (or `paymentMethods[]` of a listed invoice)."""

    payment_method_id: str = Field(validation_alias=AliasChoices("paymentMethodId", "paymentMethod"))
    currency: str | None = Field(default=None, validation_alias=AliasChoices("currency", "cryptoCode"))
    destination: str | None = None
    payment_link: str | None = None
    rate: Decimal | None = None
    payment_method_paid: Decimal | None = None
    total_paid: Decimal | None = None
    due: Decimal | None = None
    amount: Decimal | None = None
    payment_method_fee: Decimal | None = Field(
        default=None, validation_alias=AliasChoices("paymentMethodFee", "networkFee")
    )
    payments: list[Payment] = Field(default_factory=list)
    activated: bool | None = None

    @property
    def kind(self) -> PaymentMethodKind:
        return payment_method_kind(self.payment_method_id)

    @property
    def payment_currency(self) -> str:
        return (self.currency or split_payment_method_id(self.payment_method_id)[0]).upper()


class Invoice(_Model):
    id: str
    store_id: str | None = None
    amount: Decimal | None = None
    paid_amount: Decimal | None = None
    currency: str | None = None
    type: str | None = None
    checkout_link: str | None = None
    created_time: int
    expiration_time: int | None = None
    monitoring_expiration: int | None = None
    status: str
    additional_status: str = "None"
    available_statuses_for_manual_marking: list[str] = Field(default_factory=list)
    archived: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    checkout: dict[str, Any] | None = None
    payment_methods: list[InvoicePaymentMethod] | None = None
    #: When the request that produced this snapshot was sent (ms since epoch, our clock). Set by
    #: `BTCPayClient`; the ledger uses it so an older read never overwrites a newer one.
    observed_at_ms: int | None = Field(default=None, exclude=True)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> str:
        return _tolerant_enum(InvoiceStatus, v, "invoice status")

    @field_validator("additional_status", mode="before")
    @classmethod
    def _additional(cls, v: Any) -> str:
        return "None" if v is None else _tolerant_enum(InvoiceAdditionalStatus, v, "invoice additionalStatus")

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, v: Any) -> dict[str, Any]:
        return v if isinstance(v, dict) else {}


class ApiKeyInfo(_Model):
    api_key: Secret | None = None
    label: str | None = None
    permissions: list[str] = Field(default_factory=list)


class Store(_Model):
    id: str
    name: str = ""
    default_currency: str | None = None
    invoice_expiration: int | None = None
    monitoring_expiration: int | None = None
    speed_policy: str | None = None
    archived: bool | None = None


class AuthorizedEvents(_Model):
    everything: bool = True
    specific_events: list[str] = Field(default_factory=list)


class Webhook(_Model):
    id: str
    enabled: bool = True
    automatic_redelivery: bool = True
    url: str
    authorized_events: AuthorizedEvents = Field(default_factory=AuthorizedEvents)
    #: Only present in the create response: BTCPay never shows a webhook's secret again.
    secret: Secret | None = None


class WebhookDelivery(_Model):
    id: str
    timestamp: int | None = None
    delivery_time: int | None = None
    http_code: int | None = None
    error_message: str | None = None
    status: str | None = None


class PullPayment(_Model):
    id: str
    name: str | None = None
    description: str | None = None
    currency: str | None = None
    amount: Decimal | None = None
    bolt11_expiration: int | str | None = Field(default=None, alias="BOLT11Expiration")
    auto_approve_claims: bool | None = None
    archived: bool | None = None
    view_link: str | None = None
    starts_at: int | None = None
    expires_at: int | None = None


class Payout(_Model):
    id: str
    revision: int = 0
    pull_payment_id: str | None = None
    date: int | None = None
    destination: str | None = None
    original_currency: str | None = None
    original_amount: Decimal | None = Field(
        default=None, validation_alias=AliasChoices("originalAmount", "amount")
    )
    payout_currency: str | None = Field(
        default=None, validation_alias=AliasChoices("payoutCurrency", "cryptoCode")
    )
    payout_amount: Decimal | None = Field(
        default=None, validation_alias=AliasChoices("payoutAmount", "paymentMethodAmount")
    )
    payout_method_id: str | None = Field(
        default=None, validation_alias=AliasChoices("payoutMethodId", "paymentMethod")
    )
    state: str
    payment_proof: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, v: Any) -> str:
        return _tolerant_enum(PayoutState, v, "payout state")

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> int | None:
        # The code sends a unix-seconds number; the spec says string. Accept both.
        return None if v is None else int(Decimal(str(v)))

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, v: Any) -> dict[str, Any]:
        return v if isinstance(v, dict) else {}


class CrowdfundApp(_Model):
    id: str
    app_name: str | None = None
    store_id: str | None = None
    title: str | None = None
    description: str | None = None
    enabled: bool | None = None
    target_currency: str | None = None
    target_amount: Decimal | None = None
    start_date: int | None = None
    end_date: int | None = None
    enforce_target_amount: bool = False
    reset_every: str = "Never"
    reset_every_amount: int = 1
    perks: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("target_amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> Any:
        # A JSON number here; go through str so a binary float never becomes the Decimal.
        return None if v is None else Decimal(str(v))


class AppBase(_Model):
    """An app of a store (`AppBaseData`): Crowdfund, PointOfSale, and whatever plugins add."""

    id: str
    app_name: str | None = None
    store_id: str | None = None
    app_type: str | None = None
    archived: bool = False


class AppSalesPoint(_Model):
    date: str | int | None = None
    label: str | None = None
    sales_count: int = 0


class AppSales(_Model):
    sales_count: int = 0
    series: list[AppSalesPoint] = Field(default_factory=list)


class ServerInfo(_Model):
    version: str | None = None
    onion: str | None = None
    supported_payment_methods: list[str] = Field(default_factory=list)
    fully_synched: bool | None = None
    sync_status: list[dict[str, Any]] = Field(default_factory=list)


class Health(_Model):
    synchronized: bool



def _msats(v: Any) -> int | None:
    """A millisatoshi amount, sent as a string (LightMoney) or a number."""
    return None if v in (None, "") else int(Decimal(str(v)))


class StoreRate(_Model):
    """One pair of `GET /api/v1/stores/{storeId}/rates` (Greenfield `StoreRateResult`): the store's own
    rate rules applied; `rate` is absent when `errors` says why."""

    currency_pair: str
    rate: Decimal | None = None
    errors: list[str] | None = None


class OnChainWallet(_Model):
    """`GET …/payment-methods/BTC-CHAIN/wallet` (BTC amounts)."""

    balance: Decimal
    unconfirmed_balance: Decimal = Decimal(0)
    confirmed_balance: Decimal = Decimal(0)


class OnChainWalletTransaction(_Model):
    """One transaction of the store's on-chain wallet; `amount` is the wallet's balance change in BTC
    (negative when it spends, the miner fee included)."""

    transaction_hash: str
    amount: Decimal
    comment: str | None = None
    block_height: int | None = None
    confirmations: int = 0
    timestamp: int | None = None
    status: str | None = None

    @field_validator("block_height", "confirmations", "timestamp", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        # numbers in the code, strings in the spec
        return None if v in (None, "") else int(Decimal(str(v)))

    @property
    def sats(self) -> int:
        return btc_to_sats(self.amount)


class LightningBalance(_Model):
    """`GET …/lightning/BTC/balance`: on-chain amounts of the node in sats, channel amounts in msats."""

    onchain: dict[str, Any] | None = None
    offchain: dict[str, Any] | None = None

    @property
    def local_msats(self) -> int:
        """What the node can spend in its channels."""
        return _msats((self.offchain or {}).get("local")) or 0


class LightningPayment(_Model):
    """`GET …/lightning/BTC/payments/{paymentHash}`: a payment the node sent; amounts in msats."""

    id: str | None = None
    status: str | None = None
    bolt11: str | None = Field(default=None, alias="BOLT11")
    payment_hash: str | None = None
    preimage: str | None = None
    created_at: int | None = None
    total_amount: int | None = None
    fee_amount: int | None = None

    @field_validator("total_amount", "fee_amount", mode="before")
    @classmethod
    def _amounts(cls, v: Any) -> int | None:
        return _msats(v)


def payout_proof_reference(proof: dict[str, Any] | None) -> str | None:
    """The on-chain txid or the Lightning payment hash a payout's `paymentProof` names. BTCPay stores its own
    proofs in PascalCase (`TransactionId`, `PaymentHash`; Newtonsoft's default) while a proof set through
    `…/mark` is whatever the caller sent, usually camelCase with `id`: both are read."""
    if not proof:
        return None
    fields = {str(k).lower(): v for k, v in proof.items()}
    for name in ("transactionid", "paymenthash", "id"):
        if isinstance(fields.get(name), str) and fields[name]:
            return str(fields[name])
    return None
