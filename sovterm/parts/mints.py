"""The mints part: the trusted-mint monitor (read-only health checks of each Cashu mint the operator
trusts), its loop, and the `mints.*` control methods. Mint states reach the alerts through the readiness
checks (`checks["mints"]`), so the status page, `sovterm status`, the TUI and notifications show them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from pydantic import BaseModel

from sovterm.btcpay import ledger as btcpay_ledger
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayNotFound
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.loops import LoopSpec
from sovterm.mints.monitor import MintMonitor
from sovterm.mints.probe import Reading
from sovterm.parts.base import Part
from sovterm.services import Services


class UrlParams(BaseModel):
    url: str


class HistoryEntry(Result):
    at: int
    state: str
    detail: str


class MintState(Result):
    url: str
    source: str  # config | operator | btcpay:<store id> (BTCNutServer's store settings)
    checked: bool
    state: str  # ok | degraded | down | unchecked
    problems: list[str] = []
    at: float | None = None
    latency_ms: int | None = None
    name: str | None = None
    version: str | None = None
    motd: str | None = None
    skew_s: float | None = None
    minting_disabled: bool | None = None
    melting_disabled: bool | None = None
    active_keysets: list[str] = []
    inactive_keysets: int = 0
    input_fee_ppk: int | None = None
    history: list[HistoryEntry]


class MintChanged(Result):
    url: str


class MintsChecked(Result):
    mints: int
    ok: int = 0
    degraded: int = 0
    down: int = 0
    btcpay_notes: list[str] = []  # what could not be read of BTCNutServer's trusted mints, and why


def register(server: ControlServer, services: Services) -> None:
    @server.method("mints.list", role=Role.VIEWER, part="mints")
    async def mints_list(ctx: CallContext) -> list[MintState]:
        """The trusted mints, each with its last check and its history (newest first)."""
        return [MintState.model_validate(m) for m in await ctx.part.listing()]

    @server.method("mints.add", role=Role.ADMIN, params=UrlParams, part="mints", audit="mints.add")
    async def mints_add(ctx: CallContext, url: str) -> MintChanged:
        """Trust a mint (its base URL) and check it now."""
        url = await ctx.part.add(url)
        ctx.audit(subject=url)
        await ctx.part.check()
        return MintChanged(url=url)

    @server.method("mints.remove", role=Role.ADMIN, params=UrlParams, part="mints", audit="mints.remove")
    async def mints_remove(ctx: CallContext, url: str) -> MintChanged:
        """Stop checking a mint the operator added (and forget its history)."""
        url = await ctx.part.remove(url)
        ctx.audit(subject=url)
        return MintChanged(url=url)

    @server.method("mints.check", role=Role.VIEWER, part="mints")
    async def mints_check(ctx: CallContext) -> MintsChecked:
        """Check every trusted mint now (read-only requests: never a quote, never funds)."""
        return MintsChecked.model_validate(await ctx.part.check())


@asynccontextmanager
async def mints_stage(services: Services) -> AsyncIterator[None]:
    settings = services.settings.mints

    def changed(url: str, reading: Reading, what: list[str]) -> None:
        services.bus.publish("mint.state", url=url, state=reading.state, changes=what)

    # its own session: a mint's TLS, redirects and time limits have nothing to do with BTCPay's calls
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as http:
        services.mints = MintMonitor(services.require_db(), http, configured=settings.trusted,
                                     timeout_s=settings.timeout_s, max_skew_s=settings.max_skew_s, on_change=changed,
                                     listed_in_btcpay=lambda: listed_in_btcpay(services))
        try:
            yield
        finally:
            services.mints = None


async def listed_in_btcpay(services: Services) -> tuple[dict[str, str], list[str]]:
    """The mints BTCNutServer trusts in each followed store's Cashu settings ({url: "btcpay:<store>"}), read
    through BTCPay's own store payment-method API (`…/payment-methods/CASHU?includeConfig=true`, which
    needs `btcpay.store.canmodifystoresettings`), and a note per store that could not be read."""
    btcpay = services.btcpay
    if btcpay is None or not btcpay.connected:
        return {}, []
    found: dict[str, str] = {}
    notes: list[str] = []
    for store_id in await btcpay_ledger.selected_stores(services.require_db()):
        try:
            config = await btcpay.client_for_store(store_id).get_store_payment_method_config(store_id, "CASHU")
        except BTCPayNotFound:
            continue  # the store takes no Cashu, or the plugin is not installed
        except BTCPayAuthError:
            notes.append(f"store {store_id}: BTCPay shows the Cashu settings only to an API key with "
                         "btcpay.store.canmodifystoresettings; without it, list the mints with `sovterm mints add`")
            continue
        for url in (config or {}).get("trustedMintsUrls") or []:
            if isinstance(url, str):
                found.setdefault(url, f"btcpay:{store_id}")
    return found, notes


def _loops(services: Services) -> list[LoopSpec]:
    async def check() -> dict[str, Any]:
        assert services.mints is not None
        return await services.mints.check()

    return [LoopSpec("mints", services.settings.mints.check_interval_s, check)]


PART = Part("mints", stage=mints_stage, loops=_loops, methods=register)
