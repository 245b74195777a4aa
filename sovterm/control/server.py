"""The control server: JSON-RPC 2.0 over a Unix socket with roles from SO_PEERCRED.

The socket is created under a umask so it is born 0660 inside a 0750 directory (never chmod-ed after
binding). Each connection has a lane for replies and a bounded lane for notifications: a client that
reads slowly loses notifications (and is told how many) but never slows the daemon. Replies are never
dropped; instead a client may have only so many requests outstanding before the server stops reading
from it (backpressure), and one that reads nothing for long is disconnected (`Connection`). Slots are
shared fairly: some kept for admins, at most half per uid. Unknown parameters are refused by name.

A method declares what the server does around it, so handlers do not repeat it:
- `part="btcpay"`: the daemon part it needs. The server asks the `parts` resolver for it before the call;
  when the part is not running the caller gets one clear `UserFacingError`, else the handler finds the
  part's service in `ctx.part`.
- `audit="btcpay.unfollow"`: the audit action. The server writes exactly one row per call through the
  `audit` writer: the handler says what it did with `ctx.audit(subject=, detail=, outcome=)` (a dry run
  that changed nothing says `ctx.skip_audit()`); a `UserFacingError` writes outcome "refused" with its
  message in the detail, any other exception "failed" with the exception's type. Never secrets in a detail.
- The result type is the handler's return annotation (read with `typing.get_type_hints` at registration
  into `Method.result`): a `Result` model, a list of them, or a union of them when the answer has variants;
  the server serializes it with `model_dump(mode="json")`, so the models are the wire shape.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import json
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError

from sovterm.control import protocol as rpc
from sovterm.control.roles import Peer, Role, RolePolicy
from sovterm.errors import UserFacingError
from sovterm.logs import get_logger

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, the last one the terminating NUL

log = get_logger("control")

Handler = Callable[..., Awaitable[Any]]
PartResolver = Callable[[str], object | None]


class AuditWriter(Protocol):
    """Writes one audit row; with `conn`, inside that open transaction."""

    def __call__(
        self, actor: str, action: str, subject: str | None, detail: dict[str, Any], outcome: str,
        *, conn: Any = None,
    ) -> Awaitable[None]: ...


@dataclass
class Method:
    name: str
    handler: Handler
    role: Role
    summary: str
    params: type[BaseModel] | None
    part: str | None = None  # the daemon part (a `Services` attribute) the method needs
    audit: str | None = None  # the audit action written for every call
    result: Any = None  # the handler's return annotation

    @property
    def result_models(self) -> list[type[BaseModel]]:
        """The result models the method may answer (a list of, or one of), in declaration order."""
        return _models(self.result)


def _models(kind: Any) -> list[type[BaseModel]]:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return [kind]
    return [model for arg in get_args(kind) for model in _models(arg)]


class Result(BaseModel):
    """A control method's answer. Unknown keys are refused, so the model is the whole shape on the wire."""

    model_config = ConfigDict(extra="forbid")


