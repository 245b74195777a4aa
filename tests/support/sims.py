"""Simulators on a real loopback port, served from a background thread (`sovterm.sim.runner`), for
tests that drive a real daemon subprocess (which cannot reach an in-process `TestServer` bound to the
test's own event loop).

`run_app_in_thread` and `run_qbo_sim` return `(base_url, stop)`; `stop()` shuts the server down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from sovterm.sim.runner import ThreadedApp

T = TypeVar("T")


def run_app_in_thread(app: web.Application, host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Serve `app` on `host`, port 0, in a thread with its own event loop."""
    served = ThreadedApp(app, host=host)
    return served.url, served.stop


def run_qbo_sim(state: object) -> tuple[str, Callable[[], None]]:
    """The QuickBooks simulator for `state` (a `QBOSimState`) on a real port."""
    from sovterm.sim.qbo import QBOSimState, create_app

    assert isinstance(state, QBOSimState)
    return run_app_in_thread(create_app(state))


class BTCPaySimServer(ThreadedApp):
    """The BTCPay simulator on a real loopback port, in a thread with its own event loop.

    The simulator's state lives on that loop (it schedules webhook deliveries there), so a test drives
    it through `call(fn, ...)` or `run(coro_fn)`. `go_offline()`/`go_online()` close and reopen the
    port (connection refused meanwhile) without losing the state.
    """

    def __init__(self, state: object | None = None, *, seed: int = 0, host: str = "127.0.0.1") -> None:
        from sovterm.sim.btcpay import BTCPaySimState, create_app

        self.state = state if state is not None else BTCPaySimState(seed=seed)
        assert isinstance(self.state, BTCPaySimState)
        super().__init__(create_app(self.state), host=host, name="btcpay-sim")
        self.call(setattr, self.state, "public_url", self.url)

    def run(self, coro_fn: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        """Await `coro_fn()` on the simulator's loop and return its result."""

        async def run() -> T:
            return await coro_fn()

        return self.submit(run()).result(timeout + 1)

    def wait_deliveries_idle(self, timeout: float = 5.0) -> None:
        self.run(lambda: self.state.wait_deliveries_idle(timeout), timeout)  # type: ignore[attr-defined]

    def go_offline(self) -> None:
        self.run(self.unlisten)

    def go_online(self) -> None:
        self.run(lambda: self.listen(self.port))


def start_btcpay_sim(state: object | None = None, *, seed: int = 0) -> BTCPaySimServer:
    """The BTCPay simulator (a fresh `BTCPaySimState` unless given) on a real port; `.stop()` when done."""
    return BTCPaySimServer(state, seed=seed)
