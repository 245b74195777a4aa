"""#19 point 12: the control API refuses unknown parameters, answers deeply nested JSON, and keeps
connection slots for admins with a cap per user."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sovterm.control import protocol as rpc
from sovterm.control.roles import Peer, Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.parts.docs import registry


class ScriptedPolicy:
    """Peers in the order they connect (every test process has one uid; roles are what is tested)."""

    def __init__(self) -> None:
        self.next: deque[Peer] = deque()

    def identify(self, sock: socket.socket) -> Peer:
        return self.next.popleft()


def peer(uid: int, role: Role) -> Peer:
    return Peer(pid=1, uid=uid, gid=uid, user=f"u{uid}", role=role)


async def no_audit(*row: object, conn: object = None) -> None:
    return None


async def _exchange(path: Path, line: bytes) -> tuple[dict[str, Any], asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=rpc.MAX_LINE_BYTES)
    writer.write(line)
    await writer.drain()
    return json.loads(await asyncio.wait_for(reader.readline(), 10)), writer


class BulkParams(BaseModel):
    dry_run: bool = False
    store_id: str | None = None


@pytest.fixture
async def strict_server(tmp_path: Path):
    srv = ControlServer(tmp_path / "c.sock", ScriptedPolicy(), parts=lambda name: None,  # type: ignore[arg-type]
                        audit=no_audit, version="t", max_clients=16)
    srv.created = []  # type: ignore[attr-defined]

    @srv.method("links.bulk_create", role=Role.VIEWER, params=BulkParams)
    async def bulk(ctx: CallContext, dry_run: bool, store_id: str | None) -> str:
        srv.created.append(dry_run)  # type: ignore[attr-defined]
        return "dry" if dry_run else "created"

    @srv.method("ping", role=Role.VIEWER)
    async def ping(ctx: CallContext) -> str:
        return "pong"

    await srv.start()
    yield srv
    await srv.stop()


async def test_misspelt_parameter_is_refused_with_the_valid_names(strict_server: ControlServer) -> None:
    strict_server.policy.next.extend([peer(0, Role.ADMIN)] * 2)  # type: ignore[attr-defined]
    answer, writer = await _exchange(strict_server.path, rpc.request(1, "links.bulk_create", {"dryrun": True}))
    writer.close()
    assert answer["error"]["code"] == rpc.INVALID_PARAMS
    assert "'dryrun' (did you mean 'dry_run'?)" in answer["error"]["message"]
    assert "valid parameters: dry_run, store_id" in answer["error"]["message"]
    assert strict_server.created == []  # type: ignore[attr-defined]  # nothing ran for real
    answer, writer = await _exchange(strict_server.path, rpc.request(2, "ping", {"verbose": True}))
    writer.close()
    assert answer["error"]["code"] == rpc.INVALID_PARAMS and "ping takes no parameters" in answer["error"]["message"]


async def test_every_daemon_method_refuses_an_unknown_parameter(tmp_path: Path) -> None:
    """Every declared method of the real daemon, before its handler or its part is looked at."""
    srv = ControlServer(tmp_path / "c.sock", ScriptedPolicy(), parts=lambda name: None,  # type: ignore[arg-type]
                        audit=no_audit, version="t")
    srv.methods = registry()
    await srv.start()
    try:
        srv.policy.next.append(peer(0, Role.ADMIN))  # type: ignore[attr-defined]
        reader, writer = await asyncio.open_unix_connection(str(srv.path), limit=rpc.MAX_LINE_BYTES)
        names = sorted(srv.methods)
        for i, name in enumerate(names):
            writer.write(rpc.request(i, name, {"surely_not_a_param": 1}))
        await writer.drain()
        answers = {}
        for _ in names:
            answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
            answers[names[answer["id"]]] = answer
        writer.close()
        wrong = {name: a for name, a in answers.items() if a.get("error", {}).get("code") != rpc.INVALID_PARAMS}
        assert wrong == {}
        assert all("surely_not_a_param" in a["error"]["message"] for a in answers.values())
    finally:
        await srv.stop()


async def test_deeply_nested_json_gets_a_parse_error(strict_server: ControlServer) -> None:
    strict_server.policy.next.append(peer(0, Role.ADMIN))  # type: ignore[attr-defined]
    depth = 100_000
    line = b'{"jsonrpc":"2.0","id":7,"method":"ping","params":' + b"[" * depth + b"]" * depth + b"}\n"
    answer, writer = await _exchange(strict_server.path, line)
    writer.close()
    assert answer["id"] is None and answer["error"]["code"] == rpc.PARSE_ERROR


async def test_viewers_cannot_take_the_admin_slots_nor_one_user_all(strict_server: ControlServer) -> None:
    """16 slots: 2 kept for admins, at most 8 per user."""
    policy: ScriptedPolicy = strict_server.policy  # type: ignore[assignment]
    held: list[asyncio.StreamWriter] = []
    outcomes: dict[int, list[bool]] = {}
    for uid, attempts in ((1001, 10), (1002, 10)):
        for _ in range(attempts):
            policy.next.append(peer(uid, Role.VIEWER))
            answer, writer = await _exchange(strict_server.path, rpc.request(1, "ping"))
            outcomes.setdefault(uid, []).append("result" in answer)
            if "result" in answer:
                held.append(writer)
            else:
                assert answer["error"]["code"] == rpc.FORBIDDEN
                writer.close()
    assert outcomes[1001].count(True) == 8  # the cap per user
    assert outcomes[1002].count(True) == 6  # the last 2 of 16 are kept for admins
    for _ in range(2):
        policy.next.append(peer(0, Role.ADMIN))
        answer, writer = await _exchange(strict_server.path, rpc.request(1, "ping"))
        assert answer["result"] == "pong"
        held.append(writer)
    assert len(strict_server.connections) == 16
    for writer in held:
        writer.close()
