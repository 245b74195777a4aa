"""`sovterm link ...`: pay links for QuickBooks invoices or fixed amounts, their QR codes and signing keys."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, CommandError, call, emit, group


def _when(ts: int | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts)) if ts else "-"


def _what(link: dict[str, Any]) -> str:
    if link["kind"] == "qbo":
        return f"QBO invoice {link['qbo_doc_number']}"
    return f"{link['amount']} {link['currency']}" + (f" ({link['memo']})" if link.get("memo") else "")


def format_link(link: dict[str, Any]) -> str:
    lines = [f"link {link['link_id']}: {_what(link)}, {link['state']}, expires {_when(link['expires_at'])}"]
    if link.get("url"):
        lines.append(f"  {link['url']}")
    if link.get("memo_written"):
        lines.append(f"  QuickBooks customer memo: {link['memo_written']}")
    return "\n".join(lines)


def format_list(links: list[dict[str, Any]]) -> str:
    if not links:
        return "no pay links"
    out = []
    for link in links:
        res = link.get("reservation")
        held = f"  invoice {res['btcpay_invoice_id']} {res['state']} {res['amount']} {res['currency']}" if res else ""
        out.append(f"{link['link_id']}  {link['state']:<8} {_what(link):<28} expires {_when(link['expires_at'])}{held}")
    return "\n".join(out)


def cmd_create(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if (args.qbo_invoice is None) == (args.amount is None):
        raise CommandError("give either --qbo-invoice DOCNUMBER or --amount AMOUNT --currency CODE", 2)
    params: dict[str, Any] = {"expires_days": args.expires_days, "store_id": args.store}
    if args.qbo_invoice is not None:
        params["qbo_invoice"] = args.qbo_invoice
    else:
        if not args.currency:
            raise CommandError("--amount needs --currency (e.g. USD)", 2)
        params.update(amount=args.amount, currency=args.currency, memo=args.memo)
    emit(args, call(args, environ, "links.create", **params), format_link)
    return 0


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "links.list"), format_list)
    return 0


def cmd_expire(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "links.expire", link_id=args.id), format_link)
    return 0


def cmd_bulk(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "links.bulk_create", dry_run=args.dry_run, expires_days=args.expires_days,
                  store_id=args.store)

    def human(r: dict[str, Any]) -> str:
        head = f"{r['open_invoices']} open QuickBooks invoice(s), {r['already_linked']} already linked"
        if r["dry_run"]:
            todo = "\n".join(f"  would link invoice {w['qbo_doc_number']} ({w['balance']})" for w in r["would_create"])
            return f"{head}\n{todo or '  nothing to do'}"
        made = "\n".join(f"  {c['qbo_doc_number']}: {c['url']}" for c in r["created"])
        failed = "\n".join(f"  {f['qbo_doc_number']}: FAILED {f['error']}" for f in r["failed"])
        return "\n".join(x for x in (head, made, failed) if x)

    emit(args, result, human)
    return 1 if result.get("failed") else 0


def cmd_qr(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    link = call(args, environ, "links.get", link_id=args.id)
    if not link.get("url") or link["state"] != "active":
        raise CommandError(f"link {args.id} is {link['state']}; it has no working URL")
    from sovterm import qr  # qrcode takes 20 ms to import: only this command pays for it

    text = qr.text_fitting(link["url"], 120)
    print(text if text is not None else "(the terminal is too narrow for the QR code)")
    print(link["url"])
    print(f"printable PNG: {link['url']}/qr.png")
    return 0


def cmd_keys_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "links.keys.list"), lambda keys: "\n".join(
        f"{k['kid']}  created {_when(k['created_at'])}  "
        + ("ACTIVE" if k["active"] else f"retired {_when(k['retired_at'])}" if k["retired_at"] else "verifies old links")
        for k in keys) or "no signing key yet (one is made with the first link)")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "links.keys.rotate"),
         lambda r: f"new links are signed with key {r['active']}; older links keep working until you retire their key")
    return 0


def cmd_keys_retire(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "links.keys.retire", kid=args.kid),
         lambda r: f"key {r['retired']} destroyed: links it signed no longer work")
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    link = group(sub, "link", "pay links: customers pay QuickBooks invoices (or fixed amounts) in bitcoin")
    create = add("create", cmd_create, "create a pay link", json_flag=True, parent=link)
    create.add_argument("--qbo-invoice", metavar="DOCNUMBER", help="the QuickBooks invoice number")
    create.add_argument("--amount", help="a fixed amount, e.g. 25.00")
    create.add_argument("--currency", help="currency of --amount, e.g. USD")
    create.add_argument("--memo", help="what the fixed amount is for (shown at checkout)")
    create.add_argument("--expires-days", type=int, help="days the link works (default: [links] default_expiry_days)")
    create.add_argument("--store", help="BTCPay store id (needed only when several stores are selected)")
    add("list", cmd_list, "list pay links", json_flag=True, parent=link)
    expire = add("expire", cmd_expire, "end a pay link now", json_flag=True, parent=link)
    expire.add_argument("id")
    bulk = add("bulk-create", cmd_bulk, "create links for every open QuickBooks invoice without one",
               json_flag=True, parent=link)
    bulk.add_argument("--dry-run", action="store_true", help="only list what would be created")
    bulk.add_argument("--expires-days", type=int)
    bulk.add_argument("--store")
    qr_cmd = add("qr", cmd_qr, "print a pay link as a QR code", parent=link)
    qr_cmd.add_argument("id")
    keys = link.add_parser("keys", help="link-signing keys", description="link-signing keys").add_subparsers(
        dest="keys_cmd", required=True, metavar="COMMAND")
    add("list", cmd_keys_list, "list signing keys", json_flag=True, parent=keys)
    add("rotate", cmd_keys_rotate, "sign new links with a new key", json_flag=True, parent=keys)
    retire = add("retire", cmd_keys_retire, "destroy a key (its links stop working)", json_flag=True, parent=keys)
    retire.add_argument("kid")
