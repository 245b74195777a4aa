"""The Angor projects the operator follows, refreshed from an indexer and Nostr relays.

Discovery follows Angor's own (`RelayService.cs`, `docs/nip-3030-crowdfunding.md`): a followed project id is
looked up on the indexer, whose record carries the id of the kind-3030 event committed on chain; that event
is fetched by id and only an event with exactly that id (and a valid signature) is believed. A followed
founder key is read the other way: its kind-3030 events on the relays name the projects, which the indexer
then counts. Profiles (kind 0) and descriptions (kind 30078 `angor:project`) come from the project's key.

Each source's health is kept in memory (ok, down, slow, garbage) and each project's two halves (chain and
Nostr) are replaced only by a good read, so an outage shows as a state and an age, never as lost data."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sovterm.angor.indexer import Indexer, IndexerProblem
from sovterm.angor.nostr import RelayProblem, hex_to_npub, is_hex32, npub_to_hex, query, tag
from sovterm.angor.project import (
    PROJECT_TYPES,
    ProjectInfo,
    parse_project_info,
    percent,
    phase,
    profile_fields,
    stage_rows,
)
from sovterm.errors import UserFacingError
from sovterm.store.db import Database

PROJECT_ID = re.compile(r"^angor1[02-9ac-hj-np-z]{6,90}$")  # bech32, hrp "angor"
KIND_PROJECT, KIND_PROFILE, KIND_APP_DATA = 3030, 0, 30078
DESCRIPTION_TAG = "angor:project"
SHOWN_INVESTMENTS = 50
MAX_DROPPED_KEPT = 10_000  # bad event ids remembered per relay, so a hostile relay cannot grow memory


class AngorError(UserFacingError):
    code = "angor"


@dataclass
class Source:
    url: str
    kind: str  # indexer | relay
    state: str = "unchecked"  # ok | down | slow | garbage | unchecked
    detail: str = ""
    checked_at: float | None = None
    last_ok_at: float | None = None
    dropped: set[str] = field(default_factory=set)  # events refused for a bad id or signature (what they claim as id)

    @property
    def dropped_events(self) -> int:
        """Distinct bad events seen since the daemon started (a relay serving one every refresh counts once)."""
        return len(self.dropped)

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"url": self.url, "kind": self.kind, "state": self.state, "detail": self.detail,
                "checked_at": self.checked_at, "last_ok_at": self.last_ok_at, "dropped_events": self.dropped_events,
                "age_s": None if self.last_ok_at is None else max(0.0, now - self.last_ok_at)}

    def saw(self, at: float, problem: IndexerProblem | RelayProblem | None = None) -> None:
        self.checked_at = at
        if problem is None:
            self.state, self.detail, self.last_ok_at = "ok", "", at
        else:
            self.state, self.detail = problem.state, str(problem)


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """(ref as stored, kind, founder key in hex) for a project id or a founder's npub (or hex key)."""
    ref = ref.strip()
    if PROJECT_ID.match(ref.lower()):
        return ref.lower(), "project", None
    if ref.lower().startswith("npub1"):
        try:
            pubkey = npub_to_hex(ref)
        except ValueError as exc:
            raise AngorError(str(exc), fix="copy the founder's npub again (its checksum does not match)") from None
        return hex_to_npub(pubkey), "founder", pubkey
    if is_hex32(ref.lower()):
        return hex_to_npub(ref.lower()), "founder", ref.lower()
    raise AngorError(f"{ref!r} is neither an Angor project id nor a founder's Nostr key",
                     fix="give a project id (angor1...) or the founder's npub (npub1...)")


