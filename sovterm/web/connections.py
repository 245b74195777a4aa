"""TCP connections to the public listener, bounded: in total, per address, in time, and within the
process's open-file limit, so that no TCP load can take the descriptors the control socket, the
database and the health endpoints need.

- A connection that has not sent a complete request head within `idle_timeout_s` of connecting (or of
  its last answer) is closed: aiohttp's keep-alive timer, which runs from the connection's start.
- At most `max_connections_per_address` from one address (a trusted proxy's own address excepted:
  its customers are told apart by `X-Forwarded-For`, see `web.clients`), the rest closed at once.
- At most `max_connections` in all, and never more than the open-file limit minus a reserve. At the cap,
  a new connection replaces the oldest one that is not in the middle of a request (an idle one holds
  nothing), so a crowd of idle sockets cannot lock out a health check or a BTCPay delivery.
- Malformed requests and accept() failures are logged once per burst with a count (`BurstLog`).
"""

from __future__ import annotations

import logging
import resource
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from sovterm.burstlog import BurstLog

log = logging.getLogger("sovterm.web.connections")

#: Descriptors kept for everything but listener connections: the database and its WAL, log files, the
#: HTTP client's pool, signals and the event loop (the control socket's clients come on top).
RESERVED_FDS = 64
#: The listen backlog: one accept() burst may hold this many descriptors before they are refused.
BACKLOG = 64
#: The highest soft open-file limit we raise to (an unlimited hard limit is no target).
NOFILE_CEILING = 1 << 20


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (systemd's LimitNOFILE sets that); return the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE_CEILING if hard == resource.RLIM_INFINITY else min(hard, NOFILE_CEILING)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return NOFILE_CEILING if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def connection_budget(configured: int, control_clients: int, open_files: int) -> int:
    """How many listener connections fit in the open-file limit beside what must keep working."""
    return max(8, min(configured, open_files - RESERVED_FDS - BACKLOG - control_clients))


class ConnectionGuard:
    """Admits, counts and (at the cap) evicts listener connections; see the module docstring."""

    def __init__(self, *, max_total: int, max_per_address: int, trusted: Any = None) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.trusted = trusted  # a `web.clients.TrustedProxies`, or None
        self._open: OrderedDict[RequestHandler, str] = OrderedDict()  # oldest first
        self._per_address: dict[str, int] = {}
        self._busy: set[RequestHandler] = set()
        self.refused = 0
        self.evicted = 0
        self.refusals_log = BurstLog(log, "listener connection refused")

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, handler: RequestHandler, transport: Any) -> bool:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        proxied = self.trusted is not None and self.trusted.trusts(address)
        if not proxied and self._per_address.get(address, 0) >= self.max_per_address:
            self.refused += 1
            self.refusals_log.note("per_address", f"{address} already holds {self.max_per_address}", address)
            transport.abort()
            return False
        if len(self._open) >= self.max_total and not self._evict_idle():
            self.refused += 1
            self.refusals_log.note("full", f"{self.max_total} connections open, all busy", address)
            transport.abort()
            return False
        self._open[handler] = address
        self._per_address[address] = self._per_address.get(address, 0) + 1
        return True

    def _evict_idle(self) -> bool:
        for handler in self._open:
            if handler not in self._busy:
                self.evicted += 1
                handler.force_close()
                transport = handler.transport
                if transport is not None:
                    transport.abort()
                self.release(handler)
                return True
        return False

    def release(self, handler: RequestHandler) -> None:
        address = self._open.pop(handler, None)
        self._busy.discard(handler)
        if address is None:
            return
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]

    def busy(self, handler: Any) -> None:
        if handler in self._open:
            self._busy.add(handler)

    def idle(self, handler: Any) -> None:
        self._busy.discard(handler)


class ListenerProtocol(RequestHandler):
    """aiohttp's request handler with a quiet log and no version banner on its own error answers."""

    __slots__ = ()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A request aiohttp could not parse is the sender's doing: summed up. Anything else is ours: logged."""
        exc = kw.get("exc_info")
        if not isinstance(exc, HttpProcessingError):
            super().log_exception(*args, **kw)
            return
        what = type(exc).__name__
        MALFORMED_LOG.note(what, f"{what} from {self.transport.get_extra_info('peername') if self.transport else '?'}")

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers["Server"] = "sovterm"
        return response


MALFORMED_LOG = BurstLog(log, "malformed HTTP request")


class GuardedServer(web.Server):
    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return ListenerProtocol(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: Any) -> None:
        super().connection_made(handler, transport)
        self.guard.admit(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.guard.release(handler)


class ListenerRunner(web.AppRunner):
    """An AppRunner whose server admits connections through a `ConnectionGuard`."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop, guard=self.guard, **plain._kwargs,
        )


def quiet_accept_errors(logger: logging.Logger) -> Any:
    """An event-loop exception handler that logs accept() failing for lack of descriptors (EMFILE,
    ENFILE) once per burst with a count; asyncio retries the accept a second later by itself."""
    burst = BurstLog(logger, "accept() failed: out of descriptors", level=logging.ERROR)

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if "out of system resource" in str(context.get("message", "")):
            exc = context.get("exception")
            burst.note(type(exc).__name__, str(exc))
            return
        loop.default_exception_handler(context)

    return handler
