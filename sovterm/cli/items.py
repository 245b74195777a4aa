"""`sovterm setup items` (list, map, policy), `sovterm setup tax` and `sovterm setup link-dimensions`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli import core
from sovterm.cli.core import Adder, call, emit
from sovterm.formatting import age

POLICY_TEXT = {"default": "post them to the store's sales item", "create": "create them in QuickBooks",
               "hold": "hold the posting until they are mapped"}
TAX_TEXT = {"none": "not split out (invoices carrying tax are held)",
            "us": "US company: the tax amount on the document (automated sales tax)",
            "inclusive": "tax-inclusive lines with a tax code"}


def format_items(r: dict[str, Any]) -> str:
    tax = r["tax"]
    code = f" (code {tax['names'].get('tax_code') or tax['tax_code_id']})" if tax["tax_code_id"] else ""
    lines = [f"Items of store {r['store_id']}:",
             f"  unknown items: {r['policy']} — {POLICY_TEXT[r['policy']]}",
             f"  sales tax: {tax['kind']} — {TAX_TEXT[tax['kind']]}{code}"]
    if r["held"]:
        lines.append(f"  {r['held']} posting(s) held: map the items below (`sovterm setup items map CODE --item X`)")
    if not r["items"]:
        lines.append("  no BTCPay items seen yet")
    for i in r["items"]:
        target = f"→ {i['qbo_name']} (#{i['qbo_item_id']}, {i['how']})" if i["qbo_item_id"] else (
            "→ the store's sales item" if i["how"] == "default" else "→ NOT MAPPED")
        waiting = f"  [{i['waiting']} held]" if i["waiting"] else ""
        title = f" {i['title']!r}" if i["title"] and i["title"] != i["code"] else ""
        lines.append(f"  {i['code']}{title} {target}{waiting}  ({age(time.time() - i['updated_at'])})")
    return "\n".join(lines)


def cmd_items(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.items_cmd == "map":
        r = call(args, environ, "setup.items.map", store_id=args.store, code=args.code, item=args.item,
                 tax_code=args.tax_code)
        emit(args, r, lambda r: f"{r['code']} → {r['qbo_name']} (#{r['qbo_item_id']}) for store {r['store_id']}; "
                                f"{r['released']} held posting(s) released")
    elif args.items_cmd == "policy":
        r = call(args, environ, "setup.items.policy", store_id=args.store, policy=args.policy)
        emit(args, r, lambda r: f"store {r['store_id']}: unknown items — {POLICY_TEXT[r['policy']]}")
    else:
        emit(args, call(args, environ, "setup.items.list", store_id=args.store), format_items)
    return 0


def cmd_tax(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    r = call(args, environ, "setup.tax", store_id=args.store, kind=args.kind, tax_code=args.tax_code,
             tax_account=args.tax_account)
    emit(args, r, lambda r: f"store {r['store_id']}: sales tax {TAX_TEXT[r['tax']['kind']]}; "
                            f"{r['released']} held posting(s) released")
    return 0


def cmd_link_dimensions(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    r = call(args, environ, "setup.link_dimensions", link_id=args.link, class_name=args.class_name,
             location=args.location)
    emit(args, r, lambda r: f"pay link {r['link_id']}: class {r['names'].get('class', 'the store’s')}, "
                            f"location {r['names'].get('location', 'the store’s')}")
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    setup = core.setup_group(sub)
    p = add("items", cmd_items, "map BTCPay items (PoS cart, itemCode) to QuickBooks items", json_flag=True,
            parent=setup)
    p.add_argument("--store", metavar="ID", help="BTCPay store id (default: the only selected store)")
    verbs = p.add_subparsers(dest="items_cmd", metavar="list|map|policy")
    verbs.add_parser("list", help="the items seen, what each posts to, and held postings")
    m = verbs.add_parser("map", help="post one BTCPay item code to a QuickBooks item")
    m.add_argument("code", help="the BTCPay item code (PoS item id or itemCode)")
    m.add_argument("--item", required=True, metavar="NAME|ID", help="the QuickBooks item")
    m.add_argument("--tax-code", metavar="NAME|ID", help="this item's tax code (tax-inclusive companies)")
    pol = verbs.add_parser("policy", help="what an item matching no QuickBooks item does")
    pol.add_argument("policy", choices=list(POLICY_TEXT))
    for verb in (m, pol):
        verb.add_argument("--store", metavar="ID", default=argparse.SUPPRESS, help="BTCPay store id")
    p = add("tax", cmd_tax, "how the sales tax inside BTCPay prices is booked", json_flag=True, parent=setup)
    p.add_argument("kind", choices=list(TAX_TEXT))
    p.add_argument("--tax-code", metavar="NAME|ID", help="inclusive: the tax code on each line")
    p.add_argument("--tax-account", metavar="NAME|ID",
                   help="stores booking sales as Deposits: the liability account the tax goes to")
    p.add_argument("--store", metavar="ID", help="BTCPay store id (default: the only selected store)")
    p = add("link-dimensions", cmd_link_dimensions, "class and location for one pay link's documents",
            json_flag=True, parent=setup)
    p.add_argument("link", help="the pay link id")
    p.add_argument("--class", dest="class_name", metavar="NAME|ID", help="QuickBooks class")
    p.add_argument("--location", metavar="NAME|ID", help="QuickBooks location")
