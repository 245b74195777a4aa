"""Background tasks are kept until done, a failure is logged, and cancel() ends them all."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sovterm.tasks import Background


async def test_a_failed_task_is_logged_and_cancel_ends_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    background = Background(logging.getLogger("sovterm.test"))
    ended = asyncio.Event()

    async def fail() -> None:
        raise RuntimeError("boom")

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    background.spawn(fail())
    background.spawn(forever())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(background) == 1
    assert any(r.levelno == logging.ERROR and r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    await background.cancel()
    assert ended.is_set() and len(background) == 0


async def test_idle_waits_for_work_started_by_work() -> None:
    background = Background(logging.getLogger("sovterm.test"))
    done: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.01)
        done.append("second")

    async def first() -> None:
        background.spawn(second())
        done.append("first")

    background.spawn(first())
    await background.idle()
    assert done == ["first", "second"]
