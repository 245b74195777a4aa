"""The headless core never imports Textual, even at run time; the import contracts hold."""

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


CONTRACTS = (
    "The headless core is layered: entry points, wiring, routes, workflows, connectors, storage",
    "Connectors never import the workflows above them",
    "The TUI reaches the daemon only through the control client (and shared leaf helpers)",
    "Production code never imports the simulators",
    "The headless core never imports Textual",
    "No import cycle anywhere in sovterm",
)


def test_the_import_contracts_hold() -> None:
    """The floor plan in docs/architecture.md, checked by import-linter from pyproject.toml's contracts."""
    linter = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(linter), "--no-cache"], capture_output=True, text=True, timeout=300,
                         cwd=Path(sovterm.__file__).parent.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    report = " ".join(out.stdout.split())
    for name in CONTRACTS:
        assert f"{name} KEPT" in report, f"contract missing or broken: {name}"
