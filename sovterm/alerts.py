"""What needs the operator's attention, worked out once in the daemon for every surface.

The `status` control method, the web status page, the CLI and the TUI all render this list and never
derive their own, so they cannot disagree. Each alert says what is wrong, how bad, since when and what
to do. Its text is shown on the unauthenticated status page too, so it carries counts, states and
connector details only: never amounts, customer names, store or invoice ids (the terminal UI's screens
show those). Every rule is listed in docs/alerts.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel

if TYPE_CHECKING:
    from sovterm.events import EventBus

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}
SYNC_TIMEOUT_S = 3.0  # a slow sync part must not hold up a status answer
CONNECTOR_FIX = {
    "btcpay": "Run `sovterm setup btcpay` (or the setup wizard in the terminal UI).",
    "qbo": "Run `sovterm setup qbo` (or the setup wizard in the terminal UI).",
}


class Alert(BaseModel):
    """One condition that needs the operator. `key` names the condition and stays the same while it lasts
    (its first part names where it comes from: database, disk, loop, a connector, sync)."""

    key: str
    severity: Severity
    text: str
    fix: str
    since: float  # epoch seconds when the daemon first saw the condition (it forgets one that cleared)


@dataclass(frozen=True)
class Condition:
    """An alert before the tracker dates it."""

    key: str
    severity: Severity
    text: str
    fix: str


@dataclass(frozen=True)
class SyncRead:
    """The sync part's counts (None when sync is not set up) and why they could not be read."""

    summary: dict[str, Any] | None = None
    error: str | None = None


class SyncStatus(Protocol):
    """What alerts read from the sync part: its counts."""

    async def status(self) -> dict[str, Any]: ...


async def read_sync(sync: SyncStatus | None) -> SyncRead:
    if sync is None:
        return SyncRead()
    try:
        return SyncRead(await asyncio.wait_for(sync.status(), SYNC_TIMEOUT_S))
    except Exception as exc:  # a status answer reports a part's failure, it never fails with it
        return SyncRead({}, f"sync status unavailable ({type(exc).__name__})")


def _readiness(ready: bool, checks: dict[str, Any]) -> list[Condition]:
    out: list[Condition] = []
    database = checks.get("database")
    if database and database != "writable":
        fix = ("Stop the daemon and restore the latest backup (`sovterm backup restore <file>`); "
               "`sovterm db check` lists what SQLite found." if database.startswith("damaged") else
               "Check the data directory's disk and permissions; `sovterm logs --level ERROR` shows the cause.")
        out.append(Condition("database", "error", f"Database {database}", fix))
    if checks.get("disk"):
        out.append(Condition("disk", "error", f"Disk space {checks['disk']}",
                             "Free space on the disk that holds the data directory."))
    loops = checks.get("loops") or {}
    stale = set(checks.get("stale_loops") or [])
    for name, loop in sorted(loops.items()):
        if loop.get("paused"):
            out.append(Condition(f"loop.{name}.paused", "warning", f"Loop {name} is paused",
                                 f"Run `sovterm loops resume {name}` when the maintenance is over."))
        elif name in stale:
            out.append(Condition(f"loop.{name}.stale", "error",
                                 f"Loop {name} is stale (runs every {float(loop.get('interval_s') or 0):.0f} s)",
                                 f"`sovterm logs` shows why; `sovterm loops run {name}` runs it now."))
        elif loop.get("last_ok") is False:
            out.append(Condition(f"loop.{name}.failed", "warning", f"Loop {name} failed its last run",
                                 "`sovterm logs --level ERROR` shows the error; it runs again on schedule."))
    for name, conn in sorted((checks.get("connectors") or {}).items()):
        state = str(conn.get("state", "?"))
        detail = f" ({conn['detail']})" if conn.get("detail") else ""
        fix = CONNECTOR_FIX.get(name, f"`sovterm logs --component {name}` shows why.")
        if not conn.get("ready"):
            out.append(Condition(f"{name}.not_ready", "warning",
                                 f"{name} not ready: {state.replace('_', ' ')}{detail}", fix))
        elif state == "refresh_expiring":  # still working, but reconnect before it ends
            out.append(Condition(f"{name}.expiring", "warning",
                                 f"{name} authorisation ends soon{detail}", fix))
    if not ready and not out:
        out.append(Condition("not_ready", "error", "The daemon is not ready",
                             "`sovterm status --json` shows every readiness check."))
    return out


