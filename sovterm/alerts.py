"""What needs the operator's attention, worked out once in the daemon for every surface.

The `status` control method, the web status page, the CLI and the TUI all render this list and never
derive their own, so they cannot disagree. Each alert says what is wrong, how bad, since when and what
to do. Its text is shown on the unauthenticated status page too, so it carries counts, states and
connector details only: never amounts, customer names, store or invoice ids (the terminal UI's screens
show those). Every rule is listed in docs/alerts.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel

from sovterm.formatting import duration

if TYPE_CHECKING:
    from sovterm.events import EventBus

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}
SYNC_TIMEOUT_S = 3.0  # a slow sync part must not hold up a status answer
BOOKS_CHECK_KEY = "alerts.books_match"  # kv: the last books-match check (the `books.match` loop writes it)
BACKUP_KEY = "backup.last"  # kv: the newest backup `sovterm backup create` made (parts/ops.py writes it)
DAY_S = 86400
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


@dataclass(frozen=True)
class Upkeep:
    """What the rules read besides readiness and sync: payouts waiting for approval, the last books-match
    check and the newest backup. Each is a cheap read (an indexed count, two kv rows): the expensive
    books-match report runs in its own loop and only its verdict is read here."""

    now: float
    payouts_waiting: int = 0
    oldest_payout_at: float | None = None  # BTCPay's creation time of the oldest one waiting
    payout_wait_s: float = 600.0  # alert once the oldest has waited this long
    books: dict[str, Any] | None = None  # the last books-match check (BOOKS_CHECK_KEY)
    backup_at: float | None = None  # the newest backup sovterm made
    database_since: float | None = None  # when the database was created: with no backup, counted from here
    backup_max_age_s: float | None = 7 * DAY_S  # None: not watched (the platform backs the data up)
    error: str | None = None


class PayoutsWaiting(Protocol):
    async def awaiting_approval(self) -> tuple[int, float | None]: ...


async def read_upkeep(db: Any, payouts: PayoutsWaiting | None, settings: Any, clock: Callable[[], float] = time.time
                      ) -> Upkeep:
    """One reading of the upkeep facts; a failure is reported in `error`, never raised (a status answer
    reports a part's failure, it never fails with it)."""
    rules = settings.alerts
    limits = {"payout_wait_s": rules.payout_wait_min * 60.0,
              "backup_max_age_s": rules.backup_max_age_days * DAY_S if rules.backup_max_age_days else None}
    if db is None:
        return Upkeep(clock(), **limits)
    try:
        waiting, oldest = await asyncio.wait_for(payouts.awaiting_approval(), SYNC_TIMEOUT_S) if payouts else (0, None)
        rows = {key: json.loads(value) for key, value in await db.fetchall(
            "SELECT key, value FROM kv WHERE key IN (?, ?)", (BOOKS_CHECK_KEY, BACKUP_KEY))}
        created = await db.fetchone("SELECT MIN(applied_at) FROM schema_version")
    except Exception as exc:
        return Upkeep(clock(), **limits, error=f"upkeep checks unavailable ({type(exc).__name__})")
    backup = rows.get(BACKUP_KEY) or {}
    return Upkeep(clock(), waiting, oldest, books=rows.get(BOOKS_CHECK_KEY), backup_at=backup.get("at"),
                  database_since=float(created[0]) if created and created[0] is not None else None, **limits)


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


def _upkeep(up: Upkeep | None) -> list[Condition]:
    """Payouts waiting for approval, books that do not match, no recent backup."""
    if up is None:
        return []
    out: list[Condition] = []
    if up.payouts_waiting and up.oldest_payout_at is not None and up.now - up.oldest_payout_at >= up.payout_wait_s:
        out.append(Condition("payouts.awaiting", "warning",
                             f"{up.payouts_waiting} payout(s) awaiting approval, the oldest for "
                             f"{duration(up.now - up.oldest_payout_at)}",
                             "Approve or cancel them on the terminal UI's Payouts screen, or `sovterm payouts list "
                             "--open` then `sovterm payouts approve` (or `cancel`)."))
    books = up.books
    if books and books.get("ok") is False:
        found = [f"{books['differences']} difference(s)"] if books.get("differences") else []
        found += [f"{books['wallets_off']} wallet(s) off"] if books.get("wallets_off") else []
        out.append(Condition("books.differ", "error",
                             f"The books do not match for {books['from']} to {books['to']}: {', '.join(found)} "
                             f"(checked {duration(up.now - books['at'])} ago)",
                             f"`sovterm reconcile --from {books['from']} --to {books['to']}` (or the Books tab of the "
                             "terminal UI's Sync screen) lists them; once fixed, `sovterm loops run books.match` "
                             "checks again."))
    if up.backup_max_age_s is not None:
        last = up.backup_at if up.backup_at is not None else up.database_since
        if last is not None and up.now - last >= up.backup_max_age_s:
            text = (f"No backup for {duration(up.now - last)}" if up.backup_at is not None else
                    f"No backup yet (the database is {duration(up.now - last)} old)")
            out.append(Condition("backup.old", "warning", text,
                                 "Run `sovterm backup create --output <file>` and keep the file off this machine "
                                 "(docs/operations.md). If the platform backs up the whole data directory, set "
                                 "`[alerts] backup_max_age_days = 0`."))
    if up.error:
        out.append(Condition("upkeep.unavailable", "warning", up.error, "`sovterm logs --level ERROR` shows why."))
    return out


def conditions(ready: bool, checks: dict[str, Any], sync: SyncRead, upkeep: Upkeep | None = None) -> list[Condition]:
    """Every rule, applied to one reading of the daemon's state (docs/alerts.md lists them)."""
    return _readiness(ready, checks) + _sync(sync) + _upkeep(upkeep) + _mints(checks)


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
                  sync: SyncRead, upkeep: Upkeep | None = None) -> list[Alert]:
    """The alerts for this reading of the readiness checks, the sync part and the upkeep facts."""
    return tracker.observe(conditions(ready, checks, sync, upkeep), bus)


async def for_daemon(services: Any, ready: bool, checks: dict[str, Any], sync: SyncRead | None = None) -> list[Alert]:
    """The daemon's alerts now, for every surface and the notifications loop (`services` is the daemon's
    `Services`; not imported here, which would be a cycle)."""
    if sync is None:
        sync = await read_sync(services.sync)
    upkeep = await read_upkeep(services.db, services.payouts, services.settings)
    return await current(services.alerts, services.bus, ready, checks, sync, upkeep)
