"""The control server in-process: dispatch, roles, errors, backpressure."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from sovterm.control import protocol as rpc
from sovterm.control.client import CallFailed, ControlClient
from sovterm.control.roles import Role, RolePolicy
from sovterm.control.server import CallContext, ControlServer
from sovterm.errors import UserFacingError
from sovterm.events import EventBus


class EchoParams(BaseModel):
    text: str


class HelloParams(BaseModel):
    client: str
    protocol: int


@pytest.fixture
async def server(tmp_path: Path):
    async def no_audit(*row: object, conn: object = None) -> None:
        raise AssertionError("no method here is audited")

    srv = ControlServer(tmp_path / "run" / "c.sock", RolePolicy(os.geteuid(), None, None), parts=lambda name: None,
                        audit=no_audit, version="t", notify_limit=5)

    @srv.method("hello", role=Role.VIEWER, params=HelloParams)
    async def hello(ctx: CallContext, client: str, protocol: int) -> dict:
        return {"role": ctx.peer.role.name.lower()}

    @srv.method("echo", role=Role.VIEWER, params=EchoParams)
    async def echo(ctx: CallContext, text: str) -> str:
        return text

    @srv.method("fail.user", role=Role.VIEWER)
    async def fail_user(ctx: CallContext) -> None:
        raise UserFacingError("QuickBooks is not connected", fix="run `sovterm setup qbo`")

    @srv.method("fail.bug", role=Role.VIEWER)
    async def fail_bug(ctx: CallContext) -> None:
        raise KeyError("internal detail that must not reach the client")

    bus = EventBus()

    @srv.method("flood", role=Role.VIEWER)
    async def flood(ctx: CallContext) -> int:
        for i in range(50):
            ctx.connection.notify("event", {"i": i})
        return 50

    srv.bus = bus  # type: ignore[attr-defined]
    await srv.start()
    yield srv
    await srv.stop()


async def test_call_validation_and_errors(server: ControlServer) -> None:
    async with await ControlClient.connect(server.path) as client:
        assert client.role == "admin"
        assert await client.call("echo", text="hi") == "hi"
        with pytest.raises(CallFailed) as bad:
            await client.call("echo", text=3)
        assert bad.value.code == rpc.INVALID_PARAMS and "text" in bad.value.message
        with pytest.raises(CallFailed) as missing:
            await client.call("nope")
        assert missing.value.code == rpc.METHOD_NOT_FOUND
        with pytest.raises(CallFailed) as user:
            await client.call("fail.user")
        assert user.value.code == rpc.USER_ERROR and "sovterm setup qbo" in user.value.message
        with pytest.raises(CallFailed) as bug:
            await client.call("fail.bug")
        assert bug.value.code == rpc.INTERNAL_ERROR
        assert "internal detail" not in bug.value.message and bug.value.data["cid"] in bug.value.message


async def test_slow_client_is_told_what_it_missed(server: ControlServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(rpc.request(1, "flood"))
    await writer.drain()
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 5)
        lines.append(line)
        if b'"events.missed"' in line or len(lines) > 60:
            break
    writer.close()
    import json

    notes = [json.loads(x) for x in lines if b'"method"' in x]
    missed = next(n for n in notes if n["method"] == "events.missed")
    delivered = [n for n in notes if n["method"] == "event"]
    assert len(delivered) + missed["params"]["count"] >= 45  # nothing silently lost: counted


async def test_socket_is_born_0660_in_0750_dir(server: ControlServer) -> None:
    assert oct(server.path.stat().st_mode & 0o777) == "0o660"
    assert oct(server.path.parent.stat().st_mode & 0o777) == "0o750"


def test_role_policy() -> None:
    policy = RolePolicy(daemon_uid=999, admin_gid=5000, viewer_gid=5001)
    assert policy.role_for(0, 0) is Role.ADMIN
    assert policy.role_for(999, 999) is Role.ADMIN
    assert policy.role_for(1234, 100, {5000}) is Role.ADMIN
    assert policy.role_for(1234, 100, {5001}) is Role.VIEWER
    assert policy.role_for(1234, 5001) is Role.VIEWER
    assert policy.role_for(1234, 100, {42}) is Role.NONE
