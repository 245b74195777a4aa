"""The burst log behind points 2 and 13: a flood of any size is a first line and one summary a window."""

from __future__ import annotations

import asyncio
import logging

from sovterm.burstlog import MAX_CLIENTS, BurstLog
from sovterm.web.connections import quiet_accept_errors


def test_a_burst_is_its_first_event_and_one_summary_per_window(caplog) -> None:
    caplog.set_level(logging.INFO, logger="t")
    now = [0.0]
    burst = BurstLog(logging.getLogger("t"), "refused thing", window_s=60, clock=lambda: now[0])
    for i in range(10_000):
        burst.note("bad_signature" if i % 2 else "unknown_store", f"detail {i}", f"10.0.{i % 300 // 256}.{i % 256}")
    now[0] = 61.0
    burst.note("bad_signature", "the next window's first")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0] == "refused thing: detail 0"
    assert "9,999 more in the last 60 s" in lines[1] and "bad_signature 5,000" in lines[1] and "most from" in lines[1]
    assert lines[2] == "refused thing: the next window's first"
    assert len(burst._clients) <= MAX_CLIENTS
    assert burst.total == 10_001


async def test_the_summary_comes_at_the_end_of_the_window_without_another_event(caplog) -> None:
    caplog.set_level(logging.INFO, logger="t")
    burst = BurstLog(logging.getLogger("t"), "refused thing", window_s=0.2)
    for i in range(50):
        burst.note("x", f"detail {i}")
    await asyncio.sleep(0.4)
    assert [r.getMessage() for r in caplog.records] == [
        "refused thing: detail 0", "refused thing: 49 more in the last 0 s (x 49)"]


def test_accept_failing_for_lack_of_descriptors_is_summed_up(caplog) -> None:
    caplog.set_level(logging.INFO, logger="t")
    handler = quiet_accept_errors(logging.getLogger("t"))
    loop = asyncio.new_event_loop()
    try:
        for _ in range(86_000):  # what one burst of idle connections wrote before, a line each
            handler(loop, {"message": "socket.accept() out of system resource",
                           "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "out of descriptors" in lines[0] and "Too many open files" in lines[0]
