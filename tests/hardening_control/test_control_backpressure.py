"""#19 point 3: a socket client that sends requests and never reads the replies cannot grow the daemon.

The server stops reading from a client with too much outstanding (backpressure), keeps every reply of a
client that does read them, disconnects one that stays stuck, and answers everyone else meanwhile.
Assertions are on queue sizes and disconnects, never on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import pytest

from sovterm.control import protocol as rpc
from sovterm.control.roles import Role, RolePolicy
from sovterm.control.server import CallContext, Connection, ControlServer

REPLY_BYTES = 256 * 1024  # big enough that a few unread replies fill the socket buffers
FLOOD = 1500


async def no_audit(*row: object, conn: object = None) -> None:
    return None


@pytest.fixture
async def server(tmp_path: Path):
    srv = ControlServer(tmp_path / "c.sock", RolePolicy(os.geteuid(), None, None), parts=lambda name: None,
                        audit=no_audit, version="t", stuck_after_s=2.0)

    @srv.method("big", role=Role.VIEWER)
    async def big(ctx: CallContext) -> str:
        return "x" * REPLY_BYTES

    @srv.method("ping", role=Role.VIEWER)
    async def ping(ctx: CallContext) -> str:
        return "pong"

    await srv.start()
    yield srv
    await srv.stop()


async def _until(check, what: str, limit: float = 20.0):
    """Poll a condition (bounded); the bound only stops a broken build from hanging."""
    for _ in range(int(limit / 0.01)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def _send_all(writer: asyncio.StreamWriter, count: int) -> None:
    with contextlib.suppress(ConnectionError):
        for i in range(count):
            writer.write(rpc.request(i, "big"))
            await writer.drain()


async def test_a_client_that_never_reads_is_bounded_then_cut_off(server: ControlServer) -> None:
    _, flood_writer = await asyncio.open_unix_connection(str(server.path))
    sender = asyncio.create_task(_send_all(flood_writer, FLOOD))
    flood: Connection = await _until(lambda: next(iter(server.connections), None), "the flood client attaches")
    peak = 0

    def saturated() -> bool:
        nonlocal peak
        peak = max(peak, flood.outstanding)
        return flood.outstanding >= server.max_outstanding

    await _until(saturated, "the flood client fills its outstanding replies")
    assert flood in server.connections
    reader, writer = await asyncio.open_unix_connection(str(server.path))  # another client meanwhile
    writer.write(rpc.request(1, "ping"))
    assert json.loads(await asyncio.wait_for(reader.readline(), 10))["result"] == "pong"
    writer.close()
    assert flood.outstanding <= server.max_outstanding
    await _until(lambda: saturated() and False or flood not in server.connections, "the stuck client is cut off")
    assert server.stuck_disconnects == 1
    assert peak <= server.max_outstanding
    assert server.requests_served < 100  # of 1500 sent: the daemon stopped reading them
    sender.cancel()
    flood_writer.close()


async def test_replies_are_never_dropped_for_a_client_that_reads_late(server: ControlServer) -> None:
    count = 120
    reader, writer = await asyncio.open_unix_connection(str(server.path), limit=2 * REPLY_BYTES)
    sender = asyncio.create_task(_send_all(writer, count))
    conn: Connection = await _until(lambda: next(iter(server.connections), None), "the client attaches")
    await _until(lambda: conn.outstanding >= server.max_outstanding, "its outstanding replies reach the bound")
    assert server.requests_served < count
    seen = set()
    for _ in range(count):
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert len(answer["result"]) == REPLY_BYTES
        seen.add(answer["id"])
        assert conn.outstanding <= server.max_outstanding
    assert seen == set(range(count)) and server.stuck_disconnects == 0
    await sender
    writer.close()

