"""The month-end remeasurement loop is off unless `[books] remeasure_month_end` turns it on, and it
remeasures as of the last day of the previous month."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

from sovterm.books.service import last_month_end
from sovterm.config import BooksSettings, Settings
from sovterm.parts.books import books_loops


def _loop_names(tmp_path: Path, books: BooksSettings) -> list[str]:
    services = SimpleNamespace(settings=Settings(data_dir=tmp_path, books=books))
    return [spec.name for spec in books_loops(services)]  # type: ignore[arg-type]


def test_the_month_end_loop_is_off_by_default_and_on_when_configured(tmp_path: Path) -> None:
    assert _loop_names(tmp_path, BooksSettings()) == ["books.rates"]
    assert _loop_names(tmp_path, BooksSettings(remeasure_month_end=True)) == ["books.rates", "books.month_end"]


def test_the_period_is_the_previous_months_last_day() -> None:
    assert last_month_end(date(2026, 3, 1)) == date(2026, 2, 28)
    assert last_month_end(date(2028, 3, 15)) == date(2028, 2, 29)
    assert last_month_end(date(2026, 1, 31)) == date(2025, 12, 31)
