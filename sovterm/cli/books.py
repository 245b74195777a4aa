"""`sovterm books ...`: the bitcoin held at fair value, and its remeasurement in QuickBooks."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sovterm.cli import core
from sovterm.formatting import HOLDINGS_COLUMNS, holding_cells, money_text, sats_text


def holdings_text(rows: list[dict[str, Any]]) -> str:
    """`sovterm books holdings` for a person: one line per account, then the realized gains (FIFO)."""
    if not rows:
        return "no bitcoin account is mapped yet (sovterm setup accounts)"
    table = [HOLDINGS_COLUMNS, *(holding_cells(h) for h in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HOLDINGS_COLUMNS))]
    lines = [f"as of {rows[0]['as_of']}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    for h in rows:
        lines.append(f"rate: {h['rate_source']} on {h['rate_day']}")
        for r in h["realized"]:
            lines.append(f"  realized (FIFO) {r['day']} {r['ref']}: {sats_text(r['sats'])}, proceeds "
                         f"{money_text(Decimal(r['proceeds']), h['currency'])}, cost "
                         f"{money_text(Decimal(r['cost']), h['currency'])}, gain {Decimal(r['gain']):+,.2f}"
                         + (f" ({sats_text(r['uncovered_sats'])} without a lot)" if r["uncovered_sats"] else ""))
        lines += [f"  note: {n}" for n in h["notes"]]
    return "\n".join(lines)


def cmd_holdings(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = core.call(args, environ, "books.holdings", as_of=args.as_of)
    core.emit(args, rows, holdings_text)
    return 0


def remeasured_text(r: dict[str, Any]) -> str:
    lines = [f"remeasurement as of {r['as_of']} (gain/loss account {r['gain_account_id']})"]
    for e in r["entries"]:
        lines.append(f"  account {e['account_id']}: {e['state']}"
                     + (f", JournalEntry {e['qbo_id']} {Decimal(e['amount']):+,.2f}" if e["qbo_id"] else ""))
    return "\n".join(lines)


def cmd_remeasure(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "books.remeasure", as_of=args.as_of)
    core.emit(args, result, remeasured_text)
    return 0


def cmd_account(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "books.account", account=args.account)
    core.emit(args, result, lambda r: f"gains and losses on bitcoin go to {r['name']} ({r['type']}, id {r['id']})")
    return 0


def add_commands(sub: Any, add: core.Adder) -> None:
    grp = core.group(sub, "books", "the bitcoin held at fair value (ASU 2023-08)")
    p = add("holdings", cmd_holdings, "sats, cost, fair value and unrealized gain/loss per bitcoin account",
            json_flag=True, parent=grp)
    p.add_argument("--as-of", dest="as_of", metavar="YYYY-MM-DD", help="the reporting date (default: today, UTC)")
    p = add("remeasure", cmd_remeasure, "post the fair-value JournalEntry of each bitcoin account for the period "
            "ending on the date, once (admin)", json_flag=True, parent=grp)
    p.add_argument("--as-of", dest="as_of", metavar="YYYY-MM-DD", help="the period's end (default: today, UTC)")
    p = add("account", cmd_account, "map the unrealized gain/loss on bitcoin account (admin)", json_flag=True,
            parent=grp)
    p.add_argument("account", help="the QuickBooks account's name or Id (Other Income, Other Expense, ...)")
