"""`sovterm payouts ...`: the payout mirror and the approval actions (admins only)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit, group
from sovterm.formatting import sats_text


def _amount(p: dict[str, Any]) -> str:
    text = f"{p['original_amount']} {p['original_currency']}"
    if p.get("amount_sats") is not None and p["original_currency"] != "BTC":
        text += f" ({sats_text(p['amount_sats'])})"
    elif p.get("amount_sats") is not None:
        text = sats_text(p["amount_sats"])
    return text


def format_list(payouts: list[dict[str, Any]]) -> str:
    if not payouts:
        return "no payouts"
    lines = []
    for p in payouts:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p["created_at"])) if p.get("created_at") else "-"
        note = ""
        if p.get("pending_approval_by"):
            note = f"  approved by {p['pending_approval_by']}, needs a second admin"
        elif p.get("needs_four_eyes") and p["state"] == "AwaitingApproval":
            note = "  needs two admins"
        source = p.get("pull_payment_name") or (p.get("metadata") or {}).get("source") or ""
        lines.append(f"{p['payout_id']}  {when}  {p['state']:<16} rev {p['revision']:<3} {_amount(p):<28} "
                     f"{p.get('payment_method') or '-':<9} {p.get('destination') or '-'}  {source}{note}")
    return "\n".join(lines)


def format_result(p: dict[str, Any]) -> str:
    if p.get("result") == "pending":
        return f"payout {p['payout_id']}: {p['message']}"
    return f"payout {p['payout_id']}: {p['result']} (now {p['state']}, {_amount(p)})"


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "payouts.list", include_final=not args.open), format_list)
    return 0


def cmd_act(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, args.method, payout_id=args.id), format_result)
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    payouts = group(sub, "payouts", "BTCPay payouts waiting for approval, and the actions on them")
    listing = add("list", cmd_list, "list the mirrored payouts", json_flag=True, parent=payouts)
    listing.add_argument("--open", action="store_true", help="hide completed and cancelled payouts")
    for verb, method, text in (
        ("approve", "payouts.approve", "approve a payout (at the revision shown by `payouts list`)"),
        ("cancel", "payouts.cancel", "cancel a payout"),
        ("mark-paid", "payouts.mark_paid", "record an approved payout as paid"),
    ):
        p = add(verb, cmd_act, text, json_flag=True, parent=payouts)
        p.add_argument("id", help="payout id")
        p.set_defaults(method=method)
