"""Structured logging: JSON lines to a size-capped rotated file, plus a ring buffer the socket streams.

Every record carries a timestamp, level, component (the part of sovterm that logged it) and, where one
exists, a correlation id (invoice, job, webhook delivery) taken from `extra={"cid": ...}` or from the
`correlation()` context. Work done for several at once (a QuickBooks batch carrying several jobs'
documents) carries them all as `cids` (`context_for`), so each one's story still finds that line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = "sovterm"
_cid: contextvars.ContextVar[str | None] = contextvars.ContextVar("sovterm_cid", default=None)
_cids: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("sovterm_cids", default=())
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "cid", "cids", "taskName"}


def get_logger(component: str) -> logging.Logger:
    return logging.getLogger(f"{ROOT}.{component}")


@contextmanager
def correlation(cid: str) -> Iterator[None]:
    """Tag every log line written inside this block (and tasks it starts) with `cid`."""
    token, many = _cid.set(cid), _cids.set(())
    try:
        yield
    finally:
        _cids.reset(many)
        _cid.reset(token)


def current_cid() -> str | None:
    return _cid.get()


def context_for(cids: Iterable[str | None]) -> contextvars.Context:
    """A context for a task that works for several correlation ids at once: its lines carry them all as
    `cids` (in order, once each) and no single `cid`. Start the task with `create_task(..., context=)`."""
    context = contextvars.copy_context()
    context.run(_cid.set, None)
    context.run(_cids.set, tuple(dict.fromkeys(c for c in cids if c)))
    return context


def record_to_dict(record: logging.LogRecord) -> dict[str, Any]:
    component = record.name[len(ROOT) + 1 :] if record.name.startswith(ROOT + ".") else record.name
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname,
        "component": component,
        "msg": record.getMessage(),
    }
    cid = getattr(record, "cid", None) or _cid.get()
    if cid:
        out["cid"] = cid
    elif cids := _cids.get():
        out["cids"] = list(cids)
    for key, value in vars(record).items():
        if key not in _STD_ATTRS and not key.startswith("_"):
            out[key] = value if isinstance(value, (int, bool, type(None))) else str(value)
    if record.exc_info and record.exc_info[0] is not None:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_to_dict(record), ensure_ascii=False)


@dataclass
class LogRing(logging.Handler):
    """The last N records as dicts, numbered, with listeners for live tailing."""

    size: int = 5000
    _lines: deque[tuple[int, dict[str, Any]]] = field(init=False)
    _seq: int = field(default=0, init=False)
    _listeners: list[Callable[[int, dict[str, Any]], None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self)
        self._lines = deque(maxlen=self.size)

    def __hash__(self) -> int:  # logging keeps handlers in sets/weakrefs
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record_to_dict(record)
        except Exception:  # a logging bug must never take the daemon down
            self.handleError(record)
            return
        self._seq += 1
        self._lines.append((self._seq, line))
        for listener in list(self._listeners):
            listener(self._seq, line)

    def recent(self, count: int) -> list[tuple[int, dict[str, Any]]]:
        return list(self._lines)[-count:] if count > 0 else []

    def listen(self, callback: Callable[[int, dict[str, Any]], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None


@dataclass
class LogSetup:
    ring: LogRing
    handlers: list[logging.Handler]

    def close(self) -> None:
        logger = logging.getLogger(ROOT)
        for handler in self.handlers:
            logger.removeHandler(handler)
            handler.close()


def setup_logging(
    log_dir: Path | None,
    *,
    level: str = "INFO",
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    ring_size: int = 5000,
    stderr: bool = False,
) -> LogSetup:
    """Attach the file, ring and optional stderr handlers to the `sovterm` logger tree."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    logger.propagate = False
    ring = LogRing(size=ring_size)
    handlers: list[logging.Handler] = [ring]
    if log_dir is not None:
        log_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_dir / "sovterm.log", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        file_handler.setFormatter(JSONFormatter())
        handlers.append(file_handler)
    if stderr:
        err = logging.StreamHandler()
        err.setFormatter(JSONFormatter())
        handlers.append(err)
    for handler in handlers:
        logger.addHandler(handler)
    for name in ("aiohttp.access", "apscheduler"):
        lib = logging.getLogger(name)
        lib.setLevel("WARNING")
        for handler in handlers:
            lib.addHandler(handler)
        lib.propagate = False
    return LogSetup(ring, handlers)
