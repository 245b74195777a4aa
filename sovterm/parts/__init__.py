"""The daemon's parts in start order; each may use the services of those before it (see `base.Part`)."""

from __future__ import annotations

from sovterm.parts import btcpay, links, ops, payouts, qbo, sync
from sovterm.parts.base import Part

PARTS: list[Part] = [
    btcpay.PART,
    qbo.PART,
    sync.PART,
    links.PART,
    payouts.PART,
    ops.PART,
]
