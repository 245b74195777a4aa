"""`sovterm webhooks deliveries|redeliver`: what BTCPay sent to our webhook, and asking it to send again."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit, group


def format_deliveries(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "BTCPay lists no deliveries to our webhook yet"
    lines = []
    for d in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["at"])) if d.get("at") else "-"
        what = d["event_type"] or ""
        subject = d["invoice_id"] or d["payout_id"] or ""
        lines.append(f"{d['delivery_id']:<24} {when}  {d['outcome']:<13} {str(d['http_code'] or '-'):>4}  "
                     f"{what} {subject}".rstrip() + (f"  ({d['reason']})" if d["reason"] else ""))
    return "\n".join(lines)


def cmd_deliveries(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    params: dict[str, Any] = {"count": args.count}
    if args.store:
        params["store_id"] = args.store
    emit(args, call(args, environ, "webhooks.deliveries", **params), format_deliveries)
    return 0


def cmd_redeliver(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    params: dict[str, Any] = {"delivery_id": args.delivery}
    if args.store:
        params["store_id"] = args.store
    emit(args, call(args, environ, "webhooks.redeliver", **params),
         lambda r: f"BTCPay sends {r['delivery_id']} again as {r['new_delivery_id']}")
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    hooks = group(sub, "webhooks", "BTCPay's deliveries to our webhook: verified, deduplicated, refused")
    listing = add("deliveries", cmd_deliveries, "the latest deliveries and what became of each", json_flag=True,
                  parent=hooks)
    listing.add_argument("--store", help="BTCPay store id (needed only when several stores are followed)")
    listing.add_argument("--count", type=int, default=50, help="how many (newest first; default 50)")
    again = add("redeliver", cmd_redeliver, "ask BTCPay to send a delivery again", json_flag=True, parent=hooks)
    again.add_argument("delivery", help="the delivery id (from `webhooks deliveries`)")
    again.add_argument("--store", help="BTCPay store id (needed only when several stores are followed)")