def _sync(sync: SyncRead) -> list[Condition]:
    s = sync.summary or {}
    out: list[Condition] = []
    if s.get("dead"):
        out.append(Condition("sync.dead", "error", f"{s['dead']} sync job(s) failed for good",
                             "Retry or resolve them on the terminal UI's Sync screen, or `sovterm sync dead` "
                             "then `sovterm sync retry`."))
    if s.get("held"):
        out.append(Condition("sync.held", "warning",
                             f"{s['held']} sync job(s) held: nothing more is posted to QuickBooks until the "
                             "cause is fixed",
                             "The reason is on the terminal UI's Sync screen and in `sovterm sync status`."))
    if s.get("unmatched"):
        out.append(Condition("sync.unmatched", "warning",
                             f"{s['unmatched']} payment(s) match no QuickBooks invoice",
                             "Decide on the terminal UI's Sync screen, or `sovterm sync unmatched` then "
                             "`sovterm sync resolve`."))
    if s.get("paused"):
        out.append(Condition("sync.paused", "info", "Sync is paused: nothing is posted to QuickBooks",
                             "Run `sovterm sync resume` (or resume it on the terminal UI's Sync screen)."))
    if s.get("review"):
        out.append(Condition("sync.review", "info",
                             f"{s['review']} posting(s) flagged for review (overpaid, settled below the price)",
                             "Check them on the terminal UI's Sync screen or with `sovterm sync review`, then "
                             "mark them reviewed."))
    if sync.error:
        out.append(Condition("sync.unavailable", "warning", sync.error,
                             "`sovterm logs --component sync` shows why."))
    return out


def _mints(checks: dict[str, Any]) -> list[Condition]:
    """Trusted Cashu mints (the mints part's last checks): ecash from a mint that is down cannot be redeemed."""
    out: list[Condition] = []
    for url, mint in sorted((checks.get("mints") or {}).items()):
        host = urlsplit(url).netloc or url
        problems = "; ".join(mint.get("problems") or [])
        if mint.get("state") == "down":
            out.append(Condition(f"mint.{host}.down", "error", f"Cashu mint {host} is down: {problems}",
                                 "Its ecash cannot be redeemed while it is down; `sovterm mints` shows its history. "
                                 "If it stays down, stop trusting it in BTCNutServer's store settings."))
        elif mint.get("state") == "degraded":
            out.append(Condition(f"mint.{host}.degraded", "warning", f"Cashu mint {host}: {problems}",
                                 "`sovterm mints` shows what changed; ask the mint's operator if it lasts."))
        if mint.get("motd"):
            out.append(Condition(f"mint.{host}.motd", "info", f"Cashu mint {host} says: {mint['motd'][:200]}",
                                 "Read it: mints use this message for maintenance and shutdown notices."))
    return out


def conditions(ready: bool, checks: dict[str, Any], sync: SyncRead) -> list[Condition]:
    """Every rule, applied to one reading of the daemon's state (docs/alerts.md lists them)."""
    return _readiness(ready, checks) + _sync(sync) + _mints(checks)


AlertListener = Callable[[str, "Alert"], None]  # ("started" | "cleared", the alert)


class AlertTracker:
    """When each condition was first seen, forgotten once it clears. A new one is published as `alert`, one
    that cleared as `alert.cleared`, and both are handed to the listeners (notifications), which hear them
    even when no client is subscribed to the bus."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.first_seen: dict[str, float] = {}
        self.active: dict[str, Alert] = {}
        self.listeners: list[AlertListener] = []

    def observe(self, found: list[Condition], bus: EventBus) -> list[Alert]:
        now = self.clock()
        seen = {c.key: self.first_seen.get(c.key, now) for c in found}
        alerts = [Alert(key=c.key, severity=c.severity, text=c.text, fix=c.fix, since=seen[c.key]) for c in found]
        for alert in alerts:
            if alert.key not in self.first_seen:
                bus.publish("alert", source=alert.key.split(".")[0], **alert.model_dump())
                self._tell("started", alert)
        for key in self.first_seen.keys() - seen.keys():
            gone = self.active.get(key)
            if gone is not None:
                bus.publish("alert.cleared", source=key.split(".")[0], **gone.model_dump())
                self._tell("cleared", gone)
        self.first_seen = seen
        self.active = {a.key: a for a in alerts}
        return sorted(alerts, key=lambda a: SEVERITY_ORDER[a.severity])

    def _tell(self, change: str, alert: Alert) -> None:
        for listener in self.listeners:
            listener(change, alert)


async def current(tracker: AlertTracker, bus: EventBus, ready: bool, checks: dict[str, Any],
                  sync: SyncRead) -> list[Alert]:
    """The alerts for this reading of the readiness checks and of the sync part."""
    return tracker.observe(conditions(ready, checks, sync), bus)
