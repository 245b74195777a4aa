"""The headless core never imports Textual; production code never imports the simulators."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import sovterm

HEADLESS = sorted(
    m.name for m in pkgutil.walk_packages(sovterm.__path__, "sovterm.")
    if not m.name.startswith(("sovterm.tui", "sovterm.sim")) and m.name != "sovterm.__main__"
)


def test_headless_modules_do_not_load_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"mods = {HEADLESS!r}\n"
        "bad = []\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "    if any(k == 'textual' or k.startswith('textual.') for k in sys.modules):\n"
        "        bad.append(m); break\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"textual loaded by {out.stdout}"


def test_production_code_never_imports_the_simulators() -> None:
    root = Path(sovterm.__file__).parent
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py")
        if not p.is_relative_to(root / "sim") and p.name != "demo.py"
        and ("sovterm.sim" in p.read_text() or "from sovterm import sim" in p.read_text())
    ]
    assert offenders == []


def test_connectors_do_not_import_sync_and_store_imports_nothing_above() -> None:
    root = Path(sovterm.__file__).parent
    def imports(folder: str, banned: tuple[str, ...]) -> list[str]:
        return [
            str(p.relative_to(root)) for p in (root / folder).rglob("*.py")
            if any(f"sovterm.{b}" in p.read_text() for b in banned)
        ]
    assert imports("btcpay", ("sync", "web", "control", "cli", "tui")) == []
    assert imports("qbo", ("sync", "web", "control", "cli", "tui")) == []
    assert imports("store", ("btcpay", "qbo", "sync", "links", "payouts", "web", "control", "cli", "tui")) == []
