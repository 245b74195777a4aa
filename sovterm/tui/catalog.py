"""The lists later parts extend: screens, daemon actions and optional data feeds.

- A screen: add a `ScreenSpec` (mode name, key, title, screen class, the daemon methods it needs). The app
  binds the key, lists it in the command palette and the help screen, and refuses it with the reason
  when the daemon does not offer a method it needs.
- An action: add an `ActionSpec` to `actions.ACTIONS` with the `screen` that binds its key (`run('<name>')`,
  see `actions_for`; "palette" for palette-only ones); it is disabled (dimmed in the footer, reason shown)
  unless the caller may call its method; `confirm` turns on a yes/no dialog whose default is *no*.
- A feed: add the method name to `actions.FEEDS`; the connection polls it with `status` whenever the daemon offers it
  and the result lands in `DaemonState.feeds[method]` (a screen renders it; absent means "no data yet").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen

from sovterm.tui.screens.analytics import AnalyticsScreen
from sovterm.tui.screens.angor import AngorScreen
from sovterm.tui.screens.crowdfund import CrowdfundScreen
from sovterm.tui.screens.dashboard import DashboardScreen
from sovterm.tui.screens.deliveries import DeliveriesScreen
from sovterm.tui.screens.links import LinksScreen
from sovterm.tui.screens.logs import LogsScreen
from sovterm.tui.screens.mints import MintsScreen
from sovterm.tui.screens.notify import NotifyScreen
from sovterm.tui.screens.payouts import PayoutsScreen
from sovterm.tui.screens.paywall import PaywallScreen
from sovterm.tui.screens.sync import SyncScreen
from sovterm.tui.screens.wizard import WizardScreen
from sovterm.tui.session import Session


@dataclass(frozen=True)
class ScreenSpec:
    mode: str
    key: str
    title: str
    screen: Callable[[Session], Screen[Any]]  # built with the session (see `session.Session`)
    help: str
    requires: tuple[str, ...] = ()  # daemon methods without which the screen has nothing to show


SCREENS: tuple[ScreenSpec, ...] = (
    ScreenSpec("dashboard", "d", "Dashboard", DashboardScreen, "connectors, loops, alerts, volume"),
    ScreenSpec("logs", "l", "Logs", LogsScreen, "live daemon log with level, component and search filters"),
    ScreenSpec("sync", "s", "Sync", SyncScreen, "progress, recent postings, dead letters, unmatched payments",
               requires=("sync.status", "sync.recent")),
    ScreenSpec("payouts", "p", "Payouts", PayoutsScreen, "approve or cancel BTCPay payouts",
               requires=("payouts.list",)),
    ScreenSpec("links", "k", "Pay links", LinksScreen, "create, show (with QR) and expire pay links",
               requires=("links.list",)),
    ScreenSpec("analytics", "A", "Analytics", AnalyticsScreen,
               "volume, conversion, statuses and payment methods for a store and a date range; export",
               requires=("analytics.report",)),
    ScreenSpec("crowdfund", "C", "Crowdfund", CrowdfundScreen,
               "BTCPay Crowdfund campaigns: goal, raised, pending, contributors, perks, contributions per day",
               requires=("crowdfund.list",)),
    ScreenSpec("deliveries", "W", "Webhook deliveries", DeliveriesScreen,
               "what BTCPay sent: verified, deduplicated, refused (and why); redeliver",
               requires=("webhooks.deliveries",)),
    ScreenSpec("notify", "o", "Notifications", NotifyScreen, "where alerts are sent: add, test, remove destinations",
               requires=("notify.list",)),
    ScreenSpec("mints", "h", "Mints", MintsScreen, "trusted Cashu mints: health, history, check now",
               requires=("mints.list",)),
    ScreenSpec("paywall", "y", "Paywall", PaywallScreen,
               "HTTP 402 sales per resource (priced paths, pay links): sold, challenges, paid requests, refusals",
               requires=("paywall.sales", "paywall.list")),
    ScreenSpec("angor", "g", "Angor", AngorScreen,
               "Angor projects: progress, investors, stages, penalty days; indexer and relay health",
               requires=("angor.list",)),
    ScreenSpec("setup", "w", "Setup", WizardScreen, "the setup wizard: BTCPay, QuickBooks, mode, accounts, history",
               requires=("setup.state", "btcpay.status", "qbo.status")),
)

