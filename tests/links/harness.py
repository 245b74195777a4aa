"""Shared by the links and payouts tests: a migrated database, both simulators on port 0, and clients
wired to them the way the daemon's services would hand them out."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from sovterm.btcpay.client import BTCPayClient
from sovterm.config import Settings
from sovterm.links.service import LinkService
from sovterm.links.tokens import SigningKeys
from sovterm.qbo.client import QBOClient
from sovterm.qbo.limiter import RealmLimiter
from sovterm.sim import btcpay as btcpay_sim
from sovterm.sim import qbo as qbo_sim
from sovterm.sim.btcpay_state import BTCPaySimState
from sovterm.sim.qbo import QBOSimState
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretBox, SecretStore

REALM = "9341450000000001"


class StaticTokens:
    """Stands in for the QBO TokenManager: one access token minted straight into the simulator."""

    def __init__(self, token: str) -> None:
        self.token = Secret(token)

    async def access_token(self, realm_id: str) -> Secret:
        return self.token

    async def force_refresh(self, realm_id: str, rejected: Secret) -> Secret:
        return self.token

    async def mark_reconnect_required(self, realm_id: str, reason: str) -> None:
        return None


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    tmp: Path
    db: Database
    secrets: SecretStore
    session: aiohttp.ClientSession
    btcpay_state: BTCPaySimState
    btcpay_url: str
    store_id: str
    api_key: str
    qbo_state: QBOSimState
    qbo_url: str
    settings: Settings
    clock: Clock
    btcpay_calls: int = 0
    audited: list[tuple[str | None, dict[str, Any], str]] = field(default_factory=list)

    async def audit(self, subject: str | None, detail: dict[str, Any], outcome: str, *, conn: Any = None) -> None:
        """The audit recorder a control call hands the service; here its rows are kept in `audited`."""
        self.audited.append((subject, detail, outcome))

    def btcpay_client(self) -> BTCPayClient:
        return BTCPayClient(self.btcpay_url, Secret(self.api_key), self.session, timeout_s=5, retry_attempts=0)

    async def btcpay_for(self, store_id: str) -> BTCPayClient:
        return self.btcpay_client()

    async def qbo(self) -> QBOClient:
        return QBOClient(
            self.qbo_url, REALM, StaticTokens("AT-links-test"), self.session,  # type: ignore[arg-type]
            limiter=RealmLimiter(), timeout_s=5, max_attempts=1, backoff_base_s=0.01, backoff_max_s=0.02,
        )

    def links(self, **links_settings: Any) -> LinkService:
        if links_settings:
            self.settings = self.settings.model_copy(
                update={"links": self.settings.links.model_copy(update=links_settings)})
        return LinkService(self.db, SigningKeys(self.db, self.secrets, clock=self.clock), lambda: self.settings,
                           self.btcpay_for, self.qbo, clock=self.clock)

    def qbo_invoice(self, doc_number: str) -> dict[str, Any]:
        return next(d for d in self.qbo_state.documents(REALM, "Invoice") if d.get("DocNumber") == doc_number)

    def btcpay_invoices(self) -> list[Any]:
        return [i for i in self.btcpay_state.invoices.values() if i.store_id == self.store_id]


async def make_world(tmp: Path) -> AsyncIterator[World]:
    db = await Database.open(tmp / "t.db")
    secrets = SecretStore(db, SecretBox(os.urandom(32)))
    bstate = BTCPaySimState(seed=3)
    store = bstate.create_store("Links test store")
    key = bstate.create_api_key([p + ":" + store.id for p in btcpay_sim.DEMO_PERMISSIONS])
    qstate = QBOSimState(seed=3)
    qbo_sim.seed_company(qstate, REALM, invoices=3)
    qstate.access_tokens["AT-links-test"] = (REALM, time.time() + 3600, "RT-unused")
    bserver = TestServer(btcpay_sim.create_app(bstate), port=0)
    qserver = TestServer(qbo_sim.create_app(qstate), port=0)
    await bserver.start_server()
    await qserver.start_server()
    await db.write("INSERT INTO btcpay_stores(store_id, name, selected, updated_at) VALUES(?,?,1,?)",
                   (store.id, store.name, int(time.time())))
    settings = Settings(data_dir=tmp, listener={"public_url": "https://shop.example"})
    async with aiohttp.ClientSession() as session:
        yield World(tmp, db, secrets, session, bstate, str(bserver.make_url("")).rstrip("/"), store.id, key,
                    qstate, str(qserver.make_url("")).rstrip("/"), settings, Clock(bstate.now()))
    await bserver.close()
    await qserver.close()
    await db.close()


def dec(value: Any) -> Decimal:
    return Decimal(str(value))
