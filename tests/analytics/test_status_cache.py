"""The public status page's shop figures: a flood of unauthenticated page loads costs one report, not one
per request (the listener is public)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sovterm.analytics.service import Analytics
from tests.ops.helpers import status_client


async def test_a_flood_of_page_loads_makes_one_report(tmp_path: Path) -> None:
    async with status_client(tmp_path) as (client, services):
        analytics = services.analytics = Analytics(services.db)
        made = 0
        report = analytics.report

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal made
            made += 1
            await asyncio.sleep(0.05)  # a slow report: visitors arriving meanwhile wait for this one
            return await report(*args, **kwargs)  # type: ignore[arg-type]

        analytics.report = counted  # type: ignore[method-assign]
        pages = await asyncio.gather(*(client.get("/status.json") for _ in range(30)))
        views = [await p.json() for p in pages]
        assert made == 1
        assert all(v["analytics"] == views[0]["analytics"] and "created" in v["analytics"] for v in views)
        await client.get("/")
        assert made == 1  # still fresh

        analytics._shared = None  # as if a minute had passed
        await client.get("/")
        assert made == 2
