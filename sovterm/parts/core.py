"""The daemon's own control methods: handshake, status, logs, events, key rotation, reload."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sovterm import __version__, alerts
from sovterm.alerts import Alert
from sovterm.control import protocol as rpc
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.errors import UserFacingError
from sovterm.loops import Loops
from sovterm.parts.btcpay import followed_stores
from sovterm.services import Services
from sovterm.store import audit, keyring, kv
from sovterm.store.db import DatabaseDamaged
from sovterm.sync.records import MODE_KEY
from sovterm.web.app import readiness

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class HelloParams(BaseModel):
    client: str = "unknown"
    protocol: int = rpc.PROTOCOL_VERSION


class LogsParams(BaseModel):
    lines: int = Field(200, ge=0, le=5000)
    follow: bool = False
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "DEBUG"
    component: str | None = None
    search: str | None = None
    cid: str | None = None  # one correlation id: an invoice id, a job, a pay link, a loop run


class AuditParams(BaseModel):
    limit: int = Field(100, ge=1, le=1000)


class SubscribeParams(BaseModel):
    topics: list[str] = []


def log_filter(level: str, component: str | None, search: str | None,
               cid: str | None = None) -> Callable[[dict[str, Any]], bool]:
    floor = LEVELS[level]
    needle = search.lower() if search else None

    def keep(line: dict[str, Any]) -> bool:
        if LEVELS.get(line.get("level", "INFO"), 20) < floor:
            return False
        if component and not str(line.get("component", "")).startswith(component):
            return False
        if cid and line.get("cid") != cid and cid not in (line.get("cids") or ()):  # a batch lists its cids
            return False
        return not needle or needle in str(line.get("msg", "")).lower()

    return keep


class LoopRun(BaseModel):
    last_start: int | None
    last_end: int | None
    ok: bool
    summary: dict[str, Any]  # what the run did (stored as JSON text, answered as an object)


class StatusResult(BaseModel):
    """The `status` answer: the daemon, its readiness checks, its loops' last runs, the followed stores
    and the alerts (worked out in `sovterm.alerts`; every surface renders these)."""

    version: str
    pid: int
    uptime_s: float
    data_dir: str
    config: str
    listener: str
    schema_version: int
    ready: bool
    checks: dict[str, Any]
    last_runs: dict[str, LoopRun]
    stores: list[dict[str, Any]]
    alerts: list[Alert]


async def daemon_status(services: Services) -> StatusResult:
    ready, checks = await readiness(services)
    db = services.require_db()
    runs = {
        r[0]: LoopRun(last_start=r[1], last_end=r[2], ok=bool(r[3]), summary=json.loads(r[4] or "{}"))
        for r in await db.fetchall("SELECT loop, last_start, last_end, last_ok, summary FROM loop_runs")
    }
    return StatusResult(
        version=__version__,
        pid=os.getpid(),
        uptime_s=round(time.time() - services.started_at, 1),
        data_dir=str(services.settings.data_dir),
        config=services.settings.source,
        listener=services.settings.public_url,
        schema_version=await db.schema_version(),
        ready=ready,
        checks=checks,
        last_runs=runs,
        stores=await followed_stores(services),
        alerts=await alerts.for_daemon(services, ready, checks),
    )


class LoopParams(BaseModel):
    name: str


class Hello(Result):
    version: str
    protocol: int
    role: str
    user: str


class MethodInfo(Result):
    name: str
    role: str
    summary: str


class LogTail(Result):
    lines: list[dict[str, Any]]  # {seq, ts, level, component, msg, cid?}


class Subscribed(Result):
    subscribed: list[str]


class SecretsRotated(Result):
    reencrypted: int
    key_file: str


class Reloaded(Result):
    applied: list[str]
    restart_needed: list[str]


class ReloadRefused(Reloaded):
    error: str  # the configuration is invalid; the running one is kept


class SetupState(Result):
    """Each part's `setup:*` progress under its name (btcpay, qbo, accounts...), and the modes."""

    model_config = ConfigDict(extra="allow")
    modes: dict[str, Any]


