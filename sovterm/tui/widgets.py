"""Dashboard panels: each renders one part of `DaemonState` and nothing else (no socket, no timers).

The `render_*` functions are pure (state in, markup out) so they are tested without a terminal.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from textual.widgets import Static

from sovterm.amounts import sats_to_btc
from sovterm.formatting import age, duration
from sovterm.tui.state import DaemonState, alerts_from_status, sparkline
from sovterm.tui.text import escape
from sovterm.tui.views import SyncProgress

NO_DATA = "[dim]no data yet[/]"
MARK = {"error": "[$error]✗[/]", "warning": "[$warning]![/]", "info": "[$primary]i[/]"}


def render_daemon(state: DaemonState) -> str:
    st = state.status
    if not st:
        return NO_DATA
    ready = "[$success]READY[/]" if st.get("ready") else "[$error b]NOT READY[/]"
    checks = st.get("checks") or {}
    return "\n".join([
        f"sovterm [b]{escape(str(st.get('version')))}[/]  {ready}",
        f"pid {st.get('pid')} · up {duration(float(st.get('uptime_s') or 0))} · schema v{st.get('schema_version')}",
        f"db {escape(str(checks.get('database', '?')))} · disk {checks.get('disk_free_mb', '?')} MB free",
        f"listener {escape(str(st.get('listener')))}",
        f"data {escape(str(st.get('data_dir')))}",
    ])


def render_alerts(state: DaemonState) -> str:
    """The daemon's alerts, plus the TUI's own dropped notifications; what to do for each comes after
    them all, in the same order, so a small panel still shows every alert."""
    alerts = alerts_from_status(state.status)
    lines = [f"{MARK.get(a.severity, '-')} {escape(a.text)}" for a in alerts]
    if state.missed_events:
        lines.append(f"{MARK['warning']} {state.missed_events} daemon notifications dropped (TUI too slow)")
    lines += [f"[dim]→ {escape(a.fix)}[/]" for a in alerts if a.fix]
    if not state.status:
        return NO_DATA
    return "\n".join(lines) or "[$success]✓[/] nothing needs attention"


def render_connectors(state: DaemonState) -> str:
    if not state.status:
        return NO_DATA
    connectors = (state.status.get("checks") or {}).get("connectors") or {}
    if not connectors:
        return "[dim]none configured yet (setup wizard)[/]"
    lines = []
    for name, c in sorted(connectors.items()):
        mark = "[$success]●[/]" if c.get("ready") else "[$error]○[/]"
        detail = f" [dim]{escape(str(c['detail']))}[/]" if c.get("detail") else ""
        lines.append(f"{mark} {escape(name):<8} {escape(str(c.get('state', '?')))}{detail}")
    lines += [store_line(s) for s in state.status.get("stores") or []]
    return "\n".join(lines)


def store_line(store: dict[str, Any]) -> str:
    """A followed store as it is booked: mode, class, which key serves it, and a failed poll."""
    mark = "[$error]○[/]" if store.get("error") else "[$success]●[/]"
    mapping = store.get("mapping")
    books = "[$warning]no accounts mapped[/]" if not mapping else (
        f"class {escape(str(mapping['class']))}" if mapping.get("class") else "no class")
    key = " · own key" if store.get("api_key") == "own" else ""
    error = f" [$error]{escape(str(store['error']))}[/]" if store.get("error") else ""
    return f"{mark} store {escape(str(store.get('name')))}: {escape(str(store.get('mode')))} · {books}{key}{error}"


def render_loops(state: DaemonState) -> str:
    if not state.status:
        return NO_DATA
    loops = (state.status.get("checks") or {}).get("loops") or {}
    # one line per loop: state, last run, interval ("42 s ago / 300 s")
    if not loops:
        return "[dim]no loops scheduled[/]"
    lines = []
    width = max(len(name) for name in loops)
    for name, loop in sorted(loops.items()):
        if loop.get("paused"):
            flag = "[$warning]paused[/]"
        elif not loop.get("fresh", True):
            flag = "[$error]STALE[/] "
        elif loop.get("last_ok") is False:
            flag = "[$error]failed[/]"
        else:
            flag = "[$success]ok[/]    "
        lines.append(
            f"{escape(name.ljust(width))} {flag} {age(loop.get('last_run_age_s'))} / {loop.get('interval_s', 0):.0f} s"
        )
    return "\n".join(lines)


def _feed(state: DaemonState, method: str) -> tuple[Any, str | None]:
    """(result, reason there is none)."""
    if method in state.feeds:
        return state.feeds[method], None
    why = state.caps.why_not(method)
    return None, why or "waiting for the daemon"


def render_sync(state: DaemonState) -> str:
    data, why = _feed(state, "sync.status")
    if not isinstance(data, dict):
        return f"{NO_DATA}\n[dim]{escape(why or 'sync status unavailable')}[/]"
    lines = [
        f"queue {data.get('queued', '—')} · dead {data.get('dead', '—')} · unmatched {data.get('unmatched', '—')}"
        + (" · [$warning]paused[/]" if data.get("paused") else ""),
        f"last poll {age(data.get('last_poll_age_s'))}",
        f"last posting {age(data.get('last_posting_age_s'))}",
    ]
    progress = SyncProgress.from_backfill(data.get("backfill"))
    if progress is not None:
        lines.append(progress.text())
    return "\n".join(lines)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _sats(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def render_volume(state: DaemonState, width: int = 30) -> str:
    data, why = _feed(state, "sync.totals")
    if not isinstance(data, dict):
        return f"{NO_DATA}\n[dim]{escape(why or 'totals unavailable')}[/]"
    cur = escape(str(data.get("currency", "")))
    daily = [d for d in (_decimal(v) for v in data.get("daily") or []) if d is not None][-width:]
    today, d7, d30 = (_sats(data, k) for k in ("sats_today", "sats_d7", "sats_d30"))
    lines = [
        f"today {escape(str(data.get('today', '—')))} {cur}" + ("" if today is None else f" · {sats_to_btc(today)} BTC"),
        f"7 d {escape(str(data.get('d7', '—')))} · 30 d {escape(str(data.get('d30', '—')))} {cur}",
    ]
    if d7 is not None or d30 is not None:  # a daemon that reports no BTC figures: nothing is said
        lines.append(" · ".join(f"{label} {sats_to_btc(v)}" for label, v in (("7 d", d7), ("30 d", d30)) if v is not None)
                     + " BTC")
    lines.append(f"[$accent]{sparkline(daily)}[/]" if daily else "[dim]no daily totals yet[/]")
    return "\n".join(lines)


class Panel(Static):
    """A bordered box whose content is a pure function of the daemon state."""

    def __init__(self, title: str, render_fn: Any, *, id: str) -> None:
        super().__init__(NO_DATA, id=id, classes="panel")
        self.border_title = title
        self._render_fn = render_fn

    def show(self, state: DaemonState) -> None:
        self.update(self._render_fn(state))
