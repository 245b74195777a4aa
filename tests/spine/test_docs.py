"""docs/control-api.md is generated from the method registry: it must be current and complete."""

from __future__ import annotations

from pathlib import Path

from sovterm.parts.docs import registry, render

DOC = Path(__file__).parents[2] / "docs" / "control-api.md"


def test_control_api_doc_is_current() -> None:
    assert DOC.read_text() == render(), "regenerate: python -m sovterm.parts.docs > docs/control-api.md"


def test_every_method_says_what_it_does_and_its_role() -> None:
    methods = registry()
    assert {"hello", "status", "logs.tail", "events.subscribe", "setup.btcpay.connect", "setup.qbo.start",
            "sync.status", "payouts.approve", "links.create"} <= set(methods)
    assert [m.name for m in methods.values() if not m.summary] == []
