"""The TUI's floor plan checks itself: no import circle, only the entry point knows the app class, the
one `.tcss` convention, and the wizard's steps in the order of
`views.STEPS`."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

from textual.screen import Screen
from textual.widget import Widget

import sovterm.tui
from sovterm.tui.screens.wizard.step import Step
from sovterm.tui.views import STEP_NAMES
from tests.tui.fakes import fixed_app

ROOT = Path(sovterm.tui.__file__).parent
ENTRY_POINT = "sovterm.tui.app"
MODULES = sorted(m.name for m in pkgutil.walk_packages(sovterm.tui.__path__, "sovterm.tui."))


def source(module: str) -> Path:
    path = ROOT.parent.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported(name: str) -> set[str]:
    """Every sovterm module `name` imports, wherever the import is (top level, a function, TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(source(name).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sovterm"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sovterm"))
    return found


def test_only_the_entry_point_knows_the_app_class() -> None:
    importers = [m for m in MODULES if m != ENTRY_POINT and ENTRY_POINT in imported(m)]
    assert importers == []
    casts = [m for m in MODULES if "SovtermApp" in source(m).read_text() and m != ENTRY_POINT]
    assert casts == []


def test_no_import_circle_in_the_tui() -> None:
    graph = {m: {i for i in imported(m) if i in MODULES and i != m} for m in MODULES}
    # a package's __init__ re-exporting its own module is not a circle back into the package
    graph = {m: {i for i in deps if not i.startswith(m + ".")} for m, deps in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module):], module))
        if module in done:
            return
        for dep in graph[module]:
            visit(dep, (*path, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())


def test_a_tcss_file_per_screen_and_no_inline_css() -> None:
    classes = [cls for m in MODULES for _, cls in inspect.getmembers(importlib.import_module(m), inspect.isclass)
               if cls.__module__ == m and issubclass(cls, Widget)]
    bases = {base for cls in classes for base in cls.__mro__[1:]}
    screens = [cls for cls in classes if issubclass(cls, Screen) and cls not in bases]  # DaemonScreen is a base
    assert {"AttachScreen", "ConfirmScreen", "BookScreen", "WizardScreen"} <= {s.__name__ for s in screens}
    named = set()
    for screen in screens:
        module = Path(inspect.getfile(screen))
        stem = module.parent.name if module.parent.name != "screens" else module.stem
        assert screen.CSS_PATH == f"{stem}.tcss", f"{screen.__name__} styles itself in {screen.CSS_PATH}"
        assert (module.parent / screen.CSS_PATH).is_file()
        named.add(module.parent / screen.CSS_PATH)
    assert [cls.__name__ for cls in classes if "CSS" in vars(cls) or "DEFAULT_CSS" in vars(cls)] == []
    app = importlib.import_module(ENTRY_POINT).SovtermApp
    assert app.CSS_PATH == "app.tcss"
    assert set(ROOT.rglob("*.tcss")) == named | {ROOT / "app.tcss"}  # every file is used, by one screen module


def test_the_wizard_has_one_widget_per_step_in_order() -> None:
    from sovterm.tui.screens.wizard import WizardScreen

    screen = WizardScreen(fixed_app().session)
    assert list(screen.steps) == list(STEP_NAMES)
    assert all(isinstance(step, Step) and step.id == f"step-{key}" for key, step in screen.steps.items())
