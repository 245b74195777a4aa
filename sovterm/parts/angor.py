"""The angor part: Angor projects the operator follows (by project id or founder npub), refreshed by a loop
from the configured indexer and Nostr relays (sovterm/angor/), and the `angor.*` control methods. A source
that is down, slow or answers garbage is a state in `angor.list`, never an error: the last good data stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
from pydantic import BaseModel, Field

from sovterm.angor.monitor import AngorMonitor
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.loops import LoopSpec
from sovterm.parts.base import Part
from sovterm.services import Services


class RefParams(BaseModel):
    ref: str = Field(description="an Angor project id (angor1...) or a founder's npub")


class ProjectParams(BaseModel):
    project_id: str


class BrowseParams(BaseModel):
    offset: int = Field(0, ge=0)
    limit: int = Field(10, ge=1, le=50)  # the indexer's own bounds


class IndexedProjectRow(Result):
    project_id: str
    founder_key: str
    created_on_block: int
    trx_id: str | None
    nostr_event_id: str | None
    investments_count: int | None
    followed: bool


class AngorBrowse(Result):
    offset: int
    total: int | None  # as the indexer reports it
    projects: list[IndexedProjectRow]


class AngorStage(Result):
    number: int
    percent: Decimal  # of what was invested
    release_date: int  # unix seconds
    release_sats: int
    released: bool


class AngorInvestment(Result):
    investor_public_key: str
    total_amount: int  # sats
    transaction_id: str
    hash_of_secret: str | None = None  # a seeder's committed secret hash
    is_seeder: bool


class AngorProject(Result):
    project_id: str
    follow: str  # the follow it was found through
    name: str
    about: str | None = None
    website: str | None = None
    description: str | None = None
    founder_npub: str | None = None
    project_type: str | None = None  # invest | fund | subscribe
    version: int | None = None
    network: str | None = None
    phase: str | None = None  # upcoming | open | stages | ended
    target_sats: int | None = None
    invested_sats: int
    progress_percent: Decimal | None = None
    investor_count: int
    investments_count: int | None = None
    in_penalties_sats: int
    in_penalties_count: int
    spent_by_founder_sats: int
    penalty_days: int | None = None
    penalty_threshold_sats: int | None = None
    start_date: int | None = None
    end_date: int | None = None
    expiry_date: int | None = None
    stages: list[AngorStage]
    created_on_block: int | None = None
    trx_id: str | None = None
    nostr_event_id: str | None = None
    chain_age_s: float | None = None  # how old the indexer's figures are (None: never read)
    nostr_age_s: float | None = None  # how old the relays' data is
    problems: list[str]


class AngorProjectDetail(AngorProject):
    investments: list[AngorInvestment]


class AngorFollow(Result):
    ref: str
    kind: str  # project | founder
    projects: int = 0


class AngorSource(Result):
    url: str
    kind: str  # indexer | relay
    state: str  # ok | down | slow | garbage | unchecked
    detail: str
    checked_at: float | None
    last_ok_at: float | None
    age_s: float | None  # since the last good answer
    dropped_events: int  # events refused for a bad id or signature


class AngorOverview(Result):
    projects: list[AngorProject]
    follows: list[AngorFollow]
    waiting: list[AngorFollow]  # followed, nothing found yet
    sources: list[AngorSource]


class AngorFollowed(Result):
    ref: str
    kind: str


class AngorRefreshed(Result):
    projects: int
    sources_ok: int
    sources: int
    dropped_events: int


def register(server: ControlServer, services: Services) -> None:
    @server.method("angor.list", role=Role.VIEWER, part="angor")
    async def angor_list(ctx: CallContext) -> AngorOverview:
        """The followed Angor projects (progress, investors, stages, penalty), the follows, and each source's
        health with the age of its last good answer."""
        return AngorOverview.model_validate(await ctx.part.listing())

    @server.method("angor.show", role=Role.VIEWER, params=ProjectParams, part="angor")
    async def angor_show(ctx: CallContext, project_id: str) -> AngorProjectDetail:
        """One followed project with its first investments (the indexer's page of 50)."""
        return AngorProjectDetail.model_validate(await ctx.part.show(project_id))

    @server.method("angor.follow", role=Role.ADMIN, params=RefParams, part="angor", audit="angor.follow")
    async def angor_follow(ctx: CallContext, ref: str) -> AngorFollowed:
        """Follow a project id or a founder's npub (every project that key publishes); read it now."""
        followed = await ctx.part.follow(ref)
        ctx.audit(subject=followed["ref"])
        await ctx.part.refresh()
        return AngorFollowed.model_validate(followed)

    @server.method("angor.unfollow", role=Role.ADMIN, params=RefParams, part="angor", audit="angor.unfollow")
    async def angor_unfollow(ctx: CallContext, ref: str) -> AngorFollowed:
        """Stop following (and forget the projects found through it)."""
        unfollowed = await ctx.part.unfollow(ref)
        ctx.audit(subject=unfollowed["ref"])
        return AngorFollowed.model_validate(unfollowed)

    @server.method("angor.browse", role=Role.VIEWER, params=BrowseParams, part="angor")
    async def angor_browse(ctx: CallContext, offset: int, limit: int) -> AngorBrowse:
        """A page of every project the indexer knows (to find one to follow), oldest first as it lists them."""
        return AngorBrowse.model_validate(await ctx.part.browse(offset, limit))

    @server.method("angor.refresh", role=Role.VIEWER, part="angor")
    async def angor_refresh(ctx: CallContext) -> AngorRefreshed:
        """Re-read every followed project now (read-only requests to the indexer and relays)."""
        return AngorRefreshed.model_validate(await ctx.part.refresh())


@asynccontextmanager
async def angor_stage(services: Services) -> AsyncIterator[None]:
    settings = services.settings.angor

    def refreshed(summary: dict[str, Any]) -> None:
        services.bus.publish("angor.refreshed", **summary)

    # its own session: the indexer's and relays' time limits have nothing to do with BTCPay's calls
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as http:
        services.angor = AngorMonitor(services.require_db(), http, indexer_url=settings.indexer_url,
                                      relays=settings.relays, timeout_s=settings.timeout_s, on_refresh=refreshed)
        try:
            yield
        finally:
            services.angor = None


def _loops(services: Services) -> list[LoopSpec]:
    async def refresh() -> dict[str, Any]:
        assert services.angor is not None
        return await services.angor.refresh()

    return [LoopSpec("angor", services.settings.angor.refresh_s, refresh)]


PART = Part("angor", stage=angor_stage, loops=_loops, methods=register)
