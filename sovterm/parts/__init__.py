"""The daemon's parts in start order; each may use the services of those before it (see `base.Part`).

The BTCPay connection comes first (every part calls BTCPay through it); the BTCPay intake comes after
sync, links and payouts, the parts it hands webhooks and invoice snapshots to (`parts/intake.py`)."""

from __future__ import annotations

from sovterm.parts import (
    analytics,
    angor,
    books,
    btcpay,
    intake,
    items,
    links,
    mints,
    notify,
    ops,
    payouts,
    paywall,
    qbo,
    sync,
    webhooks,
)
from sovterm.parts.base import Part

PARTS: list[Part] = [
    btcpay.PART,
    qbo.PART,
    sync.PART,
    items.PART,
    links.PART,
    payouts.PART,
    intake.PART,
    webhooks.PART,
    books.PART,
    ops.PART,
    analytics.PART,
    mints.PART,
    notify.PART,
    paywall.PART,
    angor.PART,
]
