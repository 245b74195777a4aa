"""Text for people: ages, durations and amounts, worded the same on every surface (CLI, TUI, web pages,
reports and QuickBooks memos).

A leaf module (the standard library and `sovterm.amounts` only): the TUI may import only the control
client and helpers like this one, and it must say "7 min ago" exactly as the CLI and the status page do.
Money stays exact: satoshis are integers and other amounts Decimal, never float.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from sovterm.amounts import plain

CENT = Decimal("0.01")


def age(seconds: float | None) -> str:
    """How long ago something happened: '42 s ago', '7 min ago', '2.0 h ago', '3 days ago', or 'never'."""
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def duration(seconds: float) -> str:
    """A span in whole units, coarser as it grows: '42 s', '7 min', '25 h 0 min', '3 d 4 h'."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def sats_text(value: int | None) -> str:
    """Satoshis with thousands separators: '250,000 sats'; '?' when not known."""
    return "?" if value is None else f"{value:,} sats"


def signed_sats_text(value: int) -> str:
    """A change in satoshis, always signed: '+1,000 sats', '-20,500 sats'."""
    return f"{value:+,} sats"


def money_text(amount: Decimal, currency: str) -> str:
    """An amount to pay: '1,234.50 USD' in cents when it is whole cents, else every digit it has
    ('0.00012345 BTC', never '1.2345E-4 BTC')."""
    return f"{amount:,.2f} {currency}" if amount == amount.quantize(CENT) else f"{plain(amount)} {currency}"


def percent(rate: str | Decimal) -> str:
    """A rate as a percentage to one place: '0.7500' -> '75.0 %'."""
    return f"{Decimal(rate) * 100:.1f} %"


ANALYTICS_SERIES = ("period", "created", "settled", "volume", "sats")


def analytics_csv(report: dict[str, Any]) -> str:
    """An `analytics.report` answer's series as CSV for a spreadsheet: the report's currency in the volume
    column's name, and a total row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "created", "settled", f"volume_{report['currency']}", "sats"])
    for bucket in report["series"]:
        writer.writerow([bucket[c] for c in ANALYTICS_SERIES])
    k = report["kpis"]
    writer.writerow(["total", k["created"], k["settled"], k["volume"], k["volume_sats"]])
    return out.getvalue()


HOLDINGS_COLUMNS = ("account", "sats", "cost", "rate", "fair value", "unrealized", "carried", "to remeasure")


def holding_cells(h: dict[str, Any]) -> tuple[str, ...]:
    """One `books.holdings` row as the CLI and the TUI show it (HOLDINGS_COLUMNS)."""
    cur = h["currency"]
    return (f"{h.get('account') or h['account_id']} ({h['account_id']})", sats_text(h["sats"]),
            money_text(Decimal(h["cost"]), cur), f"{Decimal(h['rate']):,} {cur}/BTC ({h['rate_day']})",
            money_text(Decimal(h["fair_value"]), cur), f"{Decimal(h['unrealized']):+,.2f} {cur}",
            money_text(Decimal(h["carrying"]), cur),
            "posted" if h.get("remeasured") else f"{Decimal(h['remeasurement']):+,.2f} {cur}")
