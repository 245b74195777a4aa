"""The 402 gate: priced paths, their challenges (a BTCPay invoice each), credential checks, counters, sales.

A challenge costs a BTCPay invoice (Lightning), read back for its BOLT11, which is decoded with the
`bolt11` package for the payment hash, amount, payee and network; the macaroon then commits to them.
Verifying a retry is memory only: the signing keys are held in memory (`keys.PaywallKeys`) and the
macaroon carries everything else. What the gate answers is counted in memory (bounded: resources x a fixed
set of outcomes) and added to `paywall_counters` by a loop, never as a row per request.

Each paid access is an ordinary BTCPay invoice: the intake and the sync book it like any other, and its
metadata (`itemCode` `paywall:<name>`, `itemDesc`, `paywallResource`) lets the operator map it to its own
QuickBooks Item (and so income account) with the items mapping (docs/accounting.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import bolt11
from pydantic import ValidationError

from sovterm.btcpay.models import Invoice, InvoicePaymentMethod, PaymentMethodKind
from sovterm.config import PaywallEntry, Settings
from sovterm.errors import UserFacingError
from sovterm.paywall import challenge as wire
from sovterm.paywall.keys import PaywallKeys
from sovterm.paywall.macaroon import Grant, MacaroonRefused, key_id, mint, preimage_matches, verify
from sovterm.store.db import Database

log = logging.getLogger("sovterm.paywall")

RESOURCE_METADATA_KEY = "paywallResource"
ITEM_PREFIX = "paywall:"
ORDER_PREFIX = "paywall-"  # the invoices' orderId: indexed (0016) for the sales per path
LINKS_BUCKET = "pay-links"  # the counters of every pay link's machine answers
CHECKOUT_MINUTES = 15  # life of a priced path's BTCPay invoice (the 402 challenge)
LINK_RECEIPT_S = 86_400  # a pay link's credential keeps proving the payment this long after its invoice expires
NO_LIGHTNING_RECHECK_S = 300  # a store found without Lightning is not asked again (no invoice per request) for this long
DECODED_CACHE = 256
BTCPAY_TIMEOUT_S = 15.0


class NoLightning(UserFacingError):
    """The store's invoice has no Lightning (BOLT11) payment method: nothing a machine can pay."""


class PaywallBTCPay(Protocol):
    async def create_invoice(self, store_id: str, *, amount: Decimal | None, currency: str,
                             metadata: dict[str, Any] | None = None, expiration_minutes: int | None = None) -> Invoice: ...

    async def get_invoice_payment_methods(self, store_id: str, invoice_id: str) -> list[InvoicePaymentMethod]: ...


BTCPayFor = Callable[[str], Awaitable[PaywallBTCPay]]


@dataclass(frozen=True)
class Priced:
    entry: PaywallEntry
    source: str  # "config" | "added"

    @property
    def resource(self) -> str:
        return ITEM_PREFIX + self.entry.name

    def price(self) -> tuple[Decimal, str]:
        if self.entry.price_sats is not None:
            return Decimal(self.entry.price_sats) / Decimal(100_000_000), "BTC"
        assert self.entry.price is not None and self.entry.currency is not None
        return Decimal(self.entry.price), self.entry.currency.upper()


@dataclass(frozen=True)
class Challenge:
    macaroon: bytes
    invoice: wire.Invoice402
    description: str


def lightning_of(methods: list[InvoicePaymentMethod]) -> str | None:
    """The BOLT11 of an invoice's Lightning payment method (not LNURL: that has no invoice yet)."""
    for pm in methods:
        if pm.kind == PaymentMethodKind.LIGHTNING and pm.destination and pm.activated is not False:
            return pm.destination.removeprefix("lightning:")
    return None


def decode_bolt11(text: str) -> wire.Invoice402:
    """Decode BTCPay's BOLT11 with the `bolt11` package; refuse one a 402 challenge cannot carry."""
    try:
        decoded = bolt11.decode(text)
    except Exception as exc:  # the library raises a family of its own exceptions, and ValueError
        raise UserFacingError(f"BTCPay sent a Lightning invoice that does not decode: {type(exc).__name__}") from None
    if not decoded.amount_msat or not decoded.payment_hash:
        raise UserFacingError("BTCPay's Lightning invoice names no amount", fix="price the resource or link")
    network = wire.NETWORKS.get(decoded.currency)
    if network is None:
        raise UserFacingError(f"BTCPay's Lightning invoice is for an unknown network ({decoded.currency})")
    return wire.Invoice402(text, bytes.fromhex(decoded.payment_hash), int(decoded.amount_msat), decoded.payee or "",
                           network, decoded.date + (decoded.expiry or 3600))


