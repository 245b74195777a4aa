"""The TCP listener: public routes only (webhooks, OAuth callback, pay pages) plus health and metrics.

Nothing administrative is served here; administration goes over the Unix control socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sovterm.services import Services

SERVICES = web.AppKey("services", Services)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per-request timeout, plus request counts and latency by route for /metrics."""
    services = request.app[SERVICES]
    started = time.perf_counter()
    status = 500
    try:
        async with asyncio.timeout(services.settings.listener.request_timeout_s):
            response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except TimeoutError:
        status = 504
        return web.Response(status=504, text="request timed out\n")
    finally:
        services.metrics.observe_request(route_label(request), status, time.perf_counter() - started)


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
    services.metrics.ready.set(1 if ok else 0)
    return ok, checks


async def readyz(request: web.Request) -> web.Response:
    ok, checks = await readiness(request.app[SERVICES])
    return web.json_response({"ready": ok, **checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[SERVICES].metrics.registry
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_listener_app(services: Services) -> web.Application:
    app = web.Application(
        client_max_size=services.settings.listener.max_body_bytes, middlewares=[observe]
    )
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