@dataclass(eq=False)
class Connection:
    """One attached client: who it is, its two outgoing lanes, and what it has outstanding.

    Replies are never dropped, so what a client may have outstanding is bounded instead: while it has
    `max_outstanding` requests running or replies unsent the server stops reading from it (its writes
    then block in the kernel: backpressure), and live subscriptions are capped at `max_follows`."""

    peer: Peer
    writer: asyncio.StreamWriter
    notify_limit: int
    max_outstanding: int = 16
    max_follows: int = 8
    replies: deque[bytes] = field(default_factory=deque)
    notes: deque[bytes] = field(default_factory=deque)
    missed: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    requests: set[asyncio.Task[Any]] = field(default_factory=set)
    follows: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.room.set()

    @property
    def outstanding(self) -> int:
        """Requests read and not yet answered on the wire: running, or replied and unsent."""
        return len(self.requests) + len(self.replies)

    def _update_room(self) -> None:
        if self.closed or self.outstanding < self.max_outstanding:
            self.room.set()
        else:
            self.room.clear()

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        self.room.set()

    def reply(self, data: bytes) -> None:
        self.replies.append(data)
        self.wake.set()
        self._update_room()

    def sent_reply(self) -> bytes:
        data = self.replies.popleft()
        self._update_room()
        return data

    def notify(self, method: str, params: dict[str, Any]) -> None:
        if len(self.notes) >= self.notify_limit:
            self.missed += 1
        else:
            self.notes.append(rpc.notification(method, params))
        self.wake.set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def handle(self, coro: Awaitable[Any]) -> None:
        """Run one request; it counts as outstanding until its reply is written."""
        task = self.spawn(coro)
        self.requests.add(task)
        self._update_room()

        def done(task: asyncio.Task[Any]) -> None:
            self.requests.discard(task)
            self._update_room()

        task.add_done_callback(done)

    def follow(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a live subscription (a log tail, an event feed) that lasts until the client goes."""
        if len(self.follows) >= self.max_follows:
            coro.close()
            raise UserFacingError(
                f"this client already has {len(self.follows)} live subscriptions (at most {self.max_follows})",
                fix="reuse an open subscription, or reconnect to start afresh",
            )
        task = self.spawn(coro)
        self.follows.add(task)
        task.add_done_callback(self.follows.discard)
        return task


@dataclass
class AuditEntry:
    """What an audited call did: the row the server writes for it (`outcome` "ok" unless said)."""

    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"


@dataclass
class CallContext:
    """What a method handler knows about its call: the caller, the part it declared, its audit row."""

    peer: Peer
    connection: Connection
    server: ControlServer
    part: Any = None  # the service of the method's declared part, resolved and running
    method: Method | None = None
    entry: AuditEntry | None = field(default_factory=AuditEntry)  # None: nothing to audit

    def audit(self, *, subject: str | None = None, detail: dict[str, Any] | None = None,
              outcome: str = "ok") -> None:
        """Say what this call did; the server writes the row when the call ends (once)."""
        assert self.method is not None and self.method.audit is not None, "the method declares no audit"
        self.entry = AuditEntry(subject, dict(detail or {}), outcome)

    def skip_audit(self) -> None:
        """This call changed nothing (a dry run): no row."""
        self.entry = None

    async def write_audit(self, conn: Any) -> None:
        """Write the row now, inside the caller's open transaction, so it commits with the change."""
        await self._write(conn=conn)

    async def _finish_audit(self, outcome: str | None = None, error: str | None = None) -> None:
        """Write the row of an audited call that ended (the server's, when the handler returns or raises)."""
        if self.entry is None:
            return
        if outcome is not None:
            self.entry.outcome = outcome
            self.entry.detail = {**self.entry.detail, "error": error}
        await self._write()

    async def _write(self, conn: Any = None) -> None:
        if self.method is None or self.method.audit is None or self.entry is None:
            return
        entry, self.entry = self.entry, None
        await self.server.audit(self.peer.user, self.method.audit, entry.subject, entry.detail, entry.outcome,
                                conn=conn)


class ControlServer:
    def __init__(
        self,
        path: Path,
        policy: RolePolicy,
        *,
        parts: PartResolver,
        audit: AuditWriter,
        version: str,
        socket_gid: int | None = None,
        max_clients: int = 64,
        notify_limit: int = 1000,
        max_outstanding: int = 16,
        max_follows: int = 8,
        stuck_after_s: float = 60.0,
        security: AuditWriter | None = None,
    ) -> None:
        """`max_clients` slots in all; an eighth of them (at least one) only admins may take, and one
        user (uid) may hold at most half, so viewers cannot lock the admins out, nor one user the rest.
        A client may have `max_outstanding` requests unanswered and `max_follows` live subscriptions;
        one that reads no reply for `stuck_after_s` is disconnected. Refused connections and forbidden
        calls go to `security` (an audit writer that bounds how many rows a flood of them writes)."""
        self.path = path
        self.policy = policy
        self.parts = parts
        self.audit = audit
        self.version = version
        self.socket_gid = socket_gid
        self.max_clients = max_clients
        self.admin_reserved = max(1, max_clients // 8) if max_clients > 1 else 0
        self.max_per_uid = max(1, max_clients // 2)
        self.notify_limit = notify_limit
        self.max_outstanding = max_outstanding
        self.max_follows = max_follows
        self.stuck_after_s = stuck_after_s
        self.stuck_disconnects = 0
        self.security = security
        self.methods: dict[str, Method] = {}
        self.connections: set[Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self.requests_served = 0

    def method(
        self,
        name: str,
        *,
        role: Role,
        params: type[BaseModel] | None = None,
        part: str | None = None,
        audit: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register `handler(ctx, **params)` as `name`, callable by `role` and above; it runs only while
        `part` runs (its service in `ctx.part`), and every call writes one `audit` row."""

        def register(handler: Handler) -> Handler:
            if name in self.methods:
                raise ValueError(f"method {name} registered twice")
            summary = (inspect.getdoc(handler) or "").split("\n")[0]
            result = get_type_hints(handler).get("return")
            self.methods[name] = Method(name, handler, role, summary, params, part, audit, result)
            return handler

        return register

    async def start(self) -> None:
        directory = self.path.parent
        old = os.umask(0o027)
        try:
            directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        finally:
            os.umask(old)
        if self.socket_gid is not None:
            with suppress(PermissionError):
                os.chown(directory, -1, self.socket_gid)
        if self.path.exists() or self.path.is_symlink():
            # The single-instance lock is held, so no live daemon owns this: it is stale.
            self.path.unlink()
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise UserFacingError(f"the control socket path {self.path} is {len(os.fsencode(self.path))} bytes; "
                                  f"Unix sockets allow at most {MAX_SOCKET_PATH}",
                                  fix="set [control] socket to a shorter path (e.g. /run/sovterm/control.sock)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # born 0660
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        if self.socket_gid is not None:
            with suppress(PermissionError):
                os.chown(self.path, -1, self.socket_gid)  # group only; mode stays 0660
        sock.listen(64)
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=rpc.MAX_LINE_BYTES
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
            for task in list(conn.tasks):
                task.cancel()
            conn.writer.close()
        if self._server is not None:
            with suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        with suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        peer = self.policy.identify(sock)
        conn = Connection(peer, writer, self.notify_limit, self.max_outstanding, self.max_follows)
        why = self._refusal(peer)
        if why is not None:
            log.warning("control connection refused: %s (pid %s)", why, peer.pid)
            await self._security_event(peer, "control.refused", None, {"reason": why})
            err = rpc.RpcError(rpc.FORBIDDEN, f"access refused: {why}")
            writer.write(rpc.encode({"jsonrpc": "2.0", "id": None, "error": err.to_json()}))
            with suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        self.connections.add(conn)
        log.debug("client attached: %s uid=%s pid=%s role=%s", peer.user, peer.uid, peer.pid, peer.role.name)
        pump = asyncio.create_task(self._pump(conn))
        try:
            while not conn.closed:
                await conn.room.wait()  # backpressure: read no more while it has too much outstanding
                if conn.closed:
                    break
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    conn.reply(_error(None, rpc.RpcError(rpc.INVALID_REQUEST, "message too long")))
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                if line.strip():
                    conn.handle(self._handle_line(conn, line))
        finally:
            conn.close()
            for task in list(conn.tasks):
                task.cancel()
            self.connections.discard(conn)
            with suppress(Exception):
                await asyncio.wait_for(pump, 1)
            writer.close()

    async def _security_event(self, peer: Peer, action: str, subject: str | None, detail: dict[str, Any]) -> None:
        if self.security is None:
            return
        who = {"uid": peer.uid, "gid": peer.gid, "pid": peer.pid, "role": peer.role.name.lower()}
        with suppress(Exception):  # the refusal stands whether or not its row could be written
            await self.security(peer.user, action, subject, {**who, **detail}, "refused")

    def _refusal(self, peer: Peer) -> str | None:
        """Why this peer may not attach now, or None."""
        if peer.role is Role.NONE:
            return f"user {peer.user} is in neither the admin nor the viewer group"
        attached = len(self.connections)
        if attached >= self.max_clients:
            return f"too many clients attached ({attached})"
        if peer.role < Role.ADMIN and attached >= self.max_clients - self.admin_reserved:
            return f"the last {self.admin_reserved} client slots are kept for admins"
        mine = sum(1 for c in self.connections if c.peer.uid == peer.uid)
        if mine >= self.max_per_uid:
            return f"user {peer.user} already has {mine} clients attached (at most {self.max_per_uid} per user)"
        return None

    async def _pump(self, conn: Connection) -> None:
        """Write replies first, then notifications, telling the client what it missed."""
        try:
            while True:
                await conn.wake.wait()
                conn.wake.clear()
                while conn.replies or conn.notes or conn.missed:
                    if conn.replies:
                        conn.writer.write(conn.sent_reply())
                    else:
                        if conn.missed:
                            missed, conn.missed = conn.missed, 0
                            conn.writer.write(rpc.notification("events.missed", {"count": missed}))
                        if conn.notes:
                            conn.writer.write(conn.notes.popleft())
                    await self._drain(conn)
                if conn.closed:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return

    async def _drain(self, conn: Connection) -> None:
        """Wait for the client to take what was written; one that takes nothing for `stuck_after_s` is
        cut off (its unread replies go with it), so it holds neither memory nor a slot for ever."""
        try:
            await asyncio.wait_for(conn.writer.drain(), self.stuck_after_s)
        except TimeoutError:
            self.stuck_disconnects += 1
            log.warning(
                "control client %s (pid %s) read nothing for %.0f s with %d replies waiting: disconnected",
                conn.peer.user, conn.peer.pid, self.stuck_after_s, len(conn.replies),
            )
            conn.close()
            conn.writer.transport.abort()
            raise ConnectionError("client stuck") from None

    async def _handle_line(self, conn: Connection, line: bytes) -> None:
        req_id: Any = None
        try:
            try:
                msg = json.loads(line)
            except ValueError:
                raise rpc.RpcError(rpc.PARSE_ERROR, "not valid JSON") from None
            except RecursionError:
                raise rpc.RpcError(rpc.PARSE_ERROR, "JSON nested too deeply") from None
            if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or "method" not in msg:
                raise rpc.RpcError(rpc.INVALID_REQUEST, "not a JSON-RPC 2.0 request")
            req_id = msg.get("id")
            result = await self.dispatch(conn, str(msg["method"]), msg.get("params") or {})
            if req_id is not None:
                conn.reply(rpc.encode({"jsonrpc": "2.0", "id": req_id, "result": result}))
        except rpc.RpcError as exc:
            conn.reply(_error(req_id, exc))
        except asyncio.CancelledError:
            raise
        finally:
            self.requests_served += 1

    async def dispatch(self, conn: Connection, name: str, params: Any) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"no such method: {name}")
        if conn.peer.role < method.role:
            await self._security_event(conn.peer, "control.forbidden", name, {"needs": method.role.name.lower()})
            raise rpc.RpcError(
                rpc.FORBIDDEN,
                f"{name} needs the {method.role.name.lower()} role; user {conn.peer.user} is "
                f"{conn.peer.role.name.lower()}",
            )
        if not isinstance(params, dict):
            raise rpc.RpcError(rpc.INVALID_PARAMS, "params must be an object")
        _refuse_unknown_params(method, params)
        kwargs: dict[str, Any] = params
        if method.params is not None:
            try:
                kwargs = dict(method.params.model_validate(params))
            except ValidationError as exc:
                detail = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
                )
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"invalid parameters for {name}: {detail}") from None
        ctx = CallContext(conn.peer, conn, self, method=method)
        try:
            ctx.part = self._running_part(method)
            try:
                result = await method.handler(ctx, **kwargs)
            except (UserFacingError, rpc.RpcError) as exc:
                await ctx._finish_audit("refused", exc.message)
                raise
            except Exception as exc:
                await ctx._finish_audit("failed", type(exc).__name__)
                raise
            await ctx._finish_audit()
            return _json(result)
        except rpc.RpcError:
            raise
        except UserFacingError as exc:
            raise rpc.RpcError(rpc.USER_ERROR, str(exc), {"code": exc.code}) from None
        except asyncio.CancelledError:
            raise
        except Exception:
            cid = uuid.uuid4().hex[:12]
            log.exception("control method %s failed", name, extra={"cid": cid})
            raise rpc.RpcError(
                rpc.INTERNAL_ERROR, f"internal error (see the daemon log, id {cid})", {"cid": cid}
            ) from None

    def _running_part(self, method: Method) -> Any:
        """The service of the part `method` needs, or one clear refusal while it is not running."""
        if method.part is None:
            return None
        service = self.parts(method.part)
        if service is None:
            raise UserFacingError(
                f"the {method.part} part is not running",
                fix="the daemon is starting or stopping; try again, or see `sovterm logs`",
            )
        return service


def _param_names(model: type[BaseModel]) -> set[str]:
    return {name for key, info in model.model_fields.items() for name in (key, info.alias) if name}


def _refuse_unknown_params(method: Method, params: dict[str, Any]) -> None:
    """A misspelt parameter is refused with the valid names, never ignored (a mistyped `dry_run`
    must not run for real); this holds whatever `extra` the params model declares."""
    model = method.params
    valid = _param_names(model) if model is not None else set()
    unknown = sorted(str(key) for key in params if key not in valid)
    if not unknown:
        return
    hints = [
        f"{key!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(key, valid, n=1)) else repr(key)
        for key in unknown
    ]
    accepted = f"valid parameters: {', '.join(sorted(valid))}" if valid else f"{method.name} takes no parameters"
    raise rpc.RpcError(
        rpc.INVALID_PARAMS,
        f"unknown parameter{'s' if len(unknown) > 1 else ''} for {method.name}: {', '.join(hints)}; {accepted}",
        {"unknown": unknown, "valid": sorted(valid)},
    )


def _json(result: Any) -> Any:
    """A handler's answer as JSON values: result models are dumped, everything else passes as is."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list):
        return [_json(item) for item in result]
    return result


def _error(req_id: Any, exc: rpc.RpcError) -> bytes:
    return rpc.encode({"jsonrpc": "2.0", "id": req_id, "error": exc.to_json()})
