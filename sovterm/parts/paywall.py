"""The paywall part (HTTP 402 for machines): the gate and its signing keys, the counters' loop, the priced
paths' route, and the `paywall.*` control methods. The pay links' machine answer is wired in `web/links.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from sovterm.amounts import plain
from sovterm.config import PaywallEntry
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.paywall.gate import LINKS_BUCKET, Gate, Priced
from sovterm.paywall.keys import PaywallKeys
from sovterm.services import Services
from sovterm.web.paywall import add_routes

FLUSH_INTERVAL_S = 30
#: Outcomes that are not refusals (everything else a credential or a request can earn is one).
NOT_REFUSED = ("challenge", "paid")


class AddParams(BaseModel):
    name: str
    path: str
    price: str | None = None
    currency: str | None = None
    price_sats: int | None = None
    access_s: int = 3600
    upstream: str | None = None
    directory: str | None = None
    store_id: str | None = None
    description: str = ""


class NameParams(BaseModel):
    name: str = Field(min_length=1, max_length=40)


class KidParams(BaseModel):
    kid: str = Field(min_length=8, max_length=8)


class PricedPath(Result):
    """A priced path: what it costs, how long a payment grants access, and what it serves."""

    name: str
    path: str
    price: str  # "0.25 USD" or "500 sats"
    access_s: int
    target: str  # the upstream URL or the directory
    source: str  # config | added
    store_id: str | None
    description: str


class Sales(Result):
    """One resource's sales (settled BTCPay invoices, per currency) and what the gate answered."""

    resource: str  # a priced path's name, or `pay-links`
    currency: str | None
    sold: int
    total: str
    challenges: int
    paid_requests: int
    refused: int
    refusals: dict[str, int]


class KeyInfo(Result):
    kid: str
    created_at: int
    retired_at: int | None
    active: bool


class KeyRotated(Result):
    active: str


class KeyRetired(Result):
    retired: str


def _row(p: Priced) -> PricedPath:
    e = p.entry
    price = f"{e.price_sats} sats" if e.price_sats is not None else f"{e.price} {e.currency}"
    return PricedPath(name=e.name, path=e.path, price=price, access_s=e.access_s,
                      target=e.upstream or str(e.directory), source=p.source, store_id=e.store_id,
                      description=e.description)


async def sales_rows(gate: Gate) -> list[Sales]:
    sold = await gate.sales()
    counted = await gate.counters()
    names = sorted(set(gate.priced) | {LINKS_BUCKET} | set(counted) | {k.split("|")[0] for k in sold})
    out = []
    for name in names:
        counts = counted.get(name, {})
        refusals = {k: v for k, v in sorted(counts.items()) if k not in NOT_REFUSED}
        per_currency = [(k.split("|", 1)[1], v) for k, v in sorted(sold.items()) if k.split("|")[0] == name]
        for currency, figures in per_currency or [(None, {"count": 0, "total": Decimal(0)})]:
            out.append(Sales(resource=name, currency=currency, sold=int(figures["count"]),
                             total=plain(Decimal(figures["total"])), challenges=counts.get("challenge", 0),
                             paid_requests=counts.get("paid", 0), refused=sum(refusals.values()), refusals=refusals))
    return out


def register(server: ControlServer, services: Services) -> None:
    @server.method("paywall.list", role=Role.VIEWER, part="paywall")
    async def paywall_list(ctx: CallContext) -> list[PricedPath]:
        """The priced paths (config file's [[paywall]] entries and those added here)."""
        return [_row(p) for p in sorted(ctx.part.priced.values(), key=lambda p: p.entry.path)]

    @server.method("paywall.add", role=Role.ADMIN, params=AddParams, part="paywall", audit="paywall.add")
    async def paywall_add(ctx: CallContext, **fields: Any) -> PricedPath:
        """Put a price on a path: an upstream on this machine or a directory, sold over HTTP 402."""
        ctx.audit(subject=fields["name"])
        if fields.get("directory"):
            fields["directory"] = Path(fields["directory"])
        try:
            entry = PaywallEntry.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: "
                                 f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors())
            raise UserFacingError(f"invalid priced path: {problems}",
                                  fix="correct the values (docs/configuration.md, [[paywall]])") from None
        return _row(await ctx.part.add(entry, actor=ctx.peer.user))

    @server.method("paywall.remove", role=Role.ADMIN, params=NameParams, part="paywall", audit="paywall.remove")
    async def paywall_remove(ctx: CallContext, name: str) -> PricedPath:
        """Stop selling a path added with `paywall add` (tokens already sold for it stop working)."""
        ctx.audit(subject=name)
        return _row(await ctx.part.remove(name))

    @server.method("paywall.sales", role=Role.VIEWER, part="paywall")
    async def paywall_sales(ctx: CallContext) -> list[Sales]:
        """Sales per resource (settled invoices) and the gate's counts: challenges, paid requests, refusals."""
        return await sales_rows(ctx.part)

    @server.method("paywall.keys.list", role=Role.VIEWER, part="paywall")
    async def keys_list(ctx: CallContext) -> list[KeyInfo]:
        """The macaroon-signing keys: which is active, which are retired."""
        return [KeyInfo.model_validate(k.__dict__) for k in await ctx.part.keys.list()]

    @server.method("paywall.keys.rotate", role=Role.ADMIN, part="paywall", audit="paywall.keys.rotate")
    async def keys_rotate(ctx: CallContext) -> KeyRotated:
        """New challenges get a new signing key; tokens signed before keep working until their key is retired."""
        kid = await ctx.part.keys.rotate()
        ctx.audit(subject=kid, outcome="rotated")
        return KeyRotated(active=kid)

    @server.method("paywall.keys.retire", role=Role.ADMIN, params=KidParams, part="paywall",
                   audit="paywall.keys.retire")
    async def keys_retire(ctx: CallContext, kid: str) -> KeyRetired:
        """Destroy a signing key: every token it signed stops working at once."""
        ctx.audit(subject=kid)
        await ctx.part.keys.retire(kid)
        ctx.audit(subject=kid, outcome="retired")
        return KeyRetired(retired=kid)


@asynccontextmanager
async def paywall_stage(services: Services) -> AsyncIterator[None]:
    """The gate, its keys loaded into memory, and the priced paths (config file, then those added)."""
    db = services.require_db()

    async def btcpay_for(store_id: str) -> Any:
        btcpay = services.btcpay
        if btcpay is None:
            raise UserFacingError("BTCPay is not connected", fix="run `sovterm setup btcpay`")
        return btcpay.client_for_store(store_id)

    keys = PaywallKeys(db, services.require_secrets())
    await keys.load()
    gate = Gate(db, keys, lambda: services.settings, btcpay_for)
    await gate.load()
    services.paywall = gate
    try:
        yield
    finally:
        services.paywall = None
        await gate.flush()


def _loops(services: Services) -> list[LoopSpec]:
    async def flush() -> dict[str, Any]:
        assert services.paywall is not None
        return await services.paywall.flush()

    return [LoopSpec("paywall.counters", FLUSH_INTERVAL_S, flush)]


PART = Part("paywall", stage=paywall_stage, loops=_loops, routes=add_routes, methods=register)
