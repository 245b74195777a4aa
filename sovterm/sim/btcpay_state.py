"""State and controller of the BTCPay simulator: what tests and the demo drive directly.

Behaviour follows `/work/shared/notes/btcpay.md` (BTCPay v2.4.1 code): invoice status transitions,
webhook event types and payloads, the retry schedule, payout revisions, refund rules. Everything is
deterministic given the seed and the clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from typing import Any

import aiohttp
import bolt11

from sovterm.btcpay.webhooks import sign
from sovterm.store.secrets import Secret

log = logging.getLogger(__name__)

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SAT = Decimal("0.00000001")
MSAT_PER_BTC = Decimal(100_000_000_000)
#: BTCPay's automatic redelivery: first attempt at once, then 10 s, 1 min, 6 × 10 min.
RETRY_DELAYS_S = (0, 10, 60, 600, 600, 600, 600, 600, 600)
DELIVERY_PRUNE_S = 60 * 86_400
SIM_VERSION = "2.4.1"
#: BTCPay's `NetworkFeeMode` (BTCPayServer.Client/Models/StoreBaseData.cs); a new store's StoreBlob leaves it
#: at the enum's first value, MultiplePaymentsOnly.
NETWORK_FEE_MODES = ("MultiplePaymentsOnly", "Always", "Never")
#: BTCPay prices the network fee as the fee of a 100-vbyte input at NBXplorer's fee rate
#: (BitcoinLikePaymentHandler.ConfigurePrompt: `PaymentMethodFeeRate.GetFee(100)`).
FEE_VBYTES = 100


class SimClock:
    """Wall time by default; tests freeze it (`SimClock(1_700_000_000)`) and `advance()` it."""

    def __init__(self, now: float | None = None) -> None:
        self._fixed = now

    def __call__(self) -> float:
        return time.time() if self._fixed is None else self._fixed

    def set(self, now: float) -> None:
        self._fixed = now

    def advance(self, seconds: float) -> None:
        self._fixed = self() + seconds


@dataclass
class SimApiKey:
    key: str
    label: str
    permissions: list[str]


@dataclass
class SimStore:
    id: str
    name: str
    default_currency: str = "USD"
    invoice_expiration_s: int = 900
    monitoring_expiration_s: int = 86_400
    speed_policy: str = "MediumSpeed"
    payment_tolerance: Decimal = Decimal(0)
    network_fee_mode: str = NETWORK_FEE_MODES[0]
    # payment method id -> its config as BTCPay stores it (a plugin's own camelCase JSON), and whether enabled
    payment_method_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods_disabled: set[str] = field(default_factory=set)
    lightning: bool = True  # a Lightning node is connected: invoices get a BTC-LN payment method


@dataclass
class SimPayment:
    id: str
    received_date: int
    value: Decimal
    fee: Decimal
    status: str  # Processing | Settled | Invalid
    destination: str


@dataclass
class SimBolt11:
    """The Lightning invoice of a `BTC-LN` payment method: a real BOLT11 signed by the store's simulated node,
    whose preimage only the simulator knows until a payer pays it (`BTCPaySimState.pay_bolt11`). Encoding
    costs milliseconds (the `bolt11` package is pure Python), so it happens on the first read only, and only
    invoices created live get one: history seeded with a `created` time keeps placeholder destinations
    (thousands of invoices would cost seconds)."""

    seed: str  # drawn from the simulator's rng: preimage, payment secret and node key follow from it
    node_key: str  # hex private key of the store's node
    amount_msat: int | None
    created: int
    expiry_s: int
    description: str
    _encoded: str = ""

    @property
    def preimage(self) -> str:
        return hashlib.sha256(b"sim-preimage:" + self.seed.encode()).hexdigest()

    @property
    def payment_hash(self) -> str:
        return hashlib.sha256(bytes.fromhex(self.preimage)).hexdigest()

    def encoded(self) -> str:
        if not self._encoded:
            tags = bolt11.Tags()
            tags.add(bolt11.TagChar.payment_hash, self.payment_hash)
            tags.add(bolt11.TagChar.payment_secret, hashlib.sha256(b"sim-secret:" + self.seed.encode()).hexdigest())
            tags.add(bolt11.TagChar.description, self.description)
            tags.add(bolt11.TagChar.expire_time, self.expiry_s)
            amount = bolt11.MilliSatoshi(self.amount_msat) if self.amount_msat else None
            invoice = bolt11.Bolt11(currency="bc", date=self.created, tags=tags, amount_msat=amount)
            self._encoded = bolt11.encode(invoice, self.node_key)
        return self._encoded


@dataclass
class SimPaymentMethod:
    payment_method_id: str  # 2.x id: BTC-CHAIN, BTC-LN, BTC-LNURL
    address: str  # an on-chain address, a Lightning placeholder (LNURL), or "" (CASHU)
    payments: list[SimPayment] = field(default_factory=list)
    fee: Decimal = Decimal(0)  # BTCPay's prompt.PaymentMethodFee: what the next payment adds (on-chain only)
    lightning: SimBolt11 | None = None  # BTC-LN: the BOLT11 BTCPay's Lightning node issued

    @property
    def destination(self) -> str:
        return self.lightning.encoded() if self.lightning is not None else self.address


@dataclass
class SimInvoice:
    id: str
    store_id: str
    seq: int
    amount: Decimal | None
    currency: str
    rate: Decimal  # invoice currency per BTC
    created: int
    expiration: int
    monitoring_expiration: int
    status: str = "New"
    additional_status: str = "None"
    metadata: dict[str, Any] = field(default_factory=dict)
    checkout: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, SimPaymentMethod] = field(default_factory=dict)
    search_terms: list[str] = field(default_factory=list)
    archived: bool = False
    refunded_pull_payments: list[str] = field(default_factory=list)

    @property
    def type(self) -> str:
        return "TopUp" if self.amount is None else "Standard"

    def amount_btc(self) -> Decimal:
        if self.amount is None:
            return Decimal(0)
        return (self.amount / self.rate).quantize(SAT, rounding=ROUND_UP)

    def _accounted(self) -> list[SimPayment]:
        return [p for m in self.methods.values() for p in m.payments if p.status != "Invalid"]

    def paid_btc(self) -> Decimal:
        """Gross: what the customer sent, network fees included (BTCPay's `totalPaid`)."""
        return sum((p.value for p in self._accounted()), Decimal(0))

    def fees_paid_btc(self) -> Decimal:
        """The network fees the accounted payments carried (BTCPay's `InvoiceEntity.PaidFee`, in BTC)."""
        return sum((p.fee for p in self._accounted()), Decimal(0))

    def net_paid_btc(self) -> Decimal:
        """What counts against the price: gross minus network fees (`PaidAmount.Net`)."""
        return self.paid_btc() - self.fees_paid_btc()

    def under_paid(self, tolerance: Decimal) -> bool:
        """BTCPay's `MinimumNetDue > 0`: the price (less the tolerance) is not covered by the net paid."""
        return self.amount is None or self.net_paid_btc() < self.amount_btc() * (1 - tolerance / 100)

    def gross_due_btc(self, pm: SimPaymentMethod, tolerance: Decimal) -> Decimal:
        """`PaymentPrompt.Calculate().TotalDue`: price + fees already paid + this method's fee for one more
        payment while the invoice is under-paid."""
        return self.amount_btc() + self.fees_paid_btc() + (pm.fee if self.under_paid(tolerance) else Decimal(0))


@dataclass
class SimWebhook:
    id: str
    store_id: str
    url: str
    secret: str
    enabled: bool = True
    automatic_redelivery: bool = True
    everything: bool = True
    specific_events: list[str] = field(default_factory=list)

    def wants(self, event_type: str) -> bool:
        return self.enabled and (self.everything or event_type in self.specific_events)


@dataclass
class SimDelivery:
    id: str
    webhook_id: str
    original_delivery_id: str
    event: dict[str, Any]  # payload without the per-attempt fields
    timestamp: int
    body: bytes = b""
    delivery_time: int | None = None
    http_code: int | None = None
    error_message: str | None = None
    status: str = "Failed"
    pruned: bool = False


@dataclass
class SimPullPayment:
    id: str
    store_id: str
    name: str
    description: str
    currency: str
    amount: Decimal
    auto_approve_claims: bool
    starts_at: int
    archived: bool = False


@dataclass
class SimPayout:
    id: str
    store_id: str
    date: int
    destination: str
    original_amount: Decimal
    original_currency: str
    payout_currency: str
    payout_method_id: str
    pull_payment_id: str | None = None
    state: str = "AwaitingApproval"
    revision: int = 0
    payout_amount: Decimal | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    payment_proof: dict[str, Any] | None = None  # set when the wallet pays it (BTCPay's proof blob)


@dataclass
class SimWalletTx:
    """A transaction of a store's on-chain wallet that is not an invoice payment (those are read from the
    invoices): a payout batch, a withdrawal or a deposit made outside BTCPay's invoices."""

    txid: str
    store_id: str
    amount: Decimal  # the wallet's balance change in BTC, the miner fee included (negative when spending)
    timestamp: int
    confirmations: int = 1
    comment: str = ""


@dataclass
class SimLightningPayment:
    """A payment the store's Lightning node sent (a Lightning payout)."""

    payment_hash: str
    store_id: str
    amount_msat: int  # what the receiver got
    fee_msat: int  # the routing fee on top
    created: int
    bolt11: str
    preimage: str


@dataclass
class SimApp:
    id: str
    store_id: str
    name: str
    title: str
    target_currency: str
    target_amount: Decimal
    created: int
    perks: list[dict[str, Any]] = field(default_factory=list)
    enforce_target_amount: bool = False
    start_date: int | None = None
    end_date: int | None = None
    reset_every: str = "Never"  # Never | Hour | Day | Month | Year
    reset_every_amount: int = 1

    @property
    def search_term(self) -> str:
        return f"crowdfund-app_{self.id}"  # BTCPay's AppService.GetAppSearchTerm

    def order_url(self) -> str:
        return f"https://btcpay.example/apps/{self.id}/crowdfund"  # what BTCPay sets as metadata.orderUrl


@dataclass
class Fault:
    """An injected failure: the next `times` requests matching `method` and path prefix fail."""

    path_prefix: str
    kind: str = "status"  # status | timeout
    status: int = 503
    method: str | None = None
    times: int | None = 1  # None = until removed
    retry_after: str | None = None
    sleep_s: float = 2.0

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.method is None or self.method == method)


