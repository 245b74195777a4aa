"""`sovterm daemon`: wiring, start-up order, signals and shutdown.

Resources are aiohttp `cleanup_ctx` stages, started top to bottom and closed bottom to top:
lock → database and keys → HTTP client → the parts in `PARTS` order (BTCPay connection, QuickBooks,
sync, links, payouts, BTCPay intake, ops) → loops → control socket → watchdog. The TCP site starts
only after every stage is up, then READY=1 goes to systemd. SIGTERM stops the control socket,
drains running loops (bounded), closes the database, and exits 0. SIGHUP re-reads the configuration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from sovterm import __version__
from sovterm.config import Settings, load_settings
from sovterm.control.roles import RolePolicy, resolve_group
from sovterm.control.server import ControlServer
from sovterm.errors import StartupRefused, UserFacingError
from sovterm.logs import get_logger, setup_logging
from sovterm.loops import Loops, LoopSpec
from sovterm.parts import PARTS
from sovterm.parts.base import Part
from sovterm.parts.core import register_core_methods
from sovterm.services import Services
from sovterm.store import audit, keyring, lock
from sovterm.store.db import Database
from sovterm.systemd import Notifier
from sovterm.web.app import GUARD, SERVICES, create_listener_app
from sovterm.web.connections import BACKLOG, ListenerRunner, quiet_accept_errors, raise_open_file_limit

log = get_logger("daemon")

LOOPS = web.AppKey("loops", Loops)
PARTS_KEY = web.AppKey("parts", list)
DRAIN_TIMEOUT_S = 20.0


def acquire_lock(data_dir: Path) -> int:
    try:
        return lock.acquire(data_dir)
    except lock.DataDirBusy as busy:
        raise StartupRefused(
            f"another sovterm daemon (pid {busy.pid}) is already running on {data_dir}",
            fix="stop it first (`systemctl stop sovterm`), or give this one another data_dir",
        ) from None


def prepare_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


async def lock_stage(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    prepare_data_dir(services.settings.data_dir)
    fd = acquire_lock(services.settings.data_dir)
    try:
        yield
    finally:
        os.close(fd)


async def database_stage(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    services.notifier.status("migrating database")
    db = await Database.open(settings.database_path, backup_dir=settings.data_dir / "backups")
    try:
        services.secrets = await keyring.unlock(db, settings.data_dir)
        services.db = db
        yield
    finally:
        services.db = None
        await db.close()


async def http_stage(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": f"sovterm/{__version__}"})
    services.http = session
    try:
        yield
    finally:
        await session.close()


async def loops_stage(app: web.Application) -> AsyncIterator[None]:
    loops = app[LOOPS]
    loops.start()
    try:
        yield
    finally:
        drained = await loops.drain(DRAIN_TIMEOUT_S)
        log.info("loops stopped (%s)", "drained" if drained else "some cancelled after timeout")


async def control_stage(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings

    async def write_audit(actor: str, action: str, subject: str | None, detail: dict[str, Any], outcome: str,
                          *, conn: Any = None) -> None:
        await audit.record(services.require_db(), actor, action, subject, detail, outcome, conn=conn)

    server = ControlServer(
        settings.socket_path,
        RolePolicy.from_names(settings.control.admin_group, settings.control.viewer_group),
        parts=lambda name: getattr(services, name),
        audit=write_audit,
        version=__version__,
        socket_gid=resolve_group(settings.control.socket_group),
        max_clients=settings.control.max_clients,
        notify_limit=settings.control.client_queue,
        stuck_after_s=settings.control.client_stuck_s,
        security=services.security.write,
    )
    register_core_methods(server, services, reload=lambda: reload(app), loops=app[LOOPS])
    for part in app[PARTS_KEY]:
        if part.methods is not None:
            part.methods(server, services)
    services.control = server
    await server.start()
    try:
        yield
    finally:
        await server.stop()
        services.metrics.control_requests.inc(server.requests_served)


async def watchdog_stage(app: web.Application) -> AsyncIterator[None]:
    """WATCHDOG=1 every half interval from the event loop itself: a wedged loop stops the pings."""
    notifier = app[SERVICES].notifier
    interval = notifier.watchdog_interval_s
    if interval is None:
        yield
        return

    async def ping() -> None:
        while True:
            notifier.watchdog()
            await asyncio.sleep(interval)

    task = asyncio.create_task(ping())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def reaper_run(services: Services) -> dict[str, Any]:
    """The reaper's spine work: prune old audit rows; later parts add their own reaping."""
    cutoff = int(time.time()) - services.settings.reaper.retention_days * 86400
    pruned = await services.require_db().write("DELETE FROM audit WHERE at < ?", (cutoff,))
    return {"audit_pruned": pruned}


def part_stage(part: Part) -> Callable[[web.Application], AsyncIterator[None]]:
    async def stage(app: web.Application) -> AsyncIterator[None]:
        assert part.stage is not None
        async with part.stage(app[SERVICES]):
            yield

    stage.__name__ = f"{part.name}_stage"
    return stage


def build_app(services: Services, parts: list[Part] | None = None, open_files: int | None = None) -> web.Application:
    parts = PARTS if parts is None else parts
    app = create_listener_app(services, open_files)
    loops = Loops(services)
    loops.add(LoopSpec("reaper", services.settings.reaper.interval_s, lambda: reaper_run(services)))
    for part in parts:
        for spec in part.loops(services):
            loops.add(spec)
        if part.routes is not None:
            part.routes(app)
    app[LOOPS] = loops
    app[PARTS_KEY] = parts
    app.cleanup_ctx.extend([lock_stage, database_stage, http_stage])
    app.cleanup_ctx.extend(part_stage(p) for p in parts if p.stage is not None)
    app.cleanup_ctx.extend([loops_stage, control_stage, watchdog_stage])
    return app


