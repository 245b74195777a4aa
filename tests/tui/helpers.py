from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Static


async def until(pilot: Pilot, condition: Callable[[], object], timeout: float = 8.0, what: str = "") -> None:
    """Let the app run until `condition()` holds (the connection worker never completes, so we poll its effect)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)
    await pilot.pause()


def plain(widget: Static) -> str:
    """What a Static shows, without markup."""
    content = widget.content
    return content.plain if isinstance(content, Content) else Content.from_markup(str(content)).plain
