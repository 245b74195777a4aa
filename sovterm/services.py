"""The daemon's running parts in one typed object, handed to routes, loops and control methods.

Fields are filled by the daemon's `cleanup_ctx` stages in order; a part reads what it needs from here
instead of reaching for globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sovterm.alerts import AlertTracker
from sovterm.events import EventBus
from sovterm.health import Connectors, Heartbeats, Metrics
from sovterm.logs import LogSetup
from sovterm.store.audit import SecurityEvents

if TYPE_CHECKING:
    import aiohttp
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from sovterm.analytics.campaigns import Campaigns
    from sovterm.analytics.service import Analytics
    from sovterm.angor.monitor import AngorMonitor
    from sovterm.books.service import BooksService
    from sovterm.btcpay.intake import BTCPayIntake
    from sovterm.btcpay.service import BTCPayService
    from sovterm.config import Settings
    from sovterm.control.server import ControlServer
    from sovterm.links.pay import PayPage
    from sovterm.links.service import LinkService
    from sovterm.mints.monitor import MintMonitor
    from sovterm.notify.service import NotifyService
    from sovterm.payouts.service import PayoutService
    from sovterm.paywall.gate import Gate
    from sovterm.qbo.service import QBOService
    from sovterm.store.db import Database
    from sovterm.store.secrets import SecretStore
    from sovterm.sync.service import SyncService
    from sovterm.systemd import Notifier


@dataclass
class Services:
    settings: Settings
    environ: dict[str, str]
    notifier: Notifier
    logs: LogSetup
    bus: EventBus = field(default_factory=EventBus)
    heartbeats: Heartbeats = field(init=False)
    connectors: Connectors = field(init=False)
    metrics: Metrics = field(default_factory=Metrics)
    started_at: float = field(default_factory=time.time)
    alerts: AlertTracker = field(default_factory=AlertTracker)
    security: SecurityEvents = field(init=False)  # refusals and reloads into the audit trail, bounded
    db: Database | None = None
    secrets: SecretStore | None = None
    http: aiohttp.ClientSession | None = None
    scheduler: AsyncIOScheduler | None = None
    control: ControlServer | None = None
    config_path: str | None = None
    # part services, set by each part's stage in start order (see sovterm/parts/__init__.py)
    btcpay: BTCPayService | None = None
    qbo: QBOService | None = None
    sync: SyncService | None = None
    links: LinkService | None = None
    pay_page: PayPage | None = None
    payouts: PayoutService | None = None
    intake: BTCPayIntake | None = None
    analytics: Analytics | None = None
    crowdfund: Campaigns | None = None
    books: BooksService | None = None
    notify: NotifyService | None = None
    mints: MintMonitor | None = None
    paywall: Gate | None = None
    angor: AngorMonitor | None = None

    def __post_init__(self) -> None:
        self.security = SecurityEvents(lambda: self.db)
        self.heartbeats = Heartbeats(grace_s=self.settings.health.heartbeat_grace_s)
        self.connectors = Connectors(
            on_change=lambda name, s: self.bus.publish(
                "connector.state", connector=name, state=s.state, detail=s.detail
            )
        )

    def require_db(self) -> Database:
        assert self.db is not None, "database stage has not started"
        return self.db

    def require_secrets(self) -> SecretStore:
        assert self.secrets is not None, "database stage has not started"
        return self.secrets
