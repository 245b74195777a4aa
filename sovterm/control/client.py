"""The asyncio client of the control API, for the TUI, the demo and tests (the CLI uses the blocking
`control.blocking` client; both raise `control.errors`).

One reader task owns the socket: replies resolve their pending futures, notifications go to a queue
the caller drains (`notifications()`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from sovterm.control import protocol as rpc
from sovterm.control.errors import CallFailed, DaemonUnavailable, explain_connect_error


class ControlClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._notes: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())
        self.hello: dict[str, Any] = {}

    @classmethod
    async def connect(cls, path: Path, *, client: str = "cli", timeout: float = 5.0) -> ControlClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path), limit=rpc.MAX_LINE_BYTES), timeout
            )
        except OSError as exc:
            raise explain_connect_error(path, exc) from None
        except TimeoutError:
            raise DaemonUnavailable(
                f"the daemon at {path} did not answer in {timeout:.0f} s",
                fix="check `systemctl status sovterm` and the daemon log",
            ) from None
        self = cls(reader, writer)
        try:
            self.hello = await asyncio.wait_for(
                self.call("hello", client=client, protocol=rpc.PROTOCOL_VERSION), timeout
            )
        except CallFailed as exc:
            await self.close()
            raise DaemonUnavailable(exc.message, fix="ask an administrator for access") from None
        except (TimeoutError, ConnectionError) as exc:
            await self.close()
            raise DaemonUnavailable(f"the daemon at {path} did not complete the handshake: {exc}") from None
        return self

    @property
    def role(self) -> str:
        return str(self.hello.get("role", "none"))

    async def call(self, method: str, **params: Any) -> Any:
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            self._writer.write(rpc.request(req_id, method, params))
            await self._writer.drain()
        except ConnectionError as exc:
            self._pending.pop(req_id, None)
            raise DaemonUnavailable(f"lost the connection to the daemon: {exc}") from None
        return await fut

    async def notifications(self) -> AsyncIterator[dict[str, Any]]:
        """Server-pushed messages ({"method", "params"}) until the connection closes."""
        while True:
            note = await self._notes.get()
            if note is None:
                return
            yield note

    async def close(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await self._task
        self._writer.close()
        with suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read(self) -> None:
        error: BaseException = DaemonUnavailable("the daemon closed the connection")
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if "method" in msg and "id" not in msg:
                    self._notes.put_nowait({"method": msg["method"], "params": msg.get("params", {})})
                    continue
                fut = self._pending.pop(msg.get("id"), None) if msg.get("id") is not None else None
                if "error" in msg:
                    err = msg["error"]
                    exc = CallFailed(err.get("code", rpc.INTERNAL_ERROR), err.get("message", ""), err.get("data"))
                    if fut is None:  # refused at connect: fail everything waiting
                        error = exc
                        break
                    if not fut.done():
                        fut.set_exception(exc)
                elif fut is not None and not fut.done():
                    fut.set_result(msg.get("result"))
        except (ConnectionError, ValueError) as exc:
            error = DaemonUnavailable(f"lost the connection to the daemon: {exc}")
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(error)
            self._pending.clear()
            self._notes.put_nowait(None)
