"""A fixed daemon for deterministic TUI tests and snapshots: no socket, no clocks, no pids."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

from sovterm.control.client import explain_connect_error
from sovterm.tui.app import SovtermApp
from sovterm.tui.link import Link
from sovterm.tui.messages import FeedUpdated, LinkDown, LinkUp, LogLines
from sovterm.tui.state import Capabilities

SOCKET = Path("/run/sovterm/control.sock")

METHODS = [
    {"name": "audit.list", "role": "viewer"},
    {"name": "daemon.reload", "role": "admin"},
    {"name": "events.subscribe", "role": "viewer"},
    {"name": "logs.tail", "role": "viewer"},
    {"name": "methods.list", "role": "viewer"},
    {"name": "secrets.rotate", "role": "admin"},
    {"name": "status", "role": "viewer"},
]
FEED_METHODS = [{"name": "sync.status", "role": "viewer"}, {"name": "sync.totals", "role": "viewer"}]

STATUS: dict[str, Any] = {
    "version": "0.1.0",
    "pid": 4242,
    "uptime_s": 3725.0,
    "data_dir": "/var/lib/sovterm",
    "config": "/etc/sovterm/sovterm.toml",
    "listener": "https://shop.example.com",
    "schema_version": 3,
    "ready": False,
    "checks": {
        "database": "writable",
        "loops": {
            "reaper": {"interval_s": 300, "last_run_age_s": 42.0, "last_ok": True, "last_error": None,
                       "runs": 12, "paused": False, "fresh": True},
            "sync": {"interval_s": 30, "last_run_age_s": 400.0, "last_ok": True, "last_error": None,
                     "runs": 80, "paused": False, "fresh": False},
        },
        "stale_loops": ["sync"],
        "disk_free_mb": 20480,
        "connectors": {
            "btcpay": {"state": "connected", "detail": "store Main", "since": 0, "ready": True},
            "qbo": {"state": "auth_needed", "detail": "token expired", "since": 0, "ready": False},
        },
    },
    "last_runs": {},
}

FEEDS = {
    "sync.status": {"queued": 3, "dead": 1, "last_poll_age_s": 12.0, "last_posting_age_s": 95.0},
    "sync.totals": {"currency": "USD", "today": "120.50", "d7": "2310.00", "d30": "9120.75",
                    "daily": ["100", "0", "250.5", "80", "310", "120.50", "400", "90"]},
}

LOG_LINES = [
    {"seq": i, "ts": f"2026-07-01T12:00:{i:02d}.000Z", "level": lvl, "component": comp, "msg": msg}
    for i, (lvl, comp, msg) in enumerate([
        ("INFO", "daemon", "sovterm 0.1.0 ready"),
        ("DEBUG", "control", "client attached: alice"),
        ("WARNING", "qbo", "token expired"),
        ("ERROR", "sync", "posting failed"),
    ], start=1)
]


class FakeClient:
    """Stands in for ControlClient behind the Daemon facade; records every call."""

    def __init__(self, results: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results = results or {}

    async def call(self, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        return self.results.get(method, {})


class FixedLink(Link):
    """Posts what a real link would after connecting (or failing), then stays quiet."""

    def __init__(self, post: Any, *, role: str = "admin", up: bool = True, feeds: bool = False) -> None:
        super().__init__(SOCKET, post)
        self.role, self.up, self.with_feeds = role, up, feeds
        self.client = FakeClient({
            "daemon.reload": {"applied": [], "restart_needed": []},
            "secrets.rotate": {"reencrypted": 2, "key_file": "/var/lib/sovterm/sovterm.key"},
        })

    async def run(self) -> None:
        if not self.up:
            exc = explain_connect_error(SOCKET, OSError(errno.ENOENT, "No such file or directory"))
            self._post(LinkDown(exc.message, exc.fix, 3, 1.0))
            await asyncio.Event().wait()
        hello = {"version": "0.1.0", "protocol": 1, "role": self.role, "user": "alice"}
        caps = Capabilities.from_daemon(hello, METHODS + (FEED_METHODS if self.with_feeds else []))
        self.daemon.attach(self.client, caps)  # type: ignore[arg-type]
        self._post(LinkUp(hello, caps, STATUS))
        self._post(LogLines(list(LOG_LINES), replace=True))
        if self.with_feeds:
            for method, result in FEEDS.items():
                self._post(FeedUpdated(method, result))
        await asyncio.Event().wait()


def fixed_app(*, role: str = "admin", up: bool = True, feeds: bool = False) -> SovtermApp:
    return SovtermApp(SOCKET, link_factory=lambda post: FixedLink(post, role=role, up=up, feeds=feeds))
