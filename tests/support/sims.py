"""Simulators on a real loopback port, served from a background thread, for tests that drive a real
daemon subprocess (which cannot reach an in-process `TestServer` bound to the test's own event loop).

Each runner returns `(base_url, stop)`; `stop()` shuts the server down and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web


def run_app_in_thread(app: web.Application, host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Serve `app` on `host`, port 0, in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()
    box: dict[str, object] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, 0)
            loop.run_until_complete(site.start())
            box["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except BaseException as exc:  # report start-up failures to the caller
            box["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="sim-server", daemon=True)
    thread.start()
    if not started.wait(10):
        raise TimeoutError("simulator did not start")
    if "error" in box:
        raise RuntimeError(f"simulator did not start: {box['error']!r}")

    def stop() -> None:
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return f"http://{host}:{box['port']}", stop


def run_qbo_sim(state: object) -> tuple[str, Callable[[], None]]:
    """The QuickBooks simulator for `state` (a `QBOSimState`) on a real port."""
    from sovterm.sim.qbo import QBOSimState, create_app

    assert isinstance(state, QBOSimState)
    return run_app_in_thread(create_app(state))


class BTCPaySimServer:
    """The BTCPay simulator on a real loopback port, in a thread with its own event loop.

    The simulator's state lives on that loop (it schedules webhook deliveries there), so a test drives
    it through `call(fn, ...)`, which runs `fn` on the loop via `run_coroutine_threadsafe` and returns
    its result. `go_offline()`/`go_online()` close and reopen the port (connection refused meanwhile)
    without losing the state.
    """

    def __init__(self, state: object | None = None, *, seed: int = 0, host: str = "127.0.0.1") -> None:
        from aiohttp import web as _web

        from sovterm.sim.btcpay import BTCPaySimState, create_app

        self.state = state if state is not None else BTCPaySimState(seed=seed)
        assert isinstance(self.state, BTCPaySimState)
        self.host = host
        self.loop = asyncio.new_event_loop()
        self._web = _web
        self._runner = _web.AppRunner(create_app(self.state), access_log=None)
        self._site: object | None = None
        self.port = 0
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._runner.setup())
                self.loop.run_until_complete(self._listen(0))
            except BaseException as exc:  # report start-up failures to the caller
                failure.append(exc)
                started.set()
                return
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._runner.cleanup())
            self.loop.close()

        self._thread = threading.Thread(target=serve, name="btcpay-sim", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError("BTCPay simulator did not start")
        if failure:
            raise RuntimeError(f"BTCPay simulator did not start: {failure[0]!r}")
        self.url = f"http://{host}:{self.port}"
        self.call(setattr, self.state, "public_url", self.url)

    async def _listen(self, port: int) -> None:
        site = self._web.TCPSite(self._runner, self.host, port)
        await site.start()
        self._site = site
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def call(self, fn: Callable[..., object], *args: object, timeout: float = 10.0, **kwargs: object) -> object:
        """Run `fn(*args, **kwargs)` on the simulator's loop (thread-safe) and return its result."""

        async def run() -> object:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def run(self, coro_fn: Callable[[], object], timeout: float = 10.0) -> object:
        """Await `coro_fn()` on the simulator's loop and return its result."""

        async def run() -> object:
            return await coro_fn()  # type: ignore[misc]

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout + 1)

    def wait_deliveries_idle(self, timeout: float = 5.0) -> None:
        self.run(lambda: self.state.wait_deliveries_idle(timeout), timeout)  # type: ignore[attr-defined]

    def go_offline(self) -> None:
        """Stop listening and drop open connections: clients now get 'connection refused'."""

        async def close() -> None:
            assert self._site is not None
            await self._site.stop()  # type: ignore[attr-defined]
            self._site = None
            server = self._runner.server
            for conn in server.connections if server is not None else ():
                conn.force_close()

        self.run(close)

    def go_online(self) -> None:
        self.run(lambda: self._listen(self.port))

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def start_btcpay_sim(state: object | None = None, *, seed: int = 0) -> BTCPaySimServer:
    """The BTCPay simulator (a fresh `BTCPaySimState` unless given) on a real port; `.stop()` when done."""
    return BTCPaySimServer(state, seed=seed)
