"""Serve a simulator app on a real loopback port from a background thread with its own event loop.

A daemon subprocess cannot reach an in-process test server bound to another loop, and `sovterm demo`
runs the simulators beside the TUI; both use this. The simulator's state lives on that loop, so
callers change it through `call` (a plain function) or `submit` (a coroutine), both thread-safe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class ThreadedApp:
    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0, name: str = "sim") -> None:
        self.host = host
        self.loop = asyncio.new_event_loop()
        # a simulated hang must not hold the shutdown: in-flight handlers get a second, then are cancelled
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        self._site: web.TCPSite | None = None
        self.port = port
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._runner.setup())
                self.loop.run_until_complete(self.listen(port))
            except BaseException as exc:  # reported to the constructor's caller
                failure.append(exc)
                started.set()
                return
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=serve, name=name, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError(f"{name} did not start")
        if failure:
            raise RuntimeError(f"{name} did not start: {failure[0]!r}")
        self.url = f"http://{host}:{self.port}"

    async def listen(self, port: int) -> None:
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self._site = site
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def unlisten(self) -> None:
        """Close the port and drop open connections: clients get "connection refused" until `listen`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        for conn in server.connections if server is not None else ():
            conn.force_close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the simulator's loop and return its result."""

        async def run() -> T:
            return fn(*args, **kwargs)

        return self.submit(run()).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
