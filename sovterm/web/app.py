"""The TCP listener: public routes only (webhooks, OAuth callback, pay pages) plus health and metrics.

Nothing administrative is served here; administration goes over the Unix control socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sovterm.logs import get_logger
from sovterm.services import Services

log = get_logger("web")

SERVICES = web.AppKey("services", Services)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


class RequestDeadlines:
    """The listener's per-request timeout, enforced by one periodic sweep for all requests.

    Arming and disarming a timer per request (`asyncio.timeout`) was a measurable share of a webhook's
    cost; here a request costs a dict insert and delete, and an overrun is cancelled within a quarter
    of the timeout (a second at most) of its deadline. A cancelled request answers 504 (see `observe`)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.sweep_s = min(1.0, timeout_s / 4)
        self._running: dict[asyncio.Task[Any], float] = {}
        self._overran: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(self.sweep_s, self._sweep)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    def enter(self, task: asyncio.Task[Any]) -> None:
        self._running[task] = time.monotonic() + self.timeout_s

    def overran(self, task: asyncio.Task[Any]) -> bool:
        """Whether the sweep cancelled this request for overrunning its deadline."""
        return task in self._overran

    def leave(self, task: asyncio.Task[Any]) -> None:
        del self._running[task]
        self._overran.discard(task)

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in self._running.items():
            if deadline <= now and task not in self._overran:
                self._overran.add(task)
                task.cancel("request timed out")
        self._sweeper = asyncio.get_running_loop().call_later(self.sweep_s, self._sweep)


DEADLINES = web.AppKey("deadlines", RequestDeadlines)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per-request timeout, plus request counts and latency by route for /metrics."""
    app = request.app
    deadlines = app[DEADLINES]
    task = asyncio.current_task()
    assert task is not None
    started = time.perf_counter()
    status = 500
    deadlines.enter(task)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        if not deadlines.overran(task):
            raise  # shutdown or the client went away: not ours to answer
        task.uncancel()
        status = 504
        return web.Response(status=504, text="request timed out\n")
    else:
        status = response.status
        return response
    finally:
        deadlines.leave(task)
        app[SERVICES].metrics.observe_request(route_label(request), status, time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "alive"})


async def readiness(services: Services) -> tuple[bool, dict[str, object]]:
    """Every check /readyz makes, shared with `sovterm status`."""
    checks: dict[str, object] = {}
    ok = True
    db = services.db
    try:
        assert db is not None
        await db.write(
            "INSERT INTO kv(key, value, updated_at) VALUES('health.probe', '1', strftime('%s','now')) "
            "ON CONFLICT(key) DO UPDATE SET updated_at = excluded.updated_at"
        )
        checks["database"] = "writable"
    except Exception as exc:  # report, never raise: this is the health endpoint
        ok = False
        checks["database"] = f"not writable: {type(exc).__name__}"
    stale = services.heartbeats.stale()
    checks["loops"] = services.heartbeats.snapshot()
    if stale:
        ok = False
        checks["stale_loops"] = stale
    free = psutil.disk_usage(str(services.settings.data_dir)).free
    services.metrics.free_disk.set(free)
    min_free = services.settings.health.min_free_disk_mb * 1024 * 1024
    checks["disk_free_mb"] = free // (1024 * 1024)
    if free < min_free:
        ok = False
        checks["disk"] = f"low: {free // (1024 * 1024)} MB free, needs {min_free // (1024 * 1024)} MB"
    connectors = services.connectors.snapshot()
    checks["connectors"] = connectors
    if any(not c["ready"] for c in connectors.values()):
        ok = False
    if services.mints is not None:  # a mint down is an alert, not a reason the daemon is unready
        checks["mints"] = services.mints.snapshot()
    services.metrics.ready.set(1 if ok else 0)
    return ok, checks


async def readyz(request: web.Request) -> web.Response:
    ok, checks = await readiness(request.app[SERVICES])
    return web.json_response({"ready": ok, **checks}, status=200 if ok else 503)


SYNC_REFRESH_S = 5.0  # a scrape flood re-reads the sync counts at most this often


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    sync = services.sync
    if sync is not None and time.monotonic() - services.metrics.sync_refreshed_at >= SYNC_REFRESH_S:
        services.metrics.sync_refreshed_at = time.monotonic()
        try:
            services.metrics.observe_sync(await asyncio.wait_for(sync.status(), 3.0), await sync.posting_counts())
        except Exception:  # the rest of /metrics still answers; the sync figures keep their last values
            log.warning("sync figures for /metrics unavailable", exc_info=True)
    registry = services.metrics.registry
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _sweep_deadlines(app: web.Application) -> AsyncIterator[None]:
    app[DEADLINES].start()
    yield
    app[DEADLINES].stop()


def create_listener_app(services: Services) -> web.Application:
    app = web.Application(
        client_max_size=services.settings.listener.max_body_bytes, middlewares=[observe]
    )
    app[SERVICES] = services
    app[DEADLINES] = RequestDeadlines(services.settings.listener.request_timeout_s)
    app.cleanup_ctx.append(_sweep_deadlines)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
