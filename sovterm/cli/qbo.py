"""`sovterm setup qbo`, `sovterm setup accounts` and `sovterm qbo status|disconnect|auto-sync`.

Every output names the environment, so a sandbox company is never mistaken for the real books.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from sovterm.cli import core
from sovterm.cli.core import Adder, call, emit
from sovterm.qbo.mapping_options import OVERRIDES


def env_label(data: Mapping[str, Any]) -> str:
    return "[SANDBOX]" if data.get("sandbox") else "[production]"


def format_start(r: dict[str, Any]) -> str:
    lines = [
        f"{env_label(r)} Connect QuickBooks Online: open this link in a browser signed in to Intuit",
        "",
        f"  {r['authorization_url']}",
        "",
    ]
    if r.get("qr"):
        lines += ["or scan it with a phone:", r["qr"]]
    lines += [
        f"The link works once, for {r['expires_in'] // 60} minutes.",
        f"Intuit sends the browser back to: {r['redirect_uri']}",
        "If that address does not open from your browser, copy the address the browser ends on and run:",
        "  sovterm setup qbo --redirected-url 'URL'",
        "",
        r["intuit_app_guide"],
    ]
    return "\n".join(lines)


def format_connected(c: dict[str, Any]) -> str:
    text = f"{env_label(c)} QuickBooks company {c['realm_id']} connected ({c['environment']})."
    if c.get("sandbox") and not c.get("auto_sync"):
        text += "\nSandbox companies do not sync automatically: `sovterm qbo auto-sync on` when ready."
    return text + "\nNext: `sovterm setup accounts`."


def cmd_setup_qbo(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.redirected_url:
        emit(args, call(args, environ, "setup.qbo.complete", redirected_url=args.redirected_url), format_connected)
        return 0
    started = call(args, environ, "setup.qbo.start")
    emit(args, started, format_start)
    sys.stdout.flush()  # the link must show before we block waiting for the browser
    if args.no_wait:
        return 0
    print("\nWaiting for the browser to come back (Ctrl-C stops waiting; the link stays valid)...", file=sys.stderr,
          flush=True)
    try:
        result = call(args, environ, "setup.qbo.wait", timeout_s=args.timeout or started["expires_in"],
                      since=started["started_at"])
    except KeyboardInterrupt:
        print("stopped waiting; the link stays valid until it expires. Check with `sovterm qbo status`.",
              file=sys.stderr)
        return 130
    if not result.get("connected"):
        print("no connection arrived in time; run `sovterm setup qbo` again for a new link.", file=sys.stderr)
        return core.EXIT_FAILED
    emit(args, result, format_connected)
    return 0


def format_status(s: dict[str, Any]) -> str:
    if not s["configured"]:
        return (f"{env_label(s)} QuickBooks: not configured ({s['problem']}).\n"
                "Run `sovterm setup qbo` for how to create your Intuit app.")
    if not s.get("connected"):
        return f"{env_label(s)} QuickBooks: no company connected. Run `sovterm setup qbo`."
    lines = [
        f"{env_label(s)} QuickBooks company {s['realm_id']}"
        + (f" ({s['company_name']})" if s.get("company_name") else ""),
        f"  environment  {s['environment']}",
        f"  state        {s['token_state'].replace('_', ' ')}" + (f": {s['reason']}" if s.get("reason") else ""),
        f"  token life   {s['days_left']} days left" if s.get("days_left") is not None else "  token life   unknown",
        f"  auto-sync    {'on' if s['auto_sync'] else 'off'}",
        f"  sync         {'can post' if s['can_sync'] else 'paused: ' + s['sync_blocked']}",
    ]
    if "check" in s:
        lines.append(f"  live check   {s['check']}")
    if s["token_state"] == "reconnect_required":
        lines.append("Reconnect required: run `sovterm setup qbo`.")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "qbo.status", check=args.check)
    emit(args, result, format_status)
    return core.EXIT_FAILED if result.get("token_state") == "reconnect_required" else 0


def cmd_disconnect(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "qbo.disconnect")
    emit(args, result, lambda r: (
        f"{env_label(r)} QuickBooks company {r['realm_id']} disconnected; tokens forgotten."
        + ("" if r["revoked"] else "\nIntuit could not be told: remove sovterm under Apps in QuickBooks as well.")
    ))
    return 0


def cmd_auto_sync(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "qbo.auto_sync", enabled=args.state == "on")
    emit(args, result, lambda r: f"{env_label(r)} automatic sync for company {r['realm_id']} is "
                                 f"{'on' if r['auto_sync'] else 'off'}.")
    return 0


def format_proposal(p: dict[str, Any]) -> str:
    lines = [f"{env_label(p)} accounts for store {p['store_id']} in QuickBooks company {p['realm_id']}:"]
    for d in p["defaults"]:
        where = f"use existing (id {d['existing_id']})" if d["existing_id"] else "create"
        lines.append(f"  {d['key']:<20} {d['entity']:<14} {d['name']!r:<24} {where}")
    if p.get("current"):
        names = p["current"].get("names") or {}
        lines.append("current mapping: " + ", ".join(f"{k}={v}" for k, v in sorted(names.items())))
    return "\n".join(lines)


def format_entities(e: dict[str, Any]) -> str:
    lines = [f"{env_label(e)} QuickBooks lists:"]
    for key, block in e.items():
        if not isinstance(block, dict):
            continue
        lines.append(f"{key} ({block['count']}):")
        for row in block["rows"]:
            rest = "  ".join(str(v) for k, v in row.items() if k != "id" and v)
            lines.append(f"  {row['id']:>6}  {rest}")
    return "\n".join(lines)


def format_applied(r: dict[str, Any]) -> str:
    m = r["mapping"]
    lines = [f"{env_label(r)} mapping saved for store {m['store_id']} (company {m['realm_id']}):"]
    lines += [f"  {k:<20} {v}" for k, v in sorted(m["names"].items())]
    return "\n".join(lines)


def cmd_setup_accounts(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.list:
        emit(args, call(args, environ, "setup.accounts.list"), format_entities)
        return 0
    overrides = {o: getattr(args, o) for o in OVERRIDES if getattr(args, o, None)}
    proposal = call(args, environ, "setup.accounts.propose", store_id=args.store)
    if not args.json:
        print(format_proposal(proposal))
    if not args.auto and not overrides and any(not d["existing_id"] for d in proposal["defaults"]):
        print("\nNothing was created. Pass --auto to create the missing entries above, or map existing ones "
              "(e.g. --deposit-account NAME|ID; see --list).", file=sys.stderr)
        return core.EXIT_FAILED
    result = call(args, environ, "setup.accounts.apply", store_id=proposal["store_id"], auto=args.auto,
                  overrides=overrides)
    emit(args, result, format_applied)
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    setup = core.setup_group(sub)
    p = add("qbo", cmd_setup_qbo, "connect a QuickBooks Online company (OAuth; prints a link and a QR code)",
            json_flag=True, parent=setup)
    p.add_argument("--redirected-url", metavar="URL",
                   help="finish by pasting the address the browser ended on after consenting")
    p.add_argument("--no-wait", action="store_true", help="print the link and return")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: the link's life)")
    p = add("accounts", cmd_setup_accounts, "map a BTCPay store to QuickBooks accounts", json_flag=True,
            parent=setup)
    p.add_argument("--store", metavar="ID", help="BTCPay store id (default: the only selected store)")
    p.add_argument("--auto", action="store_true", help="create sovterm's default accounts where missing")
    p.add_argument("--list", action="store_true", help="show the company's accounts, items, customers...")
    for option in OVERRIDES:
        p.add_argument(f"--{option.replace('_', '-')}", dest=option, metavar="NAME|ID",
                       help=f"use this {option.replace('_', ' ')}")
    qbo = core.group(sub, "qbo", "the QuickBooks Online connection")
    p = add("status", cmd_status, "connection, company, environment and token state", json_flag=True, parent=qbo)
    p.add_argument("--check", action="store_true", help="make one live call to QuickBooks")
    add("disconnect", cmd_disconnect, "revoke sovterm's access and forget the tokens", json_flag=True, parent=qbo)
    p = add("auto-sync", cmd_auto_sync, "switch automatic posting on or off", json_flag=True, parent=qbo)
    p.add_argument("state", choices=["on", "off"])

