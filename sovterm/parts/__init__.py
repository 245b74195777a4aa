"""The daemon's parts in start order; each may use the services of those before it (see `base.Part`).

The BTCPay connection comes first (every part calls BTCPay through it); the BTCPay intake comes after
sync, links and payouts, the parts it hands webhooks and invoice snapshots to (`parts/intake.py`)."""

from __future__ import annotations

from sovterm.parts import btcpay, intake, links, mints, notify, ops, payouts, qbo, sync
from sovterm.parts.base import Part

PARTS: list[Part] = [
    btcpay.PART,
    qbo.PART,
    sync.PART,
    links.PART,
    payouts.PART,
    intake.PART,
    ops.PART,
    mints.PART,
    notify.PART,
]
