"""Building blocks for sync tests: an in-process QuickBooks simulator with a ready client, a ledger
writer that mimics the BTCPay hooks, and a `Books` implementation over the raw primitives."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sovterm.btcpay import ledger
from sovterm.btcpay.models import Invoice, InvoicePaymentMethod
from sovterm.qbo.client import QBOClient
from sovterm.qbo.limiter import RealmLimiter
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.postings import CurrencyContext, marker_of
from sovterm.sim.qbo import QBOSimState
from sovterm.store.secrets import Secret
from sovterm.sync import queue

REALM = "9341450000000001"
STORE = "StoreA"
ACCESS = "AT-sync-tests"
_obs = itertools.count(int(time.time() * 1000))


class StaticTokens:
    """A TokenManager stand-in: the simulator knows this access token (issued in `grant`)."""

    async def access_token(self, realm_id: str) -> Secret:
        return Secret(ACCESS)

    async def force_refresh(self, realm_id: str, rejected: Secret) -> Secret:
        return Secret(ACCESS)

    async def mark_reconnect_required(self, realm_id: str, reason: str) -> None:
        pass


def grant(state: QBOSimState, realm: str = REALM) -> None:
    state.access_tokens[ACCESS] = (realm, time.time() + 86_400, "rt")


def make_client(base: str, session: Any, *, limiter: RealmLimiter | None = None, timeout_s: float = 2.0) -> QBOClient:
    return QBOClient(base, REALM, StaticTokens(), session, limiter=limiter or RealmLimiter(window_s=0.6),  # type: ignore[arg-type]
                     timeout_s=timeout_s, backoff_base_s=0.005, backoff_max_s=0.02, max_attempts=4)


def seeded_mapping(state: QBOSimState, store_id: str = STORE, realm: str = REALM) -> StoreMapping:
    books = state.books[realm]

    def find(entity: str, name: str) -> str:
        return next(d["Id"] for d in books.table(entity).values() if d.get("Name") == name)

    return StoreMapping(store_id=store_id, realm_id=realm, deposit_account_id=find("Account", "Undeposited Funds"),
                        income_account_id=find("Account", "Sales of Product Income"), item_id=find("Item", "Services"),
                        fee_account_id=find("Account", "Bank Charges"),
                        payment_method_id=find("PaymentMethod", "Cash"))


@dataclass
class DirectBooks:
    """`Books` over a client and a fixed mapping; `ok`/`reason` steer `can_sync`."""

    qbo: QBOClient
    mappings: dict[str, StoreMapping]
    home: str = "USD"
    multicurrency: bool = False
    ok: bool = True
    reason: str = ""

    async def can_sync(self) -> tuple[bool, str]:
        return self.ok, self.reason

    async def mapping(self, store_id: str) -> StoreMapping | None:
        return self.mappings.get(store_id)

    async def currency(self) -> CurrencyContext:
        return CurrencyContext(self.home, self.multicurrency)

    async def client(self) -> QBOClient:
        return self.qbo


def invoice(
    invoice_id: str, *, status: str = "Settled", extra: str = "None", amount: str | None = "100.00",
    currency: str = "USD", rate: str = "50000", payments: list[tuple[str, ...]] | None = None,
    paid_amount: str | None = None, created: int = 1_767_225_600, metadata: dict[str, Any] | None = None,
) -> tuple[Invoice, list[InvoicePaymentMethod]]:
    """An invoice and its payment methods; payments are (method id, BTC amount, status[, BTC network fee])."""
    pays = payments if payments is not None else [("BTC-CHAIN", "0.002", "Settled")]
    methods: dict[str, list[dict[str, Any]]] = {}
    for n, (pm, btc, st, *fee) in enumerate(pays):
        methods.setdefault(pm, []).append({"id": f"{invoice_id}-tx{n}-0", "receivedDate": created + 60 * (n + 1),
                                           "value": btc, "fee": fee[0] if fee else "0", "status": st})
    pm_models = [InvoicePaymentMethod.model_validate({
        "paymentMethodId": pm, "currency": "BTC", "rate": rate, "payments": ps,
        "paymentMethodPaid": str(sum(Decimal(p["value"]) for p in ps)),
    }) for pm, ps in methods.items()]
    if paid_amount is None:
        btc = sum((Decimal(b) - Decimal(fee[0] if fee else 0) for _, b, st, *fee in pays if st != "Invalid"),
                  Decimal(0))
        paid_amount = str((btc * Decimal(rate)).quantize(Decimal("0.01")))
    inv = Invoice.model_validate({
        "id": invoice_id, "storeId": STORE, "amount": amount, "paidAmount": paid_amount, "currency": currency,
        "createdTime": created, "status": status, "additionalStatus": extra, "metadata": metadata or {},
    })
    inv.observed_at_ms = next(_obs)
    return inv, pm_models


async def put(db: Any, inv: tuple[Invoice, list[InvoicePaymentMethod]], store_id: str = STORE) -> None:
    """What the BTCPay hooks do: upsert the snapshot and enqueue its job in one transaction."""
    model, methods = inv
    model.observed_at_ms = next(_obs)
    async with db.transaction() as conn:
        await ledger.upsert_invoice(conn, store_id, model, methods)
        await queue.enqueue(conn, store_id, model.id)


def docs(state: QBOSimState, entity: str, realm: str = REALM) -> list[dict[str, Any]]:
    return [d for d in state.documents(realm, entity) if marker_of(d) is not None]
