"""`sovterm angor ...`: Angor projects followed by project id or founder npub, and their sources' health."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit
from sovterm.formatting import age, sats_text


def _day(at: int | None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at)) if at else "-"


def progress_text(p: dict[str, Any]) -> str:
    target = sats_text(p["target_sats"]) if p["target_sats"] is not None else "no target"
    shown = f"{p['invested_sats']:,} / {target}"
    return shown + (f" ({p['progress_percent']} %)" if p["progress_percent"] is not None else "")


def sources_text(sources: list[dict[str, Any]]) -> str:
    lines = []
    for s in sources:
        line = f"  {s['kind']:<7} {s['url']}  {s['state'].upper()}"
        if s["detail"]:
            line += f": {s['detail']}"
        if s["state"] != "ok" and s["last_ok_at"] is not None:
            line += f" (last good answer {age(s['age_s'])})"
        if s["dropped_events"]:
            line += f"  · {s['dropped_events']} event(s) dropped (bad id or signature)"
        lines.append(line)
    return "\n".join(lines)


def _project_head(p: dict[str, Any]) -> list[str]:
    lines = [f"{p['name']}  [{p['project_type'] or '?'}, {p['phase'] or 'unknown'}]  {p['project_id']}",
             f"  raised {progress_text(p)} from {p['investor_count']} investor(s)",
             f"  penalty {p['penalty_days'] if p['penalty_days'] is not None else '?'} days"
             + (f" · {sats_text(p['in_penalties_sats'])} in penalty ({p['in_penalties_count']})"
                if p["in_penalties_count"] else "")]
    lines.append(f"  indexer data {age(p['chain_age_s'])} · Nostr data {age(p['nostr_age_s'])}")
    lines += [f"  problem: {problem}" for problem in p["problems"]]
    return lines


def format_list(r: dict[str, Any]) -> str:
    if not r["follows"]:
        return ("no Angor projects followed (follow one: sovterm angor follow angor1... or a founder's npub1...)\n"
                + "sources:\n" + sources_text(r["sources"]))
    blocks = ["\n".join(_project_head(p)) for p in r["projects"]]
    blocks += [f"{w['ref']}  ({w['kind']}) nothing found yet" for w in r["waiting"]]
    return "\n\n".join(blocks) + "\n\nsources:\n" + sources_text(r["sources"])


def format_show(p: dict[str, Any]) -> str:
    lines = _project_head(p)
    if p["about"]:
        lines.append(f"  about: {p['about']}")
    if p["founder_npub"]:
        lines.append(f"  founder: {p['founder_npub']}")
    lines.append(f"  window: {_day(p['start_date'])} to {_day(p['end_date'])} · expiry {_day(p['expiry_date'])}")
    if p["created_on_block"]:
        lines.append(f"  created in block {p['created_on_block']} (tx {p['trx_id']}) · event {p['nostr_event_id']}")
    lines.append("  stages:")
    for s in p["stages"]:
        lines.append(f"    {s['number']}. {s['percent']} % = {sats_text(s['release_sats'])} on {_day(s['release_date'])}"
                     + ("  released" if s["released"] else ""))
    lines.append(f"  investments ({len(p['investments'])} shown):")
    for i in p["investments"]:
        lines.append(f"    {i['total_amount']:>14,} sats  {i['investor_public_key'][:16]}…"
                     + ("  seeder" if i["is_seeder"] else ""))
    return "\n".join(lines)


def format_browse(r: dict[str, Any]) -> str:
    if not r["projects"]:
        return f"no projects from {r['offset']} on (the indexer knows {r['total'] if r['total'] is not None else '?'})"
    lines = [f"{p['project_id']}  block {p['created_on_block']}  {p['investments_count'] or 0} investment(s)"
             + ("  followed" if p["followed"] else "") for p in r["projects"]]
    shown = f"{r['offset'] + 1}-{r['offset'] + len(r['projects'])}"
    return "\n".join(lines) + f"\n({shown} of {r['total'] if r['total'] is not None else '?'}; sovterm angor follow ID)"


def cmd_browse(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "angor.browse", offset=args.offset, limit=args.limit), format_browse)
    return 0


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "angor.list")
    emit(args, result, format_list)
    return 1 if any(s["state"] not in ("ok", "unchecked") for s in result["sources"]) else 0


def cmd_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "angor.show", project_id=args.project), format_show)
    return 0


def cmd_follow(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "angor.follow", ref=args.ref),
         lambda r: f"following {r['ref']} ({r['kind']}); read it now (sovterm angor list shows it)")
    return 0


def cmd_unfollow(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "angor.unfollow", ref=args.ref), lambda r: f"no longer following {r['ref']}")
    return 0


def cmd_refresh(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "angor.refresh")
    emit(args, result, lambda r: f"read {r['projects']} project(s); {r['sources_ok']}/{r['sources']} source(s) ok; "
                                 f"{r['dropped_events']} event(s) dropped so far")
    return 0 if result["sources_ok"] == result["sources"] else 1


def add_commands(sub: Any, add: Adder) -> None:
    text = "Angor projects (indexer and Nostr relays); alone: the list (exit 1 if a source is failing)"
    angor = add("angor", cmd_list, text, json_flag=True)
    verbs = angor.add_subparsers(dest="angor_cmd", metavar="COMMAND")
    add("list", cmd_list, "the followed projects and the sources' health", json_flag=True, parent=verbs)
    p = add("show", cmd_show, "one project: stages, penalty, investments", json_flag=True, parent=verbs)
    p.add_argument("project", help="its project id (angor1...)")
    p = add("follow", cmd_follow, "follow a project id or a founder's npub", json_flag=True, parent=verbs)
    p.add_argument("ref", help="angor1... (a project) or npub1... (every project of that founder)")
    p = add("unfollow", cmd_unfollow, "stop following", json_flag=True, parent=verbs)
    p.add_argument("ref")
    p = add("browse", cmd_browse, "every project the indexer knows, a page at a time", json_flag=True, parent=verbs)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--limit", type=int, default=10, help="1-50 (the indexer's bounds)")
    add("refresh", cmd_refresh, "re-read every followed project now", json_flag=True, parent=verbs)
