"""`sovterm analytics`: how the business is doing, as a table, JSON, or CSV for a spreadsheet."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, call, emit
from sovterm.formatting import analytics_csv, percent, sats_text


def format_report(r: dict[str, Any]) -> str:
    k, cur = r["kpis"], r["currency"]
    scope = f"store {r['store_id']}" if r.get("store_id") else "all stores"
    lines = [
        f"{scope} · {r['from']} to {r['to']} ({r['tz']})",
        "",
        f"invoices created   {k['created']:>8}    settled {k['settled']}   conversion {percent(k['conversion'])}",
        f"expired            {k['expired']:>8}    {percent(k['expired_rate'])}",
        f"paid partially     {k['partial']:>8}    {percent(k['partial_rate'])}",
        f"overpaid           {k['overpaid']:>8}    {percent(k['overpaid_rate'])}",
        f"volume             {k['volume']:>14} {cur}   {sats_text(k['volume_sats'])}",
        f"average ticket     {k['average_ticket']:>14} {cur}",
    ]
    others = {c: v for c, v in k["volume_by_currency"].items() if c != cur}
    if others:
        lines.append("also settled       " + ", ".join(f"{v} {c}" for c, v in others.items()))
    refunded = ", ".join(f"{v} {c}" for c, v in k["refunded"].items()) or "-"
    lines += [
        f"refunds            {k['refunds']:>8}    {refunded}",
        f"payouts            {k['payouts']:>8}    {sats_text(k['paid_out_sats'])}",
        "",
        "status distribution: " + (", ".join(f"{s} {n}" for s, n in r["statuses"].items()) or "-"),
    ]
    if r["methods"]:
        lines += ["", f"{'payment method':<16} {'payments':>8} {'invoices':>8} {'volume ' + cur:>16} {'sats':>16}"]
        lines += [f"{m['method']:<16} {m['payments']:>8} {m['invoices']:>8} {m['volume']:>16} {m['sats']:>16,}"
                  for m in r["methods"]]
    if r["items"]:
        lines += ["", f"{'top items':<32} {'invoices':>8} {'volume ' + cur:>16}"]
        lines += [f"{i['item'][:32]:<32} {i['invoices']:>8} {i['volume']:>16}" for i in r["items"]]
    lines += ["", f"{'by ' + r['by']:<12} {'created':>8} {'settled':>8} {'volume ' + cur:>16} {'sats':>16}"]
    lines += [f"{b['period']:<12} {b['created']:>8} {b['settled']:>8} {b['volume']:>16} {b['sats']:>16,}"
              for b in r["series"]]
    return "\n".join(lines)


def cmd_analytics(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    params = {"by": args.by} | ({"tz": args.tz} if args.tz else {})
    for key, value in (("store_id", args.store), ("from", args.date_from), ("to", args.date_to),
                       ("currency", args.currency)):
        if value is not None:
            params[key] = value
    report = call(args, environ, "analytics.report", **params)
    if args.csv:
        print(analytics_csv(report), end="")
    else:
        emit(args, report, format_report)
    return 0


def add_commands(sub: Any, add: Adder) -> None:
    p = add("analytics", cmd_analytics, "invoices, volume, conversion, payment methods and items for a period",
            json_flag=True)
    p.add_argument("--store", help="one store id (default: every followed store)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day, YYYY-MM-DD (default: 30 days ago)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last day, YYYY-MM-DD (default: today)")
    p.add_argument("--by", choices=("day", "week", "month"), default="day", help="series buckets")
    p.add_argument("--tz", help="time zone of the days (IANA name; default: the [analytics] timezone setting)")
    p.add_argument("--currency", help="only invoices in this currency (default: all; volume in the main one)")
    p.add_argument("--csv", action="store_true", help="print the series as CSV")
