"""`sovterm mints ...`: the trusted Cashu mints and their health."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def format_list(mints: list[dict[str, Any]]) -> str:
    if not mints:
        return "no trusted mints (add one: sovterm mints add https://mint.example.com, or [mints] trusted)"
    blocks = []
    for m in mints:
        head = f"{m['url']}  {m['state'].upper()}"
        if m.get("latency_ms") is not None:
            head += f"  {m['latency_ms']} ms"
        lines = [head]
        if m.get("problems"):
            lines.append(f"  problems: {'; '.join(m['problems'])}")
        if m.get("checked") and m["state"] != "down":
            fee = m.get("input_fee_ppk")
            detail = [m.get("name") or "?", m.get("version") or "version unknown",
                      f"{len(m.get('active_keysets') or [])} active keyset(s), {m.get('inactive_keysets', 0)} retired",
                      f"input fee {'?' if fee is None else fee} ppk"]
            if m.get("skew_s") is not None:
                detail.append(f"clock {m['skew_s']:+.0f} s")
            lines.append("  " + " · ".join(detail))
        if m.get("motd"):
            lines.append(f"  message from the mint: {m['motd']}")
        lines.append(f"  checked {_when(m.get('at'))} · trusted by {m['source']}")
        for h in m.get("history") or []:
            lines.append(f"    {_when(h['at'])}  {h['state']:<8} {h['detail']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    mints = call(args, environ, "mints.list")
    emit(args, mints, format_list)
    return 1 if any(m["state"] == "down" for m in mints) else 0


def cmd_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "mints.add", url=args.url), lambda r: f"trusting {r['url']}; checked it now "
                                                                       "(sovterm mints shows the result)")
    return 0


def cmd_remove(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "mints.remove", url=args.url), lambda r: f"no longer checking {r['url']}")
    return 0


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "mints.check")
    emit(args, result, lambda r: f"checked {r['mints']} mint(s): {r['ok']} ok, {r['degraded']} degraded, "
                                 f"{r['down']} down")
    return 1 if result["down"] else 0


def add_commands(sub: Any, add: Adder) -> None:
    text = "trusted Cashu mints and their health (read-only checks); alone: the list (exit 1 if one is down)"
    mints = add("mints", cmd_list, text, json_flag=True)
    verbs = mints.add_subparsers(dest="mints_cmd", metavar="COMMAND")
    p = add("add", cmd_add, "trust a mint and check it", json_flag=True, parent=verbs)
    p.add_argument("url", help="the mint's base URL, e.g. https://mint.example.com")
    p = add("remove", cmd_remove, "stop checking a mint you added", json_flag=True, parent=verbs)
    p.add_argument("url")
    add("check", cmd_check, "check every trusted mint now", json_flag=True, parent=verbs)