class LoopTriggered(Result):
    triggered: str


class LoopPaused(Result):
    paused: str


class LoopResumed(Result):
    resumed: str


class DatabaseCheck(Result):
    ok: bool
    check: str  # "integrity_check": SQLite's full check, every page and index
    problems: list[str]  # what SQLite found (at most 20 lines); empty when ok
    fix: str | None  # how to restore, when damaged


class AuditRow(Result):
    id: int
    at: int
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any]
    outcome: str

    @field_validator("detail", mode="before")
    @classmethod
    def _decoded(cls, value: Any) -> Any:
        """Stored as JSON text; answered as an object (no JSON text inside the JSON answer)."""
        return json.loads(value) if isinstance(value, str) else value


def register_core_methods(
    server: ControlServer,
    services: Services,
    reload: Callable[[], Awaitable[dict[str, Any]]],
    loops: Loops,
) -> None:
    @server.method("hello", role=Role.VIEWER, params=HelloParams)
    async def hello(ctx: CallContext, client: str, protocol: int) -> Hello:
        """Handshake: the daemon's version and the caller's role."""
        if protocol != rpc.PROTOCOL_VERSION:
            raise rpc.RpcError(
                rpc.INVALID_REQUEST,
                f"protocol {protocol} not supported (daemon speaks {rpc.PROTOCOL_VERSION}); "
                "upgrade the client and the daemon together",
            )
        return Hello(
            version=__version__, protocol=rpc.PROTOCOL_VERSION, role=ctx.peer.role.name.lower(), user=ctx.peer.user
        )

    @server.method("ping", role=Role.VIEWER)
    async def ping(ctx: CallContext) -> str:
        """Liveness of the control socket."""
        return "pong"

    @server.method("methods.list", role=Role.VIEWER)
    async def methods_list(ctx: CallContext) -> list[MethodInfo]:
        """Every method with the role it needs (the TUI greys out what the caller cannot do)."""
        return [
            MethodInfo(name=m.name, role=m.role.name.lower(), summary=m.summary)
            for m in sorted(server.methods.values(), key=lambda m: m.name)
        ]

    @server.method("status", role=Role.VIEWER)
    async def status(ctx: CallContext) -> StatusResult:
        """Version, uptime, readiness checks, loops, connectors and the alerts (what needs attention)."""
        return await daemon_status(services)

    @server.method("logs.tail", role=Role.VIEWER, params=LogsParams)
    async def logs_tail(
        ctx: CallContext, lines: int, follow: bool, level: str, component: str | None, search: str | None,
        cid: str | None,
    ) -> LogTail:
        """Recent log lines; with follow, new lines arrive as `logs.line` notifications."""
        keep = log_filter(level, component, search, cid)
        ring = services.logs.ring
        backlog = [{"seq": seq, **line} for seq, line in ring.recent(ring.size) if keep(line)]
        if follow:
            loop = asyncio.get_running_loop()
            conn = ctx.connection

            def forward(seq: int, line: dict[str, Any]) -> None:
                if keep(line):
                    loop.call_soon_threadsafe(conn.notify, "logs.line", {"seq": seq, **line})

            stop = ring.listen(forward)

            async def hold() -> None:
                try:
                    await asyncio.Event().wait()
                finally:
                    stop()

            try:
                conn.follow(hold())
            except UserFacingError:
                stop()
                raise
        return LogTail(lines=backlog[-lines:] if lines else [])

    @server.method("events.subscribe", role=Role.VIEWER, params=SubscribeParams)
    async def subscribe(ctx: CallContext, topics: list[str]) -> Subscribed:
        """Server-pushed `event` notifications for the topics (all when empty)."""
        sub = services.bus.subscribe(topics, limit=server.notify_limit)
        conn = ctx.connection

        async def forward() -> None:
            try:
                while True:
                    missed, event = await sub.next()
                    if missed:
                        conn.notify("events.missed", {"count": missed})
                    if event is None:
                        return
                    conn.notify("event", {"topic": event.topic, "ts": event.ts, **event.data})
            finally:
                services.bus.unsubscribe(sub)

        try:
            conn.follow(forward())
        except UserFacingError:
            services.bus.unsubscribe(sub)
            raise
        return Subscribed(subscribed=sorted(topics) or ["*"])

    @server.method("secrets.rotate", role=Role.ADMIN, audit="secrets.rotate")
    async def secrets_rotate(ctx: CallContext) -> SecretsRotated:
        """Re-encrypt every stored secret under a new key file."""
        count = await keyring.rotate(services.require_secrets(), services.settings.data_dir)
        ctx.audit(detail={"secrets": count})
        return SecretsRotated(reencrypted=count, key_file=str(services.settings.data_dir / "sovterm.key"))

    @server.method("daemon.reload", role=Role.ADMIN, audit="daemon.reload")
    async def daemon_reload(ctx: CallContext) -> Reloaded | ReloadRefused:
        """Re-read the configuration (as SIGHUP does) and say what changed."""
        answer = await reload()
        ctx.audit(detail=audit.reload_detail(answer), outcome="refused" if "error" in answer else "ok")
        return ReloadRefused(**answer) if "error" in answer else Reloaded(**answer)

    @server.method("setup.state", role=Role.VIEWER)
    async def setup_state(ctx: CallContext) -> SetupState:
        """Where setup stands (each part's `setup:*` progress and the modes), for the wizard to resume."""
        db = services.require_db()
        progress = {k.removeprefix("setup:"): v for k, v in (await kv.with_prefix(db, "setup:")).items()}
        modes = {k.removeprefix(MODE_KEY): v for k, v in (await kv.with_prefix(db, MODE_KEY)).items()}
        return SetupState(**progress, modes=modes)

    def known_loop(name: str) -> None:
        if name not in loops.specs:
            raise UserFacingError(f"no loop named {name!r}", fix=f"one of: {', '.join(sorted(loops.specs))}")

    @server.method("loops.run", role=Role.ADMIN, params=LoopParams)
    async def loops_run(ctx: CallContext, name: str) -> LoopTriggered:
        """Run a scheduled loop now (skipped if it is already running)."""
        known_loop(name)
        loops.trigger(name)
        return LoopTriggered(triggered=name)

    @server.method("loops.pause", role=Role.ADMIN, params=LoopParams, audit="loops.pause")
    async def loops_pause(ctx: CallContext, name: str) -> LoopPaused:
        """Pause a loop (maintenance); /readyz reports it until it is resumed."""
        ctx.audit(subject=name)
        known_loop(name)
        loops.pause(name, True)
        return LoopPaused(paused=name)

    @server.method("loops.resume", role=Role.ADMIN, params=LoopParams, audit="loops.resume")
    async def loops_resume(ctx: CallContext, name: str) -> LoopResumed:
        """Resume a paused loop."""
        ctx.audit(subject=name)
        known_loop(name)
        loops.pause(name, False)
        return LoopResumed(resumed=name)

    @server.method("db.check", role=Role.ADMIN, audit="db.check")
    async def db_check(ctx: CallContext) -> DatabaseCheck:
        """SQLite's full integrity check of the database (every page; slow on a big file); damage found is
        reported by /readyz and the status page until the daemon runs on a restored file."""
        db = services.require_db()
        problems = await db.check(full=True)
        fix = DatabaseDamaged(db.path, problems).fix if problems else None
        ctx.audit(detail={"problems": len(problems)}, outcome="failed" if problems else "ok")
        return DatabaseCheck(ok=not problems, check="integrity_check", problems=problems, fix=fix)

    @server.method("audit.list", role=Role.VIEWER, params=AuditParams)
    async def audit_list(ctx: CallContext, limit: int) -> list[AuditRow]:
        """The most recent audit entries, newest first."""
        return [AuditRow.model_validate(row) for row in await audit.recent(services.require_db(), limit)]

