"""Angor's project description (the content of a kind-3030 event, `ProjectInfo` v1 and v2) and what the
operator sees of a project: progress to target, investors, stages with their release dates, the penalty.

Field names and meanings follow block-core/angor `docs/nip-3030-crowdfunding.md` and
`src/shared/Angor.Shared/Models/ProjectInfo.cs`: camelCase, dates as Unix seconds, amounts in sats, a
stage's `amountToRelease` a percentage. No `version` (or < 2) means v1, which is always an Invest project."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

PROJECT_TYPES = {0: "invest", 1: "fund", 2: "subscribe"}
TEXT_LIMIT = 2000  # characters of a profile's or description's free text kept


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Stage(_Camel):
    amount_to_release: Decimal = Field(ge=0, le=100)  # percent of what was invested
    release_date: int


class ProjectInfo(_Camel):
    version: int = 1
    project_type: int = Field(0, ge=0, le=2)
    founder_key: str
    project_identifier: str = Field(min_length=2, max_length=100)
    nostr_pub_key: str
    network_name: str | None = None
    start_date: int | None = None
    end_date: int | None = None
    expiry_date: int | None = None
    penalty_days: int = Field(0, ge=0, le=3650)
    target_amount: int | None = Field(None, ge=0)
    penalty_threshold: int | None = Field(None, ge=0)
    stages: list[Stage] = Field(default_factory=list, max_length=500)
    dynamic_stage_patterns: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


def parse_project_info(content: str) -> ProjectInfo | None:
    """The ProjectInfo in a kind-3030 event's content, or None: other apps reuse kind 3030 with other
    content, and such events are skipped (as Angor's RelayService does)."""
    try:
        info = ProjectInfo.model_validate(json.loads(content))
    except (ValueError, ValidationError):
        return None
    if info.version < 2:
        info.project_type = 0
    return info


def profile_fields(content: str) -> dict[str, str]:
    """A kind-0 profile's display fields (NIP-01 metadata); anything unreadable is left out."""
    try:
        data = json.loads(content)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    keys = ("name", "display_name", "about", "website", "picture", "nip05", "lud16")
    return {k: data[k][:TEXT_LIMIT] for k in keys if isinstance(data.get(k), str) and data[k]}


def percent(part: int, whole: int | None) -> Decimal | None:
    """part of whole in percent, two decimals (exact: integers in, Decimal out)."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"))


def phase(info: ProjectInfo, now: float) -> str:
    """Where an Invest project is in its life: upcoming, open (taking investments), stages (releasing
    funds), ended (past expiry: what is left can be reclaimed). Fund and Subscribe projects have no window."""
    if info.expiry_date is not None and now >= info.expiry_date:
        return "ended"
    if info.project_type != 0:
        return "open"
    if info.start_date is not None and now < info.start_date:
        return "upcoming"
    end = info.end_date if info.end_date is not None else (info.stages[0].release_date if info.stages else None)
    if end is None or now < end:
        return "open"
    return "stages"


def stage_rows(info: ProjectInfo, invested_sats: int, now: float) -> list[dict[str, Any]]:
    """Each stage's share, the sats it releases out of what was invested (rounded down, so the stages
    never add up to more than was invested), its date and whether that date has passed."""
    return [{"number": n, "percent": s.amount_to_release, "release_date": s.release_date,
             "release_sats": int(Decimal(invested_sats) * s.amount_to_release / 100),
             "released": now >= s.release_date}
            for n, s in enumerate(sorted(info.stages, key=lambda s: s.release_date), start=1)]