class SimError(Exception):
    """Raised by controller methods on what BTCPay would refuse; mapped to its HTTP answer."""

    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class BTCPaySimState:
    def __init__(self, *, seed: int = 0, clock: SimClock | None = None) -> None:
        self.rng = random.Random(seed)
        self.clock = clock or SimClock()
        self.api_keys: dict[str, SimApiKey] = {}
        self.stores: dict[str, SimStore] = {}
        self.invoices: dict[str, SimInvoice] = {}
        self.webhooks: dict[str, SimWebhook] = {}
        self.deliveries: dict[str, SimDelivery] = {}
        self.pull_payments: dict[str, SimPullPayment] = {}
        self.payouts: dict[str, SimPayout] = {}
        self.apps: dict[str, SimApp] = {}
        self.wallet_txs: dict[str, SimWalletTx] = {}
        self.ln_payments: dict[str, SimLightningPayment] = {}
        self.miner_fee_sats = 1_410  # what one payout transaction pays the miners, by default
        self.routing_fee_msat = 3_000  # what one Lightning payout pays in routing fees, by default
        self.rate = Decimal("65000.00")  # current BTC rate in every fiat currency, for simplicity
        self.fee_rate_sat_vb = Decimal(10)  # NBXplorer's fee estimate, which BTCPay's network fee follows
        self.faults: list[Fault] = []
        self.latency_s: dict[str, float] = {}  # path prefix -> added delay
        self.legacy_ids = False  # answer with 1.x payment-method ids and field names
        self.fully_synched = True
        self.delivery_time_scale = 1.0  # multiply the retry schedule (tests use ~0.001)
        self.delivery_timeout_s = 10.0
        self.muted = False  # no webhooks (seeding history)
        self.public_url = "http://btcpay.sim"
        self._seq = 0
        self._outbox: dict[str, deque[tuple[str, SimDelivery, bool]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    # -- ids and time ----------------------------------------------------------------------------

    def rate_for(self, currency: str) -> Decimal:
        """Units of `currency` per BTC: BTC and SATS (BTCPay accepts both as invoice currencies) are exact."""
        return {"BTC": Decimal(1), "SATS": Decimal(100_000_000)}.get(currency.upper(), self.rate)

    def new_id(self, n: int = 22) -> str:
        return "".join(self.rng.choice(B58) for _ in range(n))

    def now(self) -> int:
        return int(self.clock())

    # -- setup -----------------------------------------------------------------------------------

    def create_store(self, name: str, *, default_currency: str = "USD", store_id: str | None = None,
                     network_fee_mode: str = NETWORK_FEE_MODES[0]) -> SimStore:
        if network_fee_mode not in NETWORK_FEE_MODES:
            raise ValueError(f"networkFeeMode is one of {', '.join(NETWORK_FEE_MODES)}")
        store = SimStore(store_id or self.new_id(44), name, default_currency, network_fee_mode=network_fee_mode)
        self.stores[store.id] = store
        return store

    def configure_cashu(self, store_id: str, trusted_mints: list[str], *, payment_model: int = 0) -> None:
        """BTCNutServer's store settings (`CashuPaymentMethodConfig`, d4rp4t/BTCNutServer@0dadebb
        PaymentHandlers/CashuPaymentMethodConfig.cs), as BTCPay's BlobSerializer writes them: camelCase, the
        `CashuPaymentModel` enum as its number (0 TrustedMintsOnly, 1 HoldWhenTrusted, 2 AutoConvert), and the
        plugin's own spelling `feeConfing`."""
        self.stores[store_id].payment_method_configs["CASHU"] = {
            "paymentModel": payment_model, "trustedMintsUrls": list(trusted_mints),
            "feeConfing": {"maxKeysetFee": 1, "maxLightningFee": 1, "customerFeeAdvance": 0},
        }

    def create_api_key(self, permissions: list[str], *, label: str = "sovterm") -> str:
        key = self.new_id(40)
        self.api_keys[key] = SimApiKey(key, label, list(permissions))
        return key

    def network_fee_btc(self) -> Decimal:
        """The network fee BTCPay adds for one on-chain payment at the current fee rate."""
        return (self.fee_rate_sat_vb * FEE_VBYTES * SAT).quantize(SAT, rounding=ROUND_UP)

    def store(self, store_id: str) -> SimStore:
        if store_id not in self.stores:
            raise SimError(404, "store-not-found", "Store not found")
        return self.stores[store_id]

    def invoice(self, invoice_id: str, store_id: str | None = None) -> SimInvoice:
        inv = self.invoices.get(invoice_id)
        if inv is None or (store_id is not None and inv.store_id != store_id):
            raise SimError(404, "invoice-not-found", "The invoice was not found")
        return inv

    # -- invoices --------------------------------------------------------------------------------

    def create_invoice(
        self,
        store_id: str,
        amount: Decimal | None,
        currency: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        expiration_minutes: float | None = None,
        monitoring_minutes: float | None = None,
        payment_methods: list[str] | None = None,
        search_terms: list[str] | None = None,
        created: int | None = None,
        rate: Decimal | None = None,
    ) -> SimInvoice:
        store = self.store(store_id)
        live = created is None  # created now (through the API): its Lightning method gets a real BOLT11
        created = self.now() if created is None else created
        exp_s = int(expiration_minutes * 60) if expiration_minutes is not None else store.invoice_expiration_s
        mon_s = int(monitoring_minutes * 60) if monitoring_minutes is not None else store.monitoring_expiration_s
        self._seq += 1
        inv = SimInvoice(
            id=self.new_id(), store_id=store_id, seq=self._seq, amount=amount,
            currency=(currency or store.default_currency).upper(), rate=rate or self.rate_for(currency or store.default_currency),
            created=created, expiration=created + exp_s, monitoring_expiration=created + exp_s + mon_s,
            metadata=dict(metadata or {}), search_terms=list(search_terms or []),
        )
        for pm in payment_methods or (["BTC-CHAIN", "BTC-LN"] if store.lightning else ["BTC-CHAIN"]):
            pm = normalise_pm(pm)
            dest = ("bc1q" + self.new_id(38).lower()) if pm == "BTC-CHAIN" else ("lnbc" + self.new_id(60).lower())
            inv.methods[pm] = SimPaymentMethod(pm, "" if pm == "CASHU" else dest)  # BTCNutServer: no details
            if pm == "BTC-LN" and live:  # the node issues a BOLT11 for the amount due, valid until expiry
                due = inv.amount_btc()
                inv.methods[pm].lightning = SimBolt11(
                    seed=dest, node_key=hashlib.sha256(b"sim-node:" + store_id.encode()).hexdigest(),
                    amount_msat=int(due * MSAT_PER_BTC) if due > 0 else None, created=created, expiry_s=exp_s,
                    description=f"Paid to {store.name} (Order ID: {inv.metadata.get('orderId', '')})")
            if pm == "BTC-CHAIN" and store.network_fee_mode == "Always":
                inv.methods[pm].fee = self.network_fee_btc()
        self.invoices[inv.id] = inv
        self.emit(inv.store_id, "InvoiceCreated", _invoice_event(inv), at=created)
        return inv

    def create_pos_invoice(
        self,
        store_id: str,
        cart: list[tuple[str, str, Decimal, int]],
        *,
        app_id: str = "PoSApp1",
        currency: str | None = None,
        tax_rate: Decimal = Decimal(0),
        tax_included_in_price: bool = False,
        discount_percent: Decimal = Decimal(0),
        tip: Decimal = Decimal(0),
        amounts: list[Decimal] | None = None,
    ) -> SimInvoice:
        """An invoice as BTCPay's Point-of-Sale app creates it from a cart of (item id, title, unit price,
        count): the order summed as `PoSOrder.Calculate` does (discount and tax per line, rounded half away
        from zero to the currency's 2 decimals), and the metadata `UIPointOfSaleController` writes
        (`itemCode`/`itemDesc` for a one-item cart, `taxIncluded` = the items' tax or none, `orderId`,
        `orderUrl`, `posData` = `PosAppData`, `receiptData`), searchable by `pos-app_<appId>`."""
        from decimal import ROUND_HALF_UP

        def rnd(value: Decimal) -> Decimal:
            return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

        currency = (currency or self.store(store_id).default_currency).upper()
        lines = [(f"Custom Amount {n}", "", a, 1) for n, a in enumerate(amounts or [], start=1)] + list(cart)
        discount_total = tax_total = excluded = Decimal(0)
        for _code, _title, price, count in lines:
            line = price * count
            discount = rnd(line * discount_percent / 100)
            discount_total += discount
            line -= discount
            if tax_included_in_price and tax_rate > 0:
                tax = rnd(line * tax_rate / (100 + tax_rate))
                excluded += line - tax
            else:
                tax = rnd(line * tax_rate / 100)
                excluded += line
            tax_total += tax
        excluded = rnd(excluded)
        tip = rnd(tip)
        total = rnd(excluded + tax_total + tip)
        pos_data = {
            "cart": [{"id": code, "price": price, "title": title, "count": count, "inventory": None, "image": None}
                     for code, title, price, count in cart],
            "amounts": list(amounts) if amounts else None, "customAmount": Decimal(0),
            "discountPercentage": discount_percent, "tipPercentage": Decimal(0),
            "itemsTotal": excluded + discount_total, "discountAmount": discount_total, "subTotal": excluded,
            "tax": tax_total, "tip": tip, "total": total,
        }
        receipt = {"Cart": {title: f"{count} x {price} = {price * count}" for _c, title, price, count in cart},
                   "Total": str(total)}
        metadata: dict[str, Any] = {
            "orderId": self.new_id(10), "orderUrl": f"https://btcpay.example/apps/{app_id}/pos",
            "posData": pos_data, "receiptData": receipt,
        }
        if len(cart) == 1:
            metadata.update({"itemCode": cart[0][0], "itemDesc": cart[0][1]})
        if tax_total > 0:
            metadata["taxIncluded"] = tax_total
        # amounts as decimal strings, like every amount this simulator writes (BTCPay writes JSON numbers; the
        # reader takes both, and `{"value": …}` for a cart price)
        metadata = json.loads(json.dumps(metadata, default=str))
        return self.create_invoice(store_id, total, currency, metadata=metadata, search_terms=[f"pos-app_{app_id}"])

    def pay(
        self,
        invoice_id: str,
        *,
        method: str = "BTC-CHAIN",
        amount_btc: Decimal | None = None,
        settled: bool | None = None,
        at: int | None = None,
    ) -> SimPayment:
        """A customer payment; default amount = what is due, Lightning payments settle at once."""
        inv = self.invoice(invoice_id)
        method = normalise_pm(method)
        at = self.now() if at is None else at
        self._tick_invoice(inv, at)
        if inv.status not in ("New", "Expired", "Processing") or (
            inv.status == "Expired" and at > inv.monitoring_expiration
        ):
            raise SimError(400, "not-payable", f"invoice is {inv.status}")
        pm = inv.methods.get(method)
        if pm is None:
            raise SimError(400, "payment-method-unavailable", f"{method} not enabled on this invoice")
        tolerance = self.stores[inv.store_id].payment_tolerance
        if amount_btc is None:
            amount_btc = max(inv.gross_due_btc(pm, tolerance) - inv.paid_btc(), SAT)
        lightning = method != "BTC-CHAIN"
        settled = lightning if settled is None else settled
        pid = self.new_id(64).lower()
        if pm.lightning is not None:  # BTCPay's Lightning payment id is the invoice's payment hash
            pid = pm.lightning.payment_hash
        payment = SimPayment(  # the payment carries the prompt's fee of that moment (PaymentDataExtensions.Set)
            id=pid if lightning else f"{pid}-{self.rng.randrange(4)}",
            received_date=at, value=amount_btc, fee=pm.fee,
            status="Settled" if settled else "Processing", destination=pm.destination,
        )
        pm.payments.append(payment)
        if not lightning and pm.fee == 0 and self.stores[inv.store_id].network_fee_mode == "MultiplePaymentsOnly":
            pm.fee = self.network_fee_btc()  # NBXplorerListener.ReceivedPayment: later payments pay the fee
        after_expiration = inv.status == "Expired"
        self.emit(inv.store_id, "InvoiceReceivedPayment", {
            **_invoice_event(inv), "afterExpiration": after_expiration,
            "paymentMethodId": method, "payment": _payment_json(payment),
        }, at=at)
        if settled:
            self.emit(inv.store_id, "InvoicePaymentSettled", {
                **_invoice_event(inv), "afterExpiration": after_expiration,
                "paymentMethodId": method, "payment": _payment_json(payment),
            }, at=at)
        self._recompute(inv, at)
        return payment

    def pay_bolt11(self, invoice: str, *, at: int | None = None) -> str:
        """What a payer's Lightning wallet does with a BOLT11 BTCPay issued: pay it (the invoice settles at
        once) and learn the preimage, returned as hex. Unknown, expired or already paid invoices fail as a
        wallet's payment would."""
        for inv in self.invoices.values():
            pm = inv.methods.get("BTC-LN")
            if pm is not None and pm.lightning is not None and pm.lightning._encoded == invoice:
                if any(p.id == pm.lightning.payment_hash for p in pm.payments):
                    raise SimError(400, "already-paid", "this Lightning invoice was already paid")
                self.pay(inv.id, method="BTC-LN", at=at)
                return pm.lightning.preimage
        raise SimError(400, "unknown-invoice", "no route to this Lightning invoice")

    def pay_cashu(self, invoice_id: str, *, at: int | None = None) -> SimPayment:
        """What BTCNutServer does with a Cashu token (`CashuPaymentService.RegisterCashuPayment`): a `CASHU`
        payment of what is due in BTC, status Processing, then the invoice marked Settled."""
        payment = self.pay(invoice_id, method="CASHU", settled=False, at=at)
        self.mark_status(invoice_id, "Settled", at=at)
        return payment

    def confirm(self, invoice_id: str, *, at: int | None = None) -> None:
        """Every Processing payment reaches the speed policy's confirmations."""
        inv = self.invoice(invoice_id)
        at = self.now() if at is None else at
        for method, pm in inv.methods.items():
            for p in pm.payments:
                if p.status == "Processing":
                    p.status = "Settled"
                    self.emit(inv.store_id, "InvoicePaymentSettled", {
                        **_invoice_event(inv), "afterExpiration": inv.status == "Expired",
                        "paymentMethodId": method, "payment": _payment_json(p),
                    }, at=at)
        self._recompute(inv, at)

    def double_spend(self, invoice_id: str, *, at: int | None = None) -> None:
        """RBF/double-spend removes the Processing on-chain payments (Processing → New)."""
        inv = self.invoice(invoice_id)
        for pm in inv.methods.values():
            for p in pm.payments:
                if p.status == "Processing":
                    p.status = "Invalid"
        at = self.now() if at is None else at
        if inv.status == "Processing":
            inv.status = "New"
            inv.additional_status = "PaidPartial" if inv.net_paid_btc() > 0 else "None"
        self._recompute(inv, at)

    def expire(self, invoice_id: str) -> None:
        """Jump this invoice past its expiration (as if its 15 minutes had elapsed)."""
        inv = self.invoice(invoice_id)
        inv.expiration = min(inv.expiration, self.now())
        self._tick_invoice(inv, self.now())

    def end_monitoring(self, invoice_id: str) -> None:
        inv = self.invoice(invoice_id)
        inv.monitoring_expiration = min(inv.monitoring_expiration, self.now())
        inv.expiration = min(inv.expiration, inv.monitoring_expiration)
        self._tick_invoice(inv, self.now())

    def mark_status(self, invoice_id: str, status: str, *, at: int | None = None) -> SimInvoice:
        """Manual marking, with BTCPay's CanMarkComplete/CanMarkInvalid rules."""
        inv = self.invoice(invoice_id)
        at = self.now() if at is None else at
        marked = inv.additional_status == "Marked"
        if status == "Settled":
            ok = inv.status in ("New", "Processing", "Expired", "Invalid") or (marked and inv.status != "Settled")
        elif status == "Invalid":
            ok = inv.status in ("New", "Processing", "Expired") or (marked and inv.status != "Invalid")
        else:
            ok = False
        if not ok:
            raise SimError(422, "validation", "Status can only be marked to invalid or settled within certain conditions.")
        inv.status = status
        inv.additional_status = "Marked"
        extra = {"manuallyMarked": True}
        if status == "Settled":
            extra["overPaid"] = False
        self.emit(inv.store_id, f"Invoice{status}", {**extra, **_invoice_event(inv)}, at=at)
        return inv

    def tick(self) -> None:
        """Apply time-based transitions (expiry, end of monitoring) at the current clock."""
        now = self.now()
        for inv in list(self.invoices.values()):
            self._tick_invoice(inv, now)

    def _tick_invoice(self, inv: SimInvoice, now: int) -> None:
        if inv.status == "New" and now >= inv.expiration:
            partial = inv.net_paid_btc() > 0
            inv.status = "Expired"
            inv.additional_status = "PaidPartial" if partial else "None"
            self.emit(inv.store_id, "InvoiceExpired", {"partiallyPaid": partial, **_invoice_event(inv)},
                      at=inv.expiration)
            if partial:
                self.emit(inv.store_id, "InvoiceExpiredPaidPartial", {"partiallyPaid": True, **_invoice_event(inv)},
                          at=inv.expiration)
        elif inv.status == "Processing" and now >= inv.monitoring_expiration:
            inv.status = "Invalid"
            self.emit(inv.store_id, "InvoiceInvalid", {"manuallyMarked": False, **_invoice_event(inv)},
                      at=inv.monitoring_expiration)

    def _recompute(self, inv: SimInvoice, at: int) -> None:
        paid = inv.net_paid_btc()  # BTCPay decides on the net paid: network fees do not pay the price
        due = inv.amount_btc()
        tolerance = self.stores[inv.store_id].payment_tolerance
        full = paid > 0 and (inv.amount is None or paid >= due * (1 - tolerance / 100))
        over = inv.amount is not None and paid > due
        all_settled = all(p.status != "Processing" for m in inv.methods.values() for p in m.payments)
        if inv.status == "Expired":
            if full:
                if inv.additional_status != "PaidLate":
                    inv.additional_status = "PaidLate"
                    self.emit(inv.store_id, "InvoicePaidAfterExpiration", _invoice_event(inv), at=at)
            elif paid > 0:
                inv.additional_status = "PaidPartial"
            return
        if inv.status == "New":
            if full:
                inv.status = "Processing"
                inv.additional_status = "PaidOver" if over else "None"
                self.emit(inv.store_id, "InvoiceProcessing", {"overPaid": over, **_invoice_event(inv)}, at=at)
            elif paid > 0:
                inv.additional_status = "PaidPartial"
        if inv.status == "Processing" and all_settled:
            inv.status = "Settled"
            self.emit(inv.store_id, "InvoiceSettled",
                      {"manuallyMarked": False, "overPaid": over, **_invoice_event(inv)}, at=at)

    # -- refunds, pull payments, payouts ---------------------------------------------------------

    def refund(
        self,
        invoice_id: str,
        refund_variant: str,
        *,
        name: str | None = None,
        description: str = "",
        custom_amount: Decimal | None = None,
        custom_currency: str | None = None,
        subtract_percentage: Decimal = Decimal(0),
        can_auto_approve: bool = True,
    ) -> SimPullPayment:
        inv = self.invoice(invoice_id)
        refundable = inv.status in ("Settled", "Invalid") or (
            inv.status == "Expired" and inv.additional_status in ("PaidLate", "PaidOver", "PaidPartial")
        )
        if not refundable:
            raise SimError(400, "non-refundable", "Cannot refund this invoice")
        paid = inv.paid_btc()
        if refund_variant == "RateThen":
            currency, amount, auto = "BTC", paid, True
        elif refund_variant == "CurrentRate":
            currency, amount, auto = "BTC", ((inv.amount or Decimal(0)) / self.rate).quantize(SAT), True
        elif refund_variant == "Fiat":
            currency, amount, auto = inv.currency, inv.amount or Decimal(0), False
        elif refund_variant == "OverpaidAmount":
            if inv.additional_status != "PaidOver":
                raise SimError(422, "validation", "Invoice is not overpaid")
            # accounting.Paid - TotalDue, where TotalDue includes the fees already paid
            currency, amount, auto = "BTC", inv.net_paid_btc() - inv.amount_btc(), True
        elif refund_variant == "Custom":
            if custom_amount is None or not custom_currency:
                raise SimError(422, "validation", "customAmount and customCurrency are required")
            currency, amount = custom_currency.upper(), custom_amount
            auto = currency == "BTC"
        else:
            raise SimError(422, "validation", "Invalid refundVariant")
        amount = (amount * (100 - subtract_percentage) / 100).quantize(SAT if currency == "BTC" else Decimal("0.01"))
        pp = SimPullPayment(
            id=self.new_id(), store_id=inv.store_id, name=name or f"Refund {inv.id}", description=description,
            currency=currency, amount=amount, auto_approve_claims=auto and can_auto_approve,
            starts_at=self.now(),
        )
        self.pull_payments[pp.id] = pp
        inv.refunded_pull_payments.append(pp.id)
        self.emit(inv.store_id, "InvoiceRefund", {**_invoice_event(inv), "pullPaymentId": pp.id})
        return pp

    def create_payout(
        self,
        store_id: str,
        amount: Decimal,
        currency: str = "BTC",
        *,
        destination: str | None = None,
        payout_method_id: str = "BTC-CHAIN",
        pull_payment_id: str | None = None,
        approved: bool = False,
        metadata: dict[str, Any] | None = None,
        at: int | None = None,
    ) -> SimPayout:
        self.store(store_id)
        payout = SimPayout(
            id=self.new_id(), store_id=store_id, date=self.now() if at is None else at,
            destination=destination or ("bc1q" + self.new_id(38).lower()), original_amount=amount,
            original_currency=currency.upper(), payout_currency="BTC", payout_method_id=payout_method_id,
            pull_payment_id=pull_payment_id, metadata=dict(metadata or {}),
        )
        self.payouts[payout.id] = payout
        self.emit(store_id, "PayoutCreated", _payout_event(payout))
        if approved:
            self.approve_payout(store_id, payout.id, payout.revision)
        return payout

    def payout(self, store_id: str, payout_id: str) -> SimPayout:
        p = self.payouts.get(payout_id)
        if p is None or p.store_id != store_id:
            raise SimError(404, "payout-not-found", "The payout is not found")
        return p

    def revise_payout(self, payout_id: str, *, destination: str | None = None, amount: Decimal | None = None) -> SimPayout:
        """The claimant changes the payout before approval: the revision goes up."""
        p = self.payouts[payout_id]
        if destination is not None:
            p.destination = destination
        if amount is not None:
            p.original_amount = amount
        p.revision += 1
        return p

    def approve_payout(self, store_id: str, payout_id: str, revision: int, rate_rule: str | None = None) -> SimPayout:
        p = self.payout(store_id, payout_id)
        if p.state != "AwaitingApproval":
            raise SimError(400, "invalid-state", "The payout is not in a state that can be approved")
        if revision != p.revision:
            # BTCPay's own (wrong) message for this code
            raise SimError(400, "old-revision", "The crypto amount is too small.")
        if rate_rule is not None:
            try:
                rate = Decimal(rate_rule)
            except ArithmeticError:
                rate = self.rate
        else:
            rate = self.rate
        amount = p.original_amount if p.original_currency == "BTC" else p.original_amount / rate
        p.payout_amount = amount.quantize(SAT, rounding=ROUND_UP)
        p.state = "AwaitingPayment"
        self.emit(store_id, "PayoutApproved", _payout_event(p))
        return p

    def cancel_payout(self, store_id: str, payout_id: str) -> SimPayout:
        p = self.payout(store_id, payout_id)
        if p.state in ("Completed", "InProgress"):
            raise SimError(400, "invalid-state", "The payout cannot be cancelled in its state")
        if p.state != "Cancelled":
            p.state = "Cancelled"
            self.emit(store_id, "PayoutUpdated", _payout_event(p))
        return p

    def mark_payout_paid(self, store_id: str, payout_id: str) -> SimPayout:
        p = self.payout(store_id, payout_id)
        if p.state not in ("AwaitingPayment", "InProgress"):
            raise SimError(400, "invalid-state", "The payout is not in a state that can be marked paid")
        p.state = "Completed"
        self.emit(store_id, "PayoutUpdated", _payout_event(p))
        return p

    # -- the store's wallet ----------------------------------------------------------------------
    # On-chain: the invoices' on-chain payments (grouped by txid) plus `wallet_txs`. Lightning: the invoices'
    # Lightning payments in, `ln_payments` (amount and routing fee) out.

    def new_txid(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _approved(self, store_id: str, payout_id: str, method: str) -> SimPayout:
        p = self.payout(store_id, payout_id)
        if p.state not in ("AwaitingPayment", "InProgress") or p.payout_amount is None:
            raise SimError(400, "invalid-state", "The payout is not approved for payment")
        if normalise_pm(p.payout_method_id) != method:
            raise SimError(400, "invalid-payout-method", f"The payout is not a {method} payout")
        return p

    def pay_payouts(self, store_id: str, payout_ids: list[str], *, fee_sats: int | None = None,
                    at: int | None = None) -> SimWalletTx:
        """Pay approved on-chain payouts in one transaction, as BTCPay's payout processor batches them: the
        wallet spends their amounts plus the miner fee; each payout gets the transaction as its proof."""
        paid = [self._approved(store_id, pid, "BTC-CHAIN") for pid in payout_ids]
        fee = Decimal(self.miner_fee_sats if fee_sats is None else fee_sats) * SAT
        out = sum((p.payout_amount or Decimal(0) for p in paid), Decimal(0))
        tx = SimWalletTx(self.new_txid(), store_id, -(out + fee), self.now() if at is None else at)
        self.wallet_txs[tx.txid] = tx
        for p in paid:
            # PayoutTransactionOnChainBlob as BTCPay stores it (Newtonsoft's default, PascalCase)
            p.payment_proof = {"TransactionId": tx.txid, "Candidates": [tx.txid],
                               "ProofType": "PayoutTransactionOnChainBlob", "Accounted": True}
            self.mark_payout_paid(store_id, p.id)
        return tx

    def pay_lightning_payout(self, store_id: str, payout_id: str, *, fee_msat: int | None = None,
                             at: int | None = None) -> SimLightningPayment:
        """Pay an approved Lightning payout from the store's node: the amount plus a routing fee leave it."""
        p = self._approved(store_id, payout_id, "BTC-LN")
        payment = SimLightningPayment(
            payment_hash=self.new_txid(), store_id=store_id, amount_msat=int((p.payout_amount or 0) * MSAT_PER_BTC),
            fee_msat=self.routing_fee_msat if fee_msat is None else fee_msat, created=self.now() if at is None else at,
            bolt11=p.destination, preimage=self.new_txid(),
        )
        self.ln_payments[payment.payment_hash] = payment
        p.payment_proof = {"PaymentHash": payment.payment_hash, "ProofType": "PayoutLightningBlob", "Link": None,
                           "Id": payment.payment_hash, "Preimage": payment.preimage}
        self.mark_payout_paid(store_id, p.id)
        return payment

    def wallet_send(self, store_id: str, amount_btc: Decimal, *, fee_sats: int | None = None,
                    at: int | None = None) -> SimWalletTx:
        """The merchant spends from the store's wallet outside payouts (say, to an exchange)."""
        self.store(store_id)
        fee = Decimal(self.miner_fee_sats if fee_sats is None else fee_sats) * SAT
        tx = SimWalletTx(self.new_txid(), store_id, -(amount_btc + fee), self.now() if at is None else at)
        self.wallet_txs[tx.txid] = tx
        return tx

    def wallet_receive(self, store_id: str, amount_btc: Decimal, *, at: int | None = None) -> SimWalletTx:
        """Bitcoin sent to the store's wallet from elsewhere (not through an invoice)."""
        self.store(store_id)
        tx = SimWalletTx(self.new_txid(), store_id, amount_btc, self.now() if at is None else at)
        self.wallet_txs[tx.txid] = tx
        return tx

    def onchain_transactions(self, store_id: str) -> list[SimWalletTx]:
        """The on-chain wallet's history, newest first: invoice payments by transaction, then the rest."""
        by_txid: dict[str, SimWalletTx] = {}
        for inv in self.invoices.values():
            pm = inv.methods.get("BTC-CHAIN")
            if inv.store_id != store_id or pm is None:
                continue
            for p in pm.payments:
                if p.status == "Invalid":
                    continue
                txid = p.id.rsplit("-", 1)[0]
                tx = by_txid.setdefault(txid, SimWalletTx(txid, store_id, Decimal(0), p.received_date, 0))
                tx.amount += p.value
                tx.confirmations = max(tx.confirmations, 1 if p.status == "Settled" else 0)
        txs = [*by_txid.values(), *(t for t in self.wallet_txs.values() if t.store_id == store_id)]
        txs.reverse()  # the sort is stable: on a tie, the later one comes first
        return sorted(txs, key=lambda t: t.timestamp, reverse=True)

    def onchain_balance(self, store_id: str) -> tuple[Decimal, Decimal]:
        """(confirmed, unconfirmed) BTC of the store's on-chain wallet."""
        txs = self.onchain_transactions(store_id)
        confirmed = sum((t.amount for t in txs if t.confirmations > 0), Decimal(0))
        return confirmed, sum((t.amount for t in txs if t.confirmations == 0), Decimal(0))

    def lightning_local_msat(self, store_id: str) -> int:
        """What the store's Lightning node can spend: Lightning invoice payments in, payouts and fees out."""
        received = sum(
            (int(p.value * MSAT_PER_BTC) for inv in self.invoices.values() if inv.store_id == store_id
             for pm_id, pm in inv.methods.items() if pm_id != "BTC-CHAIN"
             for p in pm.payments if p.status == "Settled"), 0)
        sent = sum(p.amount_msat + p.fee_msat for p in self.ln_payments.values() if p.store_id == store_id)
        return received - sent

    def lightning_payment(self, store_id: str, payment_hash: str) -> SimLightningPayment:
        payment = self.ln_payments.get(payment_hash)
        if payment is None or payment.store_id != store_id:
            raise SimError(404, "payment-not-found", "The payment was not found")
        return payment

    # -- apps ------------------------------------------------------------------------------------

    def create_crowdfund_app(
        self, store_id: str, title: str, *, target_amount: Decimal, target_currency: str = "USD",
        perks: list[dict[str, Any]] | None = None,
    ) -> SimApp:
        app = SimApp(
            id=self.new_id(28), store_id=store_id, name=title, title=title, target_currency=target_currency,
            target_amount=target_amount, created=self.now(), perks=list(perks or []),
        )
        self.apps[app.id] = app
        return app

    def app_invoices(self, app_id: str) -> list[SimInvoice]:
        term = self.apps[app_id].search_term
        return [i for i in self.invoices.values() if term in i.search_terms]

    def contribute(self, app_id: str, amount: Decimal, *, perk: str | None = None, at: int | None = None) -> SimInvoice:
        """A contribution as the Crowdfund page creates it: an invoice in the target currency carrying the
        app's search term, `orderUrl` and the perk's `itemCode` (BTCPay's UICrowdfundController.ContributeToCrowdfund)."""
        app = self.apps[app_id]
        metadata: dict[str, Any] = {"orderId": f"crowdfund-{self.new_id(8)}", "orderUrl": app.order_url()}
        if perk is not None:
            metadata["itemCode"] = perk
        return self.create_invoice(app.store_id, amount, app.target_currency, metadata=metadata,
                                   search_terms=[app.search_term], created=at)

    # -- webhooks --------------------------------------------------------------------------------

    def create_webhook(
        self, store_id: str, url: str, *, secret: str | None = None, enabled: bool = True,
        automatic_redelivery: bool = True, everything: bool = True, specific_events: list[str] | None = None,
    ) -> SimWebhook:
        hook = SimWebhook(
            id=self.new_id(), store_id=store_id, url=url, secret=secret or self.new_id(22),
            enabled=enabled, automatic_redelivery=automatic_redelivery, everything=everything,
            specific_events=list(specific_events or []),
        )
        self.webhooks[hook.id] = hook
        return hook

    def emit(self, store_id: str, event_type: str, payload: dict[str, Any], *, at: int | None = None) -> None:
        """Queue this event to every webhook of the store that wants it."""
        if self.muted:
            return
        ts = self.now() if at is None else at
        for hook in self.webhooks.values():
            if hook.store_id == store_id and hook.wants(event_type):
                delivery_id = self.new_id()
                event = {**payload, "type": event_type, "timestamp": ts, "storeId": store_id}
                delivery = SimDelivery(delivery_id, hook.id, delivery_id, event, ts)
                self._enqueue(hook, delivery, automatic=hook.automatic_redelivery)

    def redeliver(self, webhook_id: str, delivery_id: str) -> SimDelivery:
        old = self.deliveries.get(delivery_id)
        if old is None or old.webhook_id != webhook_id:
            raise SimError(404, "webhookdelivery-not-found", "The delivery does not exist.")
        if old.pruned or self.now() - old.timestamp > DELIVERY_PRUNE_S:
            raise SimError(409, "webhookdelivery-pruned", "This webhook delivery has been pruned")
        new = SimDelivery(self.new_id(), webhook_id, old.original_delivery_id, old.event, old.timestamp)
        self._enqueue(self.webhooks[webhook_id], new, automatic=False)
        return new

    def body_for(self, hook: SimWebhook, delivery: SimDelivery) -> bytes:
        """Pretty-printed (2-space) camelCase JSON, like Newtonsoft's Formatting.Indented."""
        event = delivery.event
        head = {k: v for k, v in event.items() if k in ("manuallyMarked", "overPaid", "partiallyPaid",
                                                          "afterExpiration", "paymentMethodId", "payment")}
        payload: dict[str, Any] = dict(head)
        payload.update({
            "deliveryId": delivery.id,
            "webhookId": hook.id,
            "originalDeliveryId": delivery.original_delivery_id,
            "isRedelivery": delivery.id != delivery.original_delivery_id,
            "type": event["type"],
            "timestamp": event["timestamp"],
            "storeId": event["storeId"],
        })
        payload.update({k: v for k, v in event.items() if k not in payload and k not in head})
        if self.legacy_ids and "paymentMethodId" in payload:
            payload["paymentMethod"] = legacy_pm(payload.pop("paymentMethodId"))
        return json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")

    def queued_bodies(self, webhook_id: str) -> list[bytes]:
        """The bodies waiting to be sent to this webhook (events queue while the app is not running)."""
        hook = self.webhooks[webhook_id]
        return [self.body_for(hook, d) for _, d, _ in self._outbox.get(webhook_id, ())]

    def _enqueue(self, hook: SimWebhook, delivery: SimDelivery, *, automatic: bool) -> None:
        self._outbox.setdefault(hook.id, deque()).append((hook.id, delivery, automatic))
        self._kick(hook.id)

    def _kick(self, webhook_id: str) -> None:
        if self._session is None:
            return  # delivered once the app runs
        task = self._workers.get(webhook_id)
        if task is None or task.done():
            self._workers[webhook_id] = asyncio.get_running_loop().create_task(self._work(webhook_id))

    async def _work(self, webhook_id: str) -> None:
        """Sequential per webhook, retries inline: a failing event delays every later one (#3146)."""
        queue = self._outbox.get(webhook_id)
        while queue:
            _, first, automatic = queue.popleft()
            delays = RETRY_DELAYS_S if automatic else (0,)
            delivery = first
            for attempt, delay in enumerate(delays):
                if attempt:
                    await asyncio.sleep(delay * self.delivery_time_scale)
                    delivery = SimDelivery(self.new_id(), webhook_id, first.original_delivery_id,
                                           first.event, first.timestamp)
                hook = self.webhooks.get(webhook_id)
                if hook is None:
                    return
                if not await self._send(hook, delivery):
                    break

    async def _send(self, hook: SimWebhook, delivery: SimDelivery) -> bool:
        """One HTTP attempt; True if BTCPay would retry it."""
        assert self._session is not None
        delivery.body = self.body_for(hook, delivery)
        delivery.delivery_time = self.now()
        self.deliveries[delivery.id] = delivery
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"BTCPayServer/{SIM_VERSION}",
            "BTCPay-Sig": sign(Secret(hook.secret), delivery.body),
        }
        try:
            async with self._session.post(
                hook.url, data=delivery.body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.delivery_timeout_s), allow_redirects=False,
            ) as resp:
                await resp.read()
                delivery.http_code = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.status = "Failed"
            delivery.error_message = type(exc).__name__
            return True
        if 200 <= resp.status < 300:
            delivery.status = "HttpSuccess"
            return False
        delivery.status = "HttpError"
        delivery.error_message = f"HTTP {resp.status}"
        return resp.status >= 500 or resp.status in (408, 429)

    async def start_delivery(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        for webhook_id in list(self._outbox):
            self._kick(webhook_id)

    async def stop_delivery(self) -> None:
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._workers.clear()
        self._session = None

    async def wait_deliveries_idle(self, timeout_s: float = 5.0) -> None:
        """For tests: until every queued delivery (with its retries) has finished."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(not t.done() for t in self._workers.values()) or any(self._outbox.values()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("webhook deliveries still running")
            await asyncio.sleep(0.01)


def normalise_pm(raw: str) -> str:
    text = raw.strip().replace("_", "-").upper()
    return {
        "BTC": "BTC-CHAIN", "BTC-CHAIN": "BTC-CHAIN", "BTC-LN": "BTC-LN",
        "BTC-LIGHTNINGNETWORK": "BTC-LN", "BTC-LIGHTNINGLIKE": "BTC-LN",
        "BTC-LNURL": "BTC-LNURL", "BTC-LNURLPAY": "BTC-LNURL",
    }.get(text, raw)


def legacy_pm(pm: str) -> str:
    return {"BTC-CHAIN": "BTC", "BTC-LN": "BTC-LightningNetwork", "BTC-LNURL": "BTC-LNURLPAY"}.get(pm, pm)


def _invoice_event(inv: SimInvoice) -> dict[str, Any]:
    return {"invoiceId": inv.id, "metadata": dict(inv.metadata)}


def _payout_event(p: SimPayout) -> dict[str, Any]:
    return {"payoutId": p.id, "pullPaymentId": p.pull_payment_id, "payoutState": p.state}


def _payment_json(p: SimPayment) -> dict[str, Any]:
    return {
        "id": p.id, "receivedDate": p.received_date, "value": str(p.value), "fee": str(p.fee),
        "status": p.status, "destination": p.destination,
    }