class Gate:
    """`services.paywall`."""

    def __init__(self, db: Database, keys: PaywallKeys, settings: Callable[[], Settings], btcpay_for: BTCPayFor, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.keys = keys
        self.settings = settings
        self.btcpay_for = btcpay_for
        self.clock = clock
        self.priced: dict[str, Priced] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        self._decoded: OrderedDict[str, wire.Invoice402] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Task[Challenge]] = {}
        self._no_lightning: dict[str, float] = {}  # store id -> when found without Lightning

    def now(self) -> int:
        return int(self.clock())

    # -- the priced paths ------------------------------------------------------------------------

    async def load(self) -> None:
        """The priced paths: the config file's `[[paywall]]` entries, then those added over the socket."""
        priced = {e.name: Priced(e, "config") for e in self.settings().paywall}
        for name, entry in await self.db.fetchall("SELECT name, entry FROM paywall_resources ORDER BY name"):
            if name in priced:
                log.warning("paywall %s: the config file's entry overrides the one added with `sovterm paywall add`", name)
                continue
            try:
                priced[name] = Priced(PaywallEntry.model_validate(json.loads(entry)), "added")
            except ValidationError as exc:
                log.error("paywall %s: stored entry no longer valid, skipped: %s", name, exc.errors()[0]["msg"])
        self.priced = priced

    def match(self, path: str) -> tuple[Priced, str] | None:
        """The priced path whose prefix is the longest match, and the rest of the path."""
        best: Priced | None = None
        for p in self.priced.values():
            prefix = p.entry.path
            if (path.startswith(prefix) or path == prefix.rstrip("/")) and (
                best is None or len(prefix) > len(best.entry.path)
            ):
                best = p
        if best is None:
            return None
        return best, path[len(best.entry.path):]

    async def add(self, entry: PaywallEntry, *, actor: str) -> Priced:
        if entry.name in self.priced:
            raise UserFacingError(f"a priced path named {entry.name!r} exists",
                                  fix="choose another name, or `sovterm paywall remove` it first")
        clash = next((p for p in self.priced.values() if p.entry.path == entry.path), None)
        if clash is not None:
            raise UserFacingError(f"{entry.path} is already priced by {clash.entry.name!r}",
                                  fix="choose another path, or remove that entry first")
        await self.db.write("INSERT INTO paywall_resources(name, entry, created_at, created_by) VALUES(?,?,?,?)",
                            (entry.name, entry.model_dump_json(exclude_none=True), self.now(), actor))
        self.priced[entry.name] = Priced(entry, "added")
        return self.priced[entry.name]

    async def remove(self, name: str) -> Priced:
        priced = self.priced.get(name)
        if priced is None:
            raise UserFacingError(f"no priced path named {name!r}", fix="see `sovterm paywall list`")
        if priced.source == "config":
            raise UserFacingError(f"{name!r} comes from the config file's [[paywall]] entries",
                                  fix="delete the entry from the config file and restart the daemon")
        await self.db.write("DELETE FROM paywall_resources WHERE name = ?", (name,))
        del self.priced[name]
        return priced

    # -- challenges ------------------------------------------------------------------------------

    async def _store_for(self, priced: Priced) -> str:
        if priced.entry.store_id:
            return priced.entry.store_id
        rows = await self.db.fetchall("SELECT store_id FROM btcpay_stores WHERE selected = 1")
        if len(rows) != 1:
            raise UserFacingError(f"paywall {priced.entry.name}: {'no' if not rows else 'several'} BTCPay stores selected",
                                  fix="set store_id in its [[paywall]] entry")
        return str(rows[0][0])

    async def lightning_invoice(self, store_id: str, invoice_id: str) -> wire.Invoice402:
        btcpay = await self.btcpay_for(store_id)
        bolt = lightning_of(await btcpay.get_invoice_payment_methods(store_id, invoice_id))
        if bolt is None:
            self._no_lightning[store_id] = time.monotonic()
            raise NoLightning(f"BTCPay store {store_id} offers no Lightning payment method",
                              fix="enable Lightning (BTC-LN) on the store in BTCPay; HTTP 402 payments need it")
        cached = self._decoded.get(bolt)
        if cached is None:  # ~10 ms of pure Python: off the event loop, so the listener keeps answering
            cached = self._decoded[bolt] = await asyncio.to_thread(decode_bolt11, bolt)
            if len(self._decoded) > DECODED_CACHE:
                self._decoded.popitem(last=False)
        return cached

    async def _grant_for(self, invoice: wire.Invoice402, resource: str, store_id: str, invoice_id: str,
                         valid_until: int) -> bytes:
        kid, key = await self.keys.active()
        grant = Grant(invoice.payment_hash, resource, invoice.amount_msat, valid_until, store_id, invoice_id, invoice.network)
        return mint(grant, kid, key)

    async def challenge_for_invoice(self, resource: str, store_id: str, invoice_id: str, description: str) -> Challenge:
        """A challenge on an invoice reserved elsewhere (a pay link's): its credential proves the payment for a
        day after the invoice expires."""
        async with asyncio.timeout(BTCPAY_TIMEOUT_S):
            invoice = await self.lightning_invoice(store_id, invoice_id)
        mac = await self._grant_for(invoice, resource, store_id, invoice_id, invoice.expires_at + LINK_RECEIPT_S)
        return Challenge(mac, invoice, description)

    async def challenge(self, priced: Priced, requester: str) -> Challenge:
        """A new BTCPay invoice for one access to `priced`. Concurrent first requests of one client for one
        path share one invoice (the second waits for the first's challenge)."""
        key = (requester, priced.entry.name)
        task = self._inflight.get(key)
        if task is None:
            task = self._inflight[key] = asyncio.ensure_future(self._new_challenge(priced))
            task.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(task)

    def _done(self, key: tuple[str, str], task: asyncio.Task[Challenge]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone (clients that hung up)

    async def _new_challenge(self, priced: Priced) -> Challenge:
        store_id = await self._store_for(priced)
        found_without = self._no_lightning.get(store_id)
        if found_without is not None and time.monotonic() - found_without < NO_LIGHTNING_RECHECK_S:
            raise NoLightning(f"BTCPay store {store_id} offers no Lightning payment method",
                              fix="enable Lightning (BTC-LN) on the store in BTCPay; HTTP 402 payments need it")
        amount, currency = priced.price()
        entry = priced.entry
        metadata = {RESOURCE_METADATA_KEY: entry.name, "itemCode": ITEM_PREFIX + entry.name,
                    "itemDesc": entry.description or f"Access to {entry.path}", "orderId": ORDER_PREFIX + entry.name}
        async with asyncio.timeout(BTCPAY_TIMEOUT_S):
            btcpay = await self.btcpay_for(store_id)
            created = await btcpay.create_invoice(store_id, amount=amount, currency=currency, metadata=metadata,
                                                  expiration_minutes=CHECKOUT_MINUTES)
            invoice = await self.lightning_invoice(store_id, created.id)
        mac = await self._grant_for(invoice, priced.resource, store_id, created.id,
                                    invoice.expires_at + entry.access_s)
        return Challenge(mac, invoice, metadata["itemDesc"])

    # -- the hot path ----------------------------------------------------------------------------

    def check(self, credential: wire.Credential, resource: str) -> Grant:
        """The grant a credential proves for `resource`, from memory alone; `MacaroonRefused` with the reason
        and status otherwise."""
        key = self.keys.live.get(key_id(credential.macaroon))
        if key is None:
            raise MacaroonRefused("unknown or retired key")
        grant = verify(credential.macaroon, key, now=self.now())
        if grant.resource != resource:
            raise MacaroonRefused("token for another resource", 403)
        if not preimage_matches(grant, credential.preimage):
            raise MacaroonRefused("wrong preimage")
        return grant

    def count(self, resource: str, outcome: str) -> None:
        self.counts[(resource, outcome)] += 1

    # -- counters and sales ----------------------------------------------------------------------

    async def flush(self) -> dict[str, Any]:
        """Add the counts kept in memory to `paywall_counters` (one row per resource and outcome)."""
        pending, self.counts = self.counts, Counter()
        if pending:
            now = self.now()
            async with self.db.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO paywall_counters(resource, outcome, count, updated_at) VALUES(?,?,?,?) "
                    "ON CONFLICT(resource, outcome) DO UPDATE SET count = count + excluded.count, "
                    "updated_at = excluded.updated_at",
                    [(r, o, n, now) for (r, o), n in pending.items()])
        return {"counted": sum(pending.values())}

    async def counters(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for resource, outcome, n in await self.db.fetchall("SELECT resource, outcome, count FROM paywall_counters"):
            out.setdefault(resource, {})[outcome] = int(n)
        for (resource, outcome), n in self.counts.items():
            out.setdefault(resource, {})[outcome] = out.get(resource, {}).get(outcome, 0) + n
        return out

    async def sales(self) -> dict[str, dict[str, Decimal | int]]:
        """Settled BTCPay invoices per priced path (its name) and currency: how many, and the total. Read
        through the partial index on the gate's order ids (`paywall-<name>`), never the whole ledger."""
        rows = await self.db.fetchall(
            "SELECT order_id, currency, amount FROM invoices WHERE order_id LIKE 'paywall-%' AND status = 'Settled' "
            "AND json_extract(metadata, '$." + RESOURCE_METADATA_KEY + "') IS NOT NULL")
        out: dict[str, dict[str, Decimal | int]] = {}
        for order_id, currency, amount in rows:
            per = out.setdefault(f"{order_id.removeprefix(ORDER_PREFIX)}|{currency}", {"count": 0, "total": Decimal(0)})
            per["count"] = int(per["count"]) + 1
            per["total"] = Decimal(per["total"]) + Decimal(amount or 0)
        return out