RELOADABLE = {("logging", "level"), ("reaper", "interval_s"), ("sync", "interval_s")}


def _dotted(keys: list[tuple[str, str]]) -> list[str]:
    return [f"{section}.{key}" if key else section for section, key in keys]


async def reload(app: web.Application) -> dict[str, Any]:
    """Apply what can change without a restart; list what needs one."""
    services = app[SERVICES]
    services.notifier.reloading()
    try:
        new = load_settings(services.config_path, services.environ)
    except UserFacingError as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        services.notifier.status("running (reload refused: invalid configuration)")
        return {"applied": [], "restart_needed": [], "error": str(exc)}
    old = services.settings
    old_d, new_d = old.model_dump(), new.model_dump()
    changed = [
        (section, key)
        for section, values in new_d.items()
        if isinstance(values, dict)
        for key in values
        if values[key] != old_d.get(section, {}).get(key)
    ]
    changed += [(k, "") for k in new_d if not isinstance(new_d[k], dict) and new_d[k] != old_d[k] and k != "source"]
    applied = [c for c in changed if c in RELOADABLE]
    restart = [c for c in changed if c not in RELOADABLE]
    logging.getLogger("sovterm").setLevel(new.logging.level)
    loops = app[LOOPS]
    for name in loops.specs:
        section = getattr(new, name, None)
        if section is not None and hasattr(section, "interval_s"):
            loops.reschedule(name, section.interval_s)
    services.settings = new.model_copy(
        update={k: getattr(old, k) for k in new_d if k not in {c[0] for c in applied}}
    )
    log.info("configuration reloaded; applied %s; needs restart %s", _dotted(applied), _dotted(restart))
    services.notifier.status("running")
    return {"applied": _dotted(applied), "restart_needed": _dotted(restart)}


async def reload_on_signal(app: web.Application) -> None:
    """SIGHUP: reload, and put it in the audit trail as a control call's reload is."""
    answer = await reload(app)
    services = app[SERVICES]
    if services.db is not None:
        await audit.record(services.db, "signal:SIGHUP", "daemon.reload", None, audit.reload_detail(answer),
                           "refused" if "error" in answer else "ok")


async def serve(settings: Settings, environ: Mapping[str, str], config_path: str | None) -> int:
    notifier = Notifier(environ)
    logs = setup_logging(
        settings.log_dir,
        level=settings.logging.level,
        max_bytes=settings.logging.file_max_bytes,
        backups=settings.logging.file_count,
        ring_size=settings.logging.ring_size,
        stderr=bool(environ.get("SOVTERM_LOG_STDERR")),
    ) if _can_create(settings.log_dir) else None
    if logs is None:
        print(f"sovterm: cannot create the log directory {settings.log_dir}", file=sys.stderr)
        return 2
    services = Services(settings, dict(environ), notifier, logs, config_path=config_path)
    open_files = raise_open_file_limit()
    app = build_app(services, open_files=open_files)
    runner = ListenerRunner(app, app[GUARD], access_log=None, handle_signals=False, shutdown_timeout=5.0,
                            keepalive_timeout=settings.listener.idle_timeout_s)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_accept_errors(log))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload_on_signal(app)))
    started = time.perf_counter()
    try:
        await runner.setup()  # every part's start-up (cleanup_ctx); a part that cannot start says why
        site = web.TCPSite(runner, settings.listener.host, settings.listener.port, backlog=BACKLOG)
        try:
            await site.start()
        except OSError as exc:  # only the bind: a time-out in a part's start-up is an OSError too
            raise UserFacingError(f"cannot listen on {settings.listener.host}:{settings.listener.port}: "
                                  f"{exc.strerror or exc}",
                                  fix="choose a free [listener] port or stop what uses it") from exc
    except (UserFacingError, OSError) as exc:
        message = str(exc) if isinstance(exc, UserFacingError) else f"a part could not start: {exc!r}"
        print(f"sovterm: refusing to start: {message}", file=sys.stderr)
        log.error("refusing to start: %s", message)
        await runner.cleanup()
        logs.close()
        return 2
    log.info(
        "sovterm %s ready in %.0f ms: listening on %s (at most %d connections, open-file limit %d), control socket %s",
        __version__, (time.perf_counter() - started) * 1000, settings.public_url, app[GUARD].max_total, open_files,
        settings.socket_path,
    )
    notifier.ready(f"running; listening on {settings.public_url}")
    await stop.wait()
    log.info("stopping: draining running work")
    notifier.stopping()
    try:
        await asyncio.wait_for(runner.cleanup(), DRAIN_TIMEOUT_S + 10)
    except TimeoutError:
        log.error("shutdown took too long; exiting anyway")
    log.info("stopped")
    logs.close()
    return 0


def _can_create(path: Path) -> bool:
    try:
        prepare_data_dir(path.parent)
        path.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError:
        return False
    return True


def run(config_path: str | None, environ: Mapping[str, str]) -> int:
    os.umask(0o077)  # database, key, backups and logs are the daemon's alone (the socket sets its own)
    try:
        settings = load_settings(config_path, environ)
    except UserFacingError as exc:
        print(f"sovterm: refusing to start: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings, environ, config_path))
