"""What a control method declares, the server does: the part check, the one audit row, the typed answer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from sovterm.control import protocol as rpc
from sovterm.control.roles import Peer, Role, RolePolicy
from sovterm.control.server import CallContext, Connection, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.parts.docs import registry, render


class ChangeParams(BaseModel):
    refuse: bool = False
    dry: bool = False


class Greeting(Result):
    text: str
    count: int


class Fixture:
    """A server with one part that can be running or not, and an audit trail in a list."""

    def __init__(self) -> None:
        self.running: dict[str, object] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.server = ControlServer(
            None, RolePolicy(0, None, None), parts=self.running.get, audit=self.write, version="t"  # type: ignore[arg-type]
        )

    async def write(self, *row: Any, conn: Any = None) -> None:
        self.rows.append(row)

    async def call(self, method: str, **params: Any) -> Any:
        conn = Connection(Peer(1, 1000, 1000, "alice", Role.ADMIN), None, 10)  # type: ignore[arg-type]
        return await self.server.dispatch(conn, method, params)


@pytest.fixture
def fx() -> Fixture:
    fx = Fixture()

    @fx.server.method("greet", role=Role.VIEWER, part="greeter")
    async def greet(ctx: CallContext) -> Greeting:
        """Greets with the running part's word."""
        return Greeting(text=ctx.part, count=2)

    @fx.server.method("greet.all", role=Role.VIEWER)
    async def greet_all(ctx: CallContext) -> list[Greeting]:
        """Several greetings."""
        return [Greeting(text="a", count=1), Greeting(text="b", count=2)]

    @fx.server.method("thing.change", role=Role.ADMIN, params=ChangeParams, audit="thing.change")
    async def change(ctx: CallContext, refuse: bool = False, dry: bool = False) -> dict[str, Any]:
        """Changes a thing."""
        ctx.audit(subject="T1", detail={"dry": dry})
        if refuse:
            raise UserFacingError("not that thing", fix="another")
        if dry:
            ctx.skip_audit()
        return {"changed": not dry}

    @fx.server.method("thing.break", role=Role.ADMIN, audit="thing.break")
    async def broken(ctx: CallContext) -> None:
        """Breaks."""
        raise KeyError("secret internals")

    return fx


async def test_a_method_whose_part_is_not_running_answers_one_clear_error(fx: Fixture) -> None:
    with pytest.raises(rpc.RpcError) as refused:
        await fx.call("greet")
    assert refused.value.code == rpc.USER_ERROR
    assert refused.value.message.startswith("the greeter part is not running\n  fix: the daemon is starting")
    fx.running["greeter"] = "hello"
    assert await fx.call("greet") == {"text": "hello", "count": 2}


async def test_result_models_are_serialized_as_json_objects(fx: Fixture) -> None:
    assert await fx.call("greet.all") == [{"text": "a", "count": 1}, {"text": "b", "count": 2}]
    assert fx.server.methods["greet.all"].result_models == [Greeting]
    assert fx.server.methods["thing.change"].result_models == []


async def test_an_audited_call_writes_exactly_one_row(fx: Fixture) -> None:
    assert await fx.call("thing.change") == {"changed": True}
    assert fx.rows == [("alice", "thing.change", "T1", {"dry": False}, "ok")]
    fx.rows.clear()
    with pytest.raises(rpc.RpcError) as refused:
        await fx.call("thing.change", refuse=True)
    assert refused.value.code == rpc.USER_ERROR
    assert fx.rows == [("alice", "thing.change", "T1", {"dry": False, "error": "not that thing"}, "refused")]
    fx.rows.clear()
    with pytest.raises(rpc.RpcError) as failed:
        await fx.call("thing.break")
    assert failed.value.code == rpc.INTERNAL_ERROR
    assert fx.rows == [("alice", "thing.break", None, {"error": "KeyError"}, "failed")]
    fx.rows.clear()
    assert await fx.call("thing.change", dry=True) == {"changed": False}
    assert fx.rows == []  # a dry run changed nothing


def test_the_daemons_declarations_are_in_the_reference() -> None:
    methods = registry()
    assert methods["btcpay.unfollow"].part == "btcpay" and methods["btcpay.unfollow"].audit == "btcpay.unfollow"
    assert methods["loops.pause"].audit == "loops.pause" and methods["loops.pause"].part is None
    doc = render()
    assert "| `btcpay.unfollow` | admin | `btcpay` | `btcpay.unfollow` |" in doc
    [hello] = methods["hello"].result_models
    row = next(line for line in doc.splitlines() if line.startswith("| `hello` |"))
    assert all(f"`{name}`" in row for name in hello.model_fields)
    status = next(line for line in doc.splitlines() if line.startswith("| `btcpay.status` |"))
    assert "one of BTCPayStatus:" in status and "one of BTCPayNotConfigured:" in status
