"""`sovterm crowdfund list|show|refresh|books`: the followed stores' BTCPay Crowdfund campaigns, and where
one app's contributions are booked."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit, group


def _goal(c: dict[str, Any]) -> str:
    cur = c["target_currency"]
    if c["target_amount"] is None:
        return f"{c['raised']} {cur} raised (no goal)"
    return f"{c['raised']} of {c['target_amount']} {cur} ({c['percent']} %)"


def format_list(campaigns: list[dict[str, Any]]) -> str:
    if not campaigns:
        return "no Crowdfund apps in the followed stores (`sovterm crowdfund refresh` reads them from BTCPay)"
    return "\n".join(
        f"{c['app_id']}  {c['title'][:32]:<32} {_goal(c):<40} pending {c['pending']:>10}  "
        f"{c['contributors']} contributor(s)" for c in campaigns)


def format_detail(c: dict[str, Any]) -> str:
    lines = [
        f"{c['title']}  ({c['app_id']}, store {c['store_id']})",
        f"raised        {_goal(c)}",
        f"pending       {c['pending']} {c['target_currency']}"
        + (f" ({c['pending_percent']} %)" if c["pending_percent"] is not None else ""),
        f"contributors  {c['contributors']}",
        f"runs          {c['start_date'] or 'open'} to {c['end_date'] or 'no end'}",
    ]
    if c["reset_every"] != "Never":
        lines.append(f"resets        every {c['reset_every'].lower()}; counting since {c['last_reset']}, "
                     f"next {c['next_reset']}")
    lines.append(f"books         {books_text(c.get('books'))}")
    if c["perks"]:
        lines += ["", "perks sold"] + [f"  {p['title'][:32]:<32} {p['sold']:>5}" for p in c["perks"]]
    if c["daily"]:
        lines += ["", f"{'day':<12} {'contributions':>13} {'amount':>14}"]
        lines += [f"{d['day']:<12} {d['contributions']:>13} {d['amount']:>14}" for d in c["daily"]]
    return "\n".join(lines)


def books_text(names: dict[str, str] | None) -> str:
    if not names:
        return "the store's mapping (`sovterm crowdfund books APP --income NAME|ID` gives it its own)"
    return (f"income account {names['income_account']} (item {names['item']})"
            + (f", class {names['class']}" if names.get("class") else ""))


def format_refresh(r: dict[str, Any]) -> str:
    text = f"read {r['apps']} Crowdfund app(s); {r['new_invoices']} invoice(s) newly linked"
    return text + "".join(f"\n  store {s}: {e}" for s, e in r["errors"].items())


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "crowdfund.list"), format_list)
    return 0


def cmd_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "crowdfund.show", app_id=args.app), format_detail)
    return 0


def cmd_refresh(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "crowdfund.refresh"), format_refresh)
    return 0


def cmd_books(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    params: dict[str, Any] = {"app_id": args.app, "clear": args.clear}
    for key, value in (("income", args.income), ("class_name", args.class_name), ("item", args.item)):
        if value is not None:
            params[key] = value
    r = call(args, environ, "crowdfund.books", **params)
    emit(args, r, lambda r: f"Crowdfund app {r['app_id']}: {books_text(r['names'])}")
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    crowdfund = group(sub, "crowdfund", "BTCPay Crowdfund campaigns: goal, raised, contributors, perks")
    add("list", cmd_list, "every campaign of the followed stores", json_flag=True, parent=crowdfund)
    show = add("show", cmd_show, "one campaign: perks sold and contributions per day", json_flag=True,
               parent=crowdfund)
    show.add_argument("app", help="the Crowdfund app id")
    add("refresh", cmd_refresh, "re-read the apps and their invoice lists from BTCPay now", json_flag=True,
        parent=crowdfund)
    books = add("books", cmd_books, "the income account and class one app's contributions post to (not sales)",
                json_flag=True, parent=crowdfund)
    books.add_argument("app", help="the Crowdfund app id")
    books.add_argument("--income", metavar="NAME|ID", help="QuickBooks income account (e.g. Donations)")
    books.add_argument("--class", dest="class_name", metavar="NAME|ID", help="QuickBooks class")
    books.add_argument("--item", metavar="NAME|ID",
                       help="the item its SalesReceipts name (it must book to --income); default: one sovterm "
                            "creates, '<title> (Crowdfund)'")
    books.add_argument("--clear", action="store_true", help="back to the store's mapping")