class AngorMonitor:
    def __init__(self, db: Database, http: aiohttp.ClientSession, *, indexer_url: str, relays: list[str],
                 timeout_s: float, clock: Callable[[], float] = time.time,
                 on_refresh: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._db = db
        self._http = http
        self._timeout_s = timeout_s
        self._clock = clock
        self._on_refresh = on_refresh
        self.indexer = Indexer(http, indexer_url, timeout_s=timeout_s)
        self.sources = [Source(indexer_url.rstrip("/"), "indexer")] + [Source(url, "relay") for url in relays]
        self.problems: dict[str, list[str]] = {}  # per project, from the last refresh
        self._lock = asyncio.Lock()

    # --- follows -----------------------------------------------------------------------------------------
    async def follow(self, ref: str) -> dict[str, Any]:
        ref, kind, pubkey = parse_ref(ref)
        await self._db.write("INSERT INTO angor_follows(ref, kind, pubkey, added_at) VALUES(?, ?, ?, ?) "
                             "ON CONFLICT(ref) DO NOTHING", (ref, kind, pubkey, int(self._clock())))
        return {"ref": ref, "kind": kind}

    async def unfollow(self, ref: str) -> dict[str, Any]:
        ref, kind, _ = parse_ref(ref)
        if await self._db.write("DELETE FROM angor_follows WHERE ref = ?", (ref,)) == 0:
            raise AngorError(f"{ref} is not followed", fix="`sovterm angor list` shows what is followed")
        return {"ref": ref, "kind": kind}

    async def _follows(self) -> list[tuple[str, str, str | None]]:
        return [(r[0], r[1], r[2]) for r in await self._db.fetchall(
            "SELECT ref, kind, pubkey FROM angor_follows ORDER BY added_at, ref")]

    # --- refresh -----------------------------------------------------------------------------------------
    async def refresh(self) -> dict[str, Any]:
        """Read every followed project from the indexer and the relays; one refresh at a time."""
        async with self._lock:
            summary = await self._refresh()
        if self._on_refresh is not None:
            self._on_refresh(summary)
        return summary

    async def _refresh(self) -> dict[str, Any]:
        follows = await self._follows()
        stored = {r[0]: (r[1], _load(r[2]), _load(r[3])) for r in await self._db.fetchall(
            "SELECT project_id, follow_ref, chain, nostr FROM angor_projects")}
        problems: dict[str, list[str]] = {}
        owner: dict[str, str] = {ref: ref for ref, kind, _ in follows if kind == "project"}

        first = await self._read_chains(list(owner), problems)
        chains = first or {}
        committed = {pid: (chains.get(pid) or stored.get(pid, (None, None, None))[1] or {}).get("project", {})
                     .get("nostr_event_id") for pid in owner}
        founders = {pubkey: ref for ref, kind, pubkey in follows if kind == "founder" and pubkey}
        events, relays_ok = await self._read_relays([i for i in committed.values() if i], list(founders),
                                                    [n["info"]["nostr_pub_key"] for _, _, n in stored.values() if n])
        nostr: dict[str, dict[str, Any]] = {}
        for event, info in events["projects"]:
            pid = info.project_identifier
            if pid in owner:
                if event["id"] != committed.get(pid):
                    continue  # not the event committed on chain for this project
            elif event["pubkey"] in founders:
                owner.setdefault(pid, founders[event["pubkey"]])
            else:
                continue
            if pid not in nostr or event["created_at"] > nostr[pid]["created_at"]:
                nostr[pid] = {"info": info.model_dump(mode="json"), "event_id": event["id"],
                              "created_at": event["created_at"],
                              **events["profiles"].get(info.nostr_pub_key, {})}
        if relays_ok:
            for pid in owner:
                if pid not in nostr:
                    problems.setdefault(pid, []).append(
                        "no valid kind-3030 event" + (" with the id committed on chain" if committed.get(pid) else "")
                        + " on the relays")
        found_by_founder = [pid for pid in owner if pid not in chains and owner[pid] != pid]
        if first is not None:  # the indexer did not fail a moment ago
            chains.update(await self._read_chains(found_by_founder, problems) or {})

        now = int(self._clock())
        async with self._db.transaction() as conn:
            for pid, ref in owner.items():
                chain, story = chains.get(pid), nostr.get(pid)
                await conn.execute(
                    "INSERT INTO angor_projects(project_id, follow_ref, chain, chain_at, nostr, nostr_at) "
                    "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(project_id) DO UPDATE SET "
                    "chain = COALESCE(excluded.chain, chain), chain_at = COALESCE(excluded.chain_at, chain_at), "
                    "nostr = COALESCE(excluded.nostr, nostr), nostr_at = COALESCE(excluded.nostr_at, nostr_at)",
                    (pid, ref, None if chain is None else json.dumps(chain), None if chain is None else now,
                     None if story is None else json.dumps(story), None if story is None else now))
        self.problems = problems
        return {"projects": len(owner), "sources_ok": sum(s.state == "ok" for s in self.sources),
                "sources": len(self.sources), "dropped_events": sum(s.dropped_events for s in self.sources)}

    async def _read_chains(self, pids: list[str], problems: dict[str, list[str]]
                           ) -> dict[str, dict[str, Any]] | None:
        """Each project's indexer record, stats and first investments; None once the indexer fails (the
        last good data stays). A project the indexer does not know is a problem, not a failure."""
        source = self.sources[0]
        out: dict[str, dict[str, Any]] = {}
        if not pids:
            return out
        try:
            for pid in pids:
                project, stats, investments = await asyncio.gather(
                    self.indexer.project(pid), self.indexer.stats(pid), self.indexer.investments(pid))
                if project is None:
                    problems.setdefault(pid, []).append("the indexer does not know this project")
                    continue
                out[pid] = {"project": project.model_dump(), "stats": None if stats is None else stats.model_dump(),
                            "investments": [i.model_dump() for i in investments[:SHOWN_INVESTMENTS]]}
        except IndexerProblem as exc:
            source.saw(self._clock(), exc)
            return None
        source.saw(self._clock())
        return out

    async def _read_relays(self, event_ids: list[str], founders: list[str], known_keys: list[str]
                           ) -> tuple[dict[str, Any], bool]:
        """Every relay at once: the committed kind-3030 events and the founders' own, then the profiles and
        descriptions of the keys they name. Verified events only; (what was found, whether any relay answered)."""
        relays = [s for s in self.sources if s.kind == "relay"]
        results = await asyncio.gather(*(self._read_relay(s, event_ids, founders, known_keys) for s in relays))
        projects: list[tuple[dict[str, Any], ProjectInfo]] = []
        newest: dict[tuple[int, str], dict[str, Any]] = {}
        seen: set[str] = set()
        for events in results:
            for event in events or []:
                if event["id"] in seen:
                    continue
                seen.add(event["id"])
                if event["kind"] == KIND_PROJECT:
                    info = parse_project_info(event["content"])
                    if info is not None and info.nostr_pub_key == event["pubkey"]:
                        projects.append((event, info))
                elif event["kind"] == KIND_PROFILE or (event["kind"] == KIND_APP_DATA
                                                       and tag(event, "d") == DESCRIPTION_TAG):
                    key = (event["kind"], event["pubkey"])
                    if key not in newest or event["created_at"] > newest[key]["created_at"]:
                        newest[key] = event
        profiles: dict[str, dict[str, Any]] = {}
        for (kind, pubkey), event in newest.items():
            entry = profiles.setdefault(pubkey, {})
            if kind == KIND_PROFILE:
                entry["profile"] = profile_fields(event["content"])
            else:
                entry["description"] = event["content"][:2000]
        return {"projects": projects, "profiles": profiles}, any(r is not None for r in results)

    async def _read_relay(self, source: Source, event_ids: list[str], founders: list[str], known_keys: list[str]
                          ) -> list[dict[str, Any]] | None:
        filters: list[dict[str, Any]] = []
        if event_ids:
            filters.append({"ids": event_ids})
        if founders:
            filters.append({"kinds": [KIND_PROJECT], "authors": founders})
        if not filters:
            return []
        try:
            first = await query(self._http, source.url, filters, timeout_s=self._timeout_s)
            keys = sorted({e["pubkey"] for e in first.events if e["kind"] == KIND_PROJECT} | set(known_keys))
            second = await query(self._http, source.url, [{"kinds": [KIND_PROFILE, KIND_APP_DATA], "authors": keys}],
                                 timeout_s=self._timeout_s) if keys else None
        except RelayProblem as exc:
            source.saw(self._clock(), exc)
            return None
        source.saw(self._clock())
        if len(source.dropped) < MAX_DROPPED_KEPT:
            source.dropped |= first.dropped | (second.dropped if second else set())
        return first.events + (second.events if second else [])

    async def browse(self, offset: int, limit: int) -> dict[str, Any]:
        """A page of the indexer's project list, to find what to follow; a failing indexer is an error
        here (the operator asked for this page now), and its state is recorded as in a refresh."""
        try:
            page, total = await self.indexer.projects(offset, limit)
        except IndexerProblem as exc:
            self.sources[0].saw(self._clock(), exc)
            raise AngorError(f"the indexer ({self.indexer.base_url}) is {exc.state}: {exc}",
                             fix="try again later, or set [angor] indexer_url to another Angor indexer") from None
        self.sources[0].saw(self._clock())
        followed = {r[0] for r in await self._db.fetchall("SELECT project_id FROM angor_projects")}
        followed |= {ref for ref, kind, _ in await self._follows() if kind == "project"}
        return {"offset": offset, "total": total,
                "projects": [{"project_id": p.project_identifier, "founder_key": p.founder_key,
                              "created_on_block": p.created_on_block, "trx_id": p.trx_id,
                              "nostr_event_id": p.nostr_event_id, "investments_count": p.total_investments_count,
                              "followed": p.project_identifier in followed} for p in page]}

    # --- what is shown -----------------------------------------------------------------------------------
    async def listing(self) -> dict[str, Any]:
        rows = await self._db.fetchall(
            "SELECT p.project_id, p.follow_ref, p.chain, p.chain_at, p.nostr, p.nostr_at FROM angor_projects p "
            "JOIN angor_follows f ON f.ref = p.follow_ref ORDER BY f.added_at, p.project_id")
        now = self._clock()
        projects = [self._view(r, now) for r in rows]
        with_projects = {p["follow"] for p in projects}
        follows = [{"ref": ref, "kind": kind, "projects": sum(p["follow"] == ref for p in projects)}
                   for ref, kind, _ in await self._follows()]
        waiting = [{"ref": f["ref"], "kind": f["kind"]} for f in follows if f["ref"] not in with_projects]
        return {"projects": projects, "follows": follows, "waiting": waiting,
                "sources": [s.as_dict(now) for s in self.sources]}

    async def show(self, project_id: str) -> dict[str, Any]:
        row = await self._db.fetchone(
            "SELECT project_id, follow_ref, chain, chain_at, nostr, nostr_at FROM angor_projects "
            "WHERE project_id = ?", (project_id.strip().lower(),))
        if row is None:
            raise AngorError(f"no followed project {project_id!r} has been read yet",
                             fix="follow it (`sovterm angor follow ID`) and wait for a refresh, or check the id "
                                 "with `sovterm angor list`")
        return self._view(row, self._clock(), investments=True)

    def _view(self, row: Any, now: float, *, investments: bool = False) -> dict[str, Any]:
        pid, ref, chain, chain_at, story, nostr_at = row[0], row[1], _load(row[2]), row[3], _load(row[4]), row[5]
        chain, story = chain or {}, story or {}
        info = ProjectInfo.model_validate(story["info"]) if story.get("info") else None
        stats = chain.get("stats") or {}
        indexed = chain.get("project") or {}
        invested = int(stats.get("amount_invested", 0))
        profile = story.get("profile") or {}
        problems = list(self.problems.get(pid, []))
        indexer = self.sources[0]
        if indexer.state not in ("ok", "unchecked"):
            problems.append(f"indexer {indexer.state}: {indexer.detail}")
        relays = [s for s in self.sources if s.kind == "relay"]
        if relays and all(s.state not in ("ok", "unchecked") for s in relays):
            problems.append("no relay answered")
        if info is not None and indexed.get("nostr_event_id") and indexed["nostr_event_id"] != story.get("event_id"):
            problems.append("the project's Nostr event is not the one committed on chain")
        view: dict[str, Any] = {
            "project_id": pid, "follow": ref,
            "name": profile.get("display_name") or profile.get("name") or pid,
            "about": profile.get("about"), "website": profile.get("website"),
            "description": story.get("description"),
            "founder_npub": hex_to_npub(info.nostr_pub_key) if info and is_hex32(info.nostr_pub_key) else None,
            "project_type": PROJECT_TYPES[info.project_type] if info else None,
            "version": info.version if info else None,
            "network": info.network_name if info else None,
            "phase": phase(info, now) if info else None,
            "target_sats": info.target_amount if info else None,
            "invested_sats": invested,
            "progress_percent": percent(invested, info.target_amount if info else None),
            "investor_count": int(stats.get("investor_count", 0)),
            "investments_count": indexed.get("total_investments_count"),
            "in_penalties_sats": int(stats.get("amount_in_penalties", 0)),
            "in_penalties_count": int(stats.get("count_in_penalties", 0)),
            "spent_by_founder_sats": int(stats.get("amount_spent_so_far_by_founder", 0)),
            "penalty_days": info.penalty_days if info else None,
            "penalty_threshold_sats": info.penalty_threshold if info else None,
            "start_date": info.start_date if info else None,
            "end_date": info.end_date if info else None,
            "expiry_date": info.expiry_date if info else None,
            "stages": stage_rows(info, invested, now) if info else [],
            "created_on_block": indexed.get("created_on_block"),
            "trx_id": indexed.get("trx_id"),
            "nostr_event_id": story.get("event_id") or indexed.get("nostr_event_id"),
            "chain_age_s": None if chain_at is None else max(0.0, now - chain_at),
            "nostr_age_s": None if nostr_at is None else max(0.0, now - nostr_at),
            "problems": problems,
        }
        if investments:
            view["investments"] = chain.get("investments") or []
        return view


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)
