"""The reaper's link work (loop `links.reaper`): reservations and links, plus pruning webhook intake rows.

The spine's own `reaper` loop prunes audit rows; this loop runs next to it on the same interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sovterm.links.service import LinkService
from sovterm.store.db import Database


async def prune_webhooks(db: Database, retention_days: int, *, now: float | None = None) -> dict[str, int]:
    """Drop webhook deliveries and refusals older than the retention (the dedupe window is far shorter)."""
    cutoff = int(time.time() if now is None else now) - retention_days * 86_400
    deliveries = await db.write("DELETE FROM webhook_deliveries WHERE received_at < ?", (cutoff,))
    refusals = await db.write("DELETE FROM webhook_refusals WHERE at < ?", (cutoff,))
    return {"deliveries_pruned": deliveries, "refusals_pruned": refusals}


def reaper_run(links: LinkService, retention_days: Callable[[], int]) -> Callable[[], Any]:
    async def run() -> dict[str, Any]:
        summary = await links.reap()
        summary.update(await prune_webhooks(links.db, retention_days(), now=links.clock()))
        return summary

    return run
