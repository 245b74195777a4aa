"""Properties of the control protocol's framing (sovterm/control/protocol.py, the server's line reader and
the CLI's blocking client): one message is one line whatever it carries; any line a local process sends
gets at most one answer, a JSON-RPC error for what is not a request, and the connection keeps serving;
and the client hands back each reply and every notification in order however they interleave."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sovterm.amounts import plain
from sovterm.control import protocol as rpc
from sovterm.control.blocking import BlockingClient
from sovterm.control.errors import CallFailed
from sovterm.control.roles import Role, RolePolicy
from sovterm.control.server import CallContext, ControlServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
# text with everything that could split or end a line: newlines, CR, U+2028/2029, NUL, lone surrogates
tricky_text = st.text(st.sampled_from("\n\r\u2028\u2029\x00\ud800\"\\ a€") | st.characters(), max_size=30)
shared_server = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(st.dictionaries(tricky_text, json_values | tricky_text, max_size=5), st.integers())
def test_a_message_is_one_line_and_reads_back(params: dict[str, Any], req_id: int) -> None:
    line = rpc.request(req_id, "m", params)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"jsonrpc": "2.0", "id": req_id, "method": "m", "params": params}


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_travels_as_its_exact_digits(amount: Decimal) -> None:
    sent = json.loads(rpc.notification("n", {"amount": amount}))["params"]["amount"]
    assert sent == plain(amount) and Decimal(sent) == amount and "E" not in sent.upper()


class ServerThread:
    """A control server with one method, `echo`, on its own loop in a thread (the test drives it with
    plain sockets, as any local process could)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.server = ControlServer(path, RolePolicy(os.geteuid(), None, None), parts=lambda name: None,
                                    audit=self._no_audit, version="t", notify_limit=100)

        @self.server.method("echo", role=Role.VIEWER, params=EchoParams)
        async def echo(ctx: CallContext, still: str | None) -> Any:
            return {} if still is None else {"still": still}

        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    @staticmethod
    async def _no_audit(*row: object, conn: object = None) -> None:
        raise AssertionError("nothing here is audited")

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[tuple[socket.socket, Any]]:
    server = ServerThread(tmp_path / "c.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)  # a line that gets no answer fails the test instead of hanging it
    sock.connect(str(server.path))
    lines = sock.makefile("rb")
    yield sock, lines
    lines.close()
    sock.close()
    server.stop()


class EchoParams(BaseModel):
    still: str | None = None


def expected_answers(line: bytes) -> int:
    """How many replies a line should get: one, except a well-formed notification (no id) that succeeds."""
    if not line.strip():
        return 0
    try:
        msg = json.loads(line)
    except ValueError:
        return 1
    if isinstance(msg, dict) and msg.get("jsonrpc") == "2.0" and "method" in msg and msg.get("id") is None:
        # the server is strict: echo succeeds without parameters or with `still` as text, and nothing else
        params = msg.get("params") or {}
        fine = isinstance(params, dict) and set(params) <= {"still"} and isinstance(params.get("still", ""), str)
        return 0 if str(msg["method"]) == "echo" and fine else 1
    return 1


requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": st.sampled_from(["echo", "nope"]) | json_values},
    optional={"id": st.none() | st.integers() | st.text(max_size=8), "params": json_values},
)
lines = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    json_values.map(lambda v: json.dumps(v).encode()),
    requests.map(lambda r: json.dumps(r).encode()),
)


@shared_server
@given(lines)
def test_any_line_gets_at_most_one_answer_and_the_connection_keeps_serving(connection, line: bytes) -> None:
    sock, replies = connection
    sock.sendall(line + b"\n")
    answers = []
    for _ in range(expected_answers(line)):
        answers.append(json.loads(replies.readline()))
    for answer in answers:
        assert answer["jsonrpc"] == "2.0" and ("result" in answer) != ("error" in answer)
        if "error" in answer:
            assert answer["error"]["code"] in (rpc.PARSE_ERROR, rpc.INVALID_REQUEST, rpc.METHOD_NOT_FOUND,
                                               rpc.INVALID_PARAMS)
    probe = {"jsonrpc": "2.0", "id": "probe", "method": "echo", "params": {"still": "here"}}
    sock.sendall(json.dumps(probe).encode() + b"\n")
    assert json.loads(replies.readline()) == {"jsonrpc": "2.0", "id": "probe", "result": {"still": "here"}}


notes = st.lists(st.tuples(st.text(max_size=12), st.dictionaries(st.text(max_size=8), st.integers() | tricky_text,
                                                                   max_size=3)), max_size=4)


@given(notes, notes, json_values, st.booleans())
def test_the_client_returns_its_reply_and_keeps_every_notification_in_order(
        before: list, after: list, result: Any, fails: bool) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.settimeout(10)
        client = BlockingClient(ours)
        # the daemon's side: notifications, then the reply to request 1, then more notifications, then EOF
        stream = b"".join(rpc.notification(m, p) for m, p in before)
        stream += rpc.encode({"jsonrpc": "2.0", "id": 1, "error": {"code": rpc.USER_ERROR, "message": "no"}}
                             if fails else {"jsonrpc": "2.0", "id": 1, "result": result})
        stream += b"".join(rpc.notification(m, p) for m, p in after)
        theirs.sendall(stream)
        theirs.shutdown(socket.SHUT_WR)
        if fails:
            with pytest.raises(CallFailed, match="no"):
                client.call("x")
        else:
            assert client.call("x") == result
        assert json.loads(theirs.makefile("rb").readline())["method"] == "x"
        assert list(client.notifications()) == [{"method": m, "params": p} for m, p in before + after]
        client.close()
