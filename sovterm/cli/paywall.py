"""`sovterm paywall ...`: paths sold to machines over HTTP 402 (L402 / x402), their sales, the signing keys."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit


def format_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no priced paths (add one: sovterm paywall add NAME /path/ --price-sats 500 --upstream URL)"
    return "\n".join(f"{r['name']:<16} {r['path']:<24} {r['price']:>14} / {r['access_s']} s -> {r['target']}  "
                     f"({r['source']})" for r in rows)


def format_sales(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'RESOURCE':<16} {'SOLD':>6} {'TOTAL':>14}  {'CHALLENGES':>10} {'PAID REQ':>9} {'REFUSED':>8}"]
    for r in rows:
        total = f"{r['total']} {r['currency']}" if r["currency"] else "-"
        lines.append(f"{r['resource']:<16} {r['sold']:>6} {total:>14}  {r['challenges']:>10} {r['paid_requests']:>9} "
                     f"{r['refused']:>8}")
        if r["refusals"]:
            lines.append("    refused: " + ", ".join(f"{k} {v}" for k, v in r["refusals"].items()))
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "paywall.list"), format_list)
    return 0


def cmd_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    params = {"name": args.name, "path": args.path, "access_s": args.access_s, "description": args.description}
    for key in ("price", "currency", "price_sats", "upstream", "directory", "store_id"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    row = call(args, environ, "paywall.add", **params)
    emit(args, row, lambda r: f"selling {r['path']} as {r['name']}: {r['price']} for {r['access_s']} s")
    return 0


def cmd_remove(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "paywall.remove", name=args.name), lambda r: f"no longer selling {r['path']}")
    return 0


def cmd_sales(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "paywall.sales"), format_sales)
    return 0


def cmd_keys(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    def show(keys: list[dict[str, Any]]) -> str:
        return "\n".join(f"{k['kid']}  created {time.strftime('%Y-%m-%d', time.localtime(k['created_at']))}"
                         f"{'  ACTIVE' if k['active'] else ''}{'  retired' if k['retired_at'] else ''}" for k in keys)

    emit(args, call(args, environ, "paywall.keys.list"), show)
    return 0


def cmd_rotate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "paywall.keys.rotate"), lambda r: f"new challenges are signed with {r['active']}")
    return 0


def cmd_retire(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "paywall.keys.retire", kid=args.kid),
         lambda r: f"retired {r['retired']}: its tokens stop working")
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    paywall = add("paywall", cmd_list, "paths sold to machines over HTTP 402; alone: the list", json_flag=True)
    verbs = paywall.add_subparsers(dest="paywall_cmd", metavar="COMMAND")
    add("list", cmd_list, "the priced paths", json_flag=True, parent=verbs)
    p = add("add", cmd_add, "put a price on a path (an upstream on this machine, or a directory)", json_flag=True,
            parent=verbs)
    p.add_argument("name", help="a short name: letters, digits, dashes (the BTCPay item code is paywall:NAME)")
    p.add_argument("path", help="the path prefix to sell, e.g. /api/weather/")
    price = p.add_mutually_exclusive_group(required=True)
    price.add_argument("--price", help="fiat price, e.g. 0.25 (with --currency)")
    price.add_argument("--price-sats", type=int, help="price in sats")
    p.add_argument("--currency", help="ISO currency of --price, e.g. USD")
    p.add_argument("--access-s", type=int, default=3600, help="how long one payment grants access (default 3600)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--upstream", help="proxy paid requests to this URL on this machine, e.g. http://127.0.0.1:9000/")
    target.add_argument("--directory", help="serve files from this absolute directory")
    p.add_argument("--store-id", help="the BTCPay store selling it (default: the selected store)")
    p.add_argument("--description", default="", help="shown to payers and in the books")
    p = add("remove", cmd_remove, "stop selling a path added with `paywall add`", json_flag=True, parent=verbs)
    p.add_argument("name")
    add("sales", cmd_sales, "sales per resource and what the gate answered", json_flag=True, parent=verbs)
    keys = add("keys", cmd_keys, "the macaroon-signing keys", json_flag=True, parent=verbs)
    kverbs = keys.add_subparsers(dest="paywall_keys_cmd", metavar="COMMAND")
    add("rotate", cmd_rotate, "sign new challenges with a new key", json_flag=True, parent=kverbs)
    p = add("retire", cmd_retire, "destroy a key: every token it signed stops working", json_flag=True, parent=kverbs)
    p.add_argument("kid")
