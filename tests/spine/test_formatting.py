"""One formatting module: ages, durations and amounts read the same on every surface, and nothing copies them."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest

import sovterm
from sovterm import amounts, formatting
from sovterm.formatting import age, duration, money_text, sats_text, signed_sats_text


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "never"), (0, "0 s ago"), (42.4, "42 s ago"), (95, "95 s ago"), (119, "119 s ago"),
    (120, "2 min ago"), (400, "7 min ago"), (7199, "120 min ago"), (7200, "2.0 h ago"), (9000, "2.5 h ago"),
    (172_799, "48.0 h ago"), (172_800, "2 days ago"), (3 * 86400 + 600, "3 days ago"),
])
def test_age(seconds: float | None, text: str) -> None:
    assert age(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (42.9, "42 s"), (119, "119 s"), (120, "2 min"), (3720, "62 min"), (7200, "2 h 0 min"),
    (90_000, "25 h 0 min"), (172_800, "2 d 0 h"), (3 * 86400 + 4 * 3600 + 59, "3 d 4 h"),
])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_satoshis_have_thousands_separators_and_changes_a_sign() -> None:
    assert sats_text(250_000) == "250,000 sats" and sats_text(1) == "1 sats" and sats_text(0) == "0 sats"
    assert sats_text(None) == "?"
    assert signed_sats_text(-20_500) == "-20,500 sats" and signed_sats_text(1_000) == "+1,000 sats"
    assert signed_sats_text(0) == "+0 sats"


@pytest.mark.parametrize(("amount", "currency", "text"), [
    ("1234.5", "USD", "1,234.50 USD"), ("12", "EUR", "12.00 EUR"), ("0.10", "USD", "0.10 USD"),
    ("0.00012345", "BTC", "0.00012345 BTC"), ("1E-8", "BTC", "0.00000001 BTC"), ("12.345", "USD", "12.345 USD"),
])
def test_money_shows_cents_or_every_digit_never_scientific(amount: str, currency: str, text: str) -> None:
    assert money_text(Decimal(amount), currency) == text


def test_formatting_is_a_leaf_module() -> None:
    """The TUI may import only the control client and leaf helpers: formatting needs nothing but the stdlib
    and sovterm.amounts (itself stdlib only)."""
    for module, allowed in ((formatting, {"sovterm.amounts"}), (amounts, set())):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert {m for m in imported if m.startswith("sovterm")} <= allowed
        stdlib = {m.split(".")[0] for m in imported if not m.startswith("sovterm")}
        assert stdlib <= {"__future__", "decimal", "csv", "io", "typing"}


# How the copies looked: an age ladder ('... s ago'), a satoshi count with separators, an age/duration helper.
COPIES = re.compile(r's ago"|:\+?,\} sats|def (_?age|duration|format_sats|format_amount)\(')


def test_no_module_keeps_its_own_copy() -> None:
    root = Path(sovterm.__file__).parent
    copies = [f"{p.relative_to(root)}: {m.group(0)}" for p in sorted(root.rglob("*.py"))
              if p.name != "formatting.py" and not p.is_relative_to(root / "sim")
              for m in COPIES.finditer(p.read_text())]
    assert copies == []


def test_an_analytics_series_exports_as_csv_with_a_total_row() -> None:
    report = {"currency": "EUR", "kpis": {"created": 3, "settled": 2, "volume": "10.50", "volume_sats": 21_000},
              "series": [{"period": "2026-11", "created": 3, "settled": 2, "volume": "10.50", "sats": 21_000}]}
    assert formatting.analytics_csv(report) == (
        "period,created,settled,volume_EUR,sats\n2026-11,3,2,10.50,21000\ntotal,3,2,10.50,21000\n")
    assert formatting.percent("0.7500") == "75.0 %"
