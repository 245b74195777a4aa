"""The TCP listener: public routes only (webhooks, OAuth callback, pay pages) plus health and metrics.

Nothing administrative is served here; administration goes over the Unix control socket.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sovterm.logs import get_logger
from sovterm.services import Services
from sovterm.web.clients import TRUSTED, RateLimiter, TrustedProxies, client_address
from sovterm.web.connections import ConnectionGuard, connection_budget

log = get_logger("web")

SERVICES = web.AppKey("services", Services)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: Every answer's policy unless a page sets its own: nothing may load, nothing may frame it.
BASE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def page_policy(sample_page: str) -> str:
    """The Content-Security-Policy of a page whose `<style>` blocks are fixed text: the base policy plus
    exactly those styles (by hash, not 'unsafe-inline', so injected markup could style nothing)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
        for css in _STYLE.findall(sample_page)
    )
    return f"{BASE_POLICY}; style-src {hashes}" if hashes else BASE_POLICY


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """What browsers expect of a public page, on every answer of the listener (pages set a policy of
    their own with `page_policy`); and a `Server` header that names no versions."""
    headers = response.headers
    headers["Server"] = "sovterm"
    headers.setdefault("Content-Security-Policy", BASE_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")


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
GUARD = web.AppKey("connections", ConnectionGuard)
LIMITER = web.AppKey("rate_limiter", RateLimiter)

#: Which `listener.rate_limit_<group>_per_min` applies to a route; pay pages have their own
#: (`links.rate_limit_per_min`, counted by `web.links`), anything else counts as the status page.
RATE_GROUPS = {
    "/webhooks/btcpay/{store_id}": "webhook",
    "/oauth/qbo/callback": "callback",
    "/metrics": "metrics",
    "/healthz": "health",
    "/readyz": "health",
}
UNLIMITED_HERE = ("/pay/", "/{paywall}")  # the paywall limits its unpaid requests itself (web/paywall.py)


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every public route has a per-client limit, far above what BTCPay's retries or a busy shop send;
    beyond it, 429 with Retry-After (which BTCPay honours by retrying later)."""
    route = route_label(request)
    if route.startswith(UNLIMITED_HERE):
        return await handler(request)
    group = RATE_GROUPS.get(route, "status")
    per_min = getattr(request.app[SERVICES].settings.listener, f"rate_limit_{group}_per_min")
    if not request.app[LIMITER].allow(f"{group} {client_address(request)}", per_min):
        return web.Response(status=429, text="too many requests\n", headers={"Retry-After": "60"})
    return await handler(request)


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
    guard = app.get(GUARD)
    if guard is not None:
        guard.busy(request.protocol)
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
        if guard is not None:
            guard.idle(request.protocol)
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
    if db is not None and db.damaged:
        ok = False
        checks["database"] = f"damaged: {db.damaged} (restore a backup: `sovterm backup restore`)"
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
    guard = request.app[GUARD]
    for name, doc, value in (
        ("open", "Open listener connections", guard.open),
        ("refused", "Listener connections refused (per-address cap, or all busy at the cap) since start", guard.refused),
        ("evicted", "Idle listener connections closed to make room at the cap since start", guard.evicted),
    ):
        services.metrics.gauge(f"sovterm_listener_connections_{name}", doc).set(value)
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


def create_listener_app(services: Services, open_files: int | None = None) -> web.Application:
    """`open_files`: the process's open-file limit, which caps the listener's connections (None: the
    configured cap alone, for tests that serve the app without the daemon)."""
    settings = services.settings
    listener = settings.listener
    app = web.Application(client_max_size=listener.max_body_bytes, middlewares=[observe, rate_limit])
    app.on_response_prepare.append(security_headers)
    app[SERVICES] = services
    app[TRUSTED] = TrustedProxies(listener.trusted_proxies)
    app[LIMITER] = RateLimiter()
    max_total = listener.max_connections if open_files is None else connection_budget(
        listener.max_connections, settings.control.max_clients, open_files)
    app[GUARD] = ConnectionGuard(max_total=max_total, max_per_address=listener.max_connections_per_address,
                                 trusted=app[TRUSTED])
    app[DEADLINES] = RequestDeadlines(services.settings.listener.request_timeout_s)
    app.cleanup_ctx.append(_sweep_deadlines)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
