"""What the daemon knows about its own health: loop heartbeats, connector states, metrics.

`/readyz`, `sovterm status`, the TUI dashboard and the status page all read these, so they agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class LoopBeat:
    name: str
    interval_s: float
    last_start: float | None = None
    last_end: float | None = None
    last_ok: bool | None = None
    last_error: str | None = None
    runs: int = 0
    paused: bool = False


@dataclass
class Heartbeats:
    """Each scheduled loop beats when a run completes; a loop that stops beating makes us unready."""

    grace_s: float
    clock: Callable[[], float] = time.time
    loops: dict[str, LoopBeat] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def register(self, name: str, interval_s: float) -> None:
        self.loops[name] = LoopBeat(name, interval_s)

    def started(self, name: str) -> None:
        self.loops[name].last_start = self.clock()

    def finished(self, name: str, ok: bool, error: str | None = None) -> None:
        beat = self.loops[name]
        beat.last_end = self.clock()
        beat.last_ok = ok
        beat.last_error = error
        beat.runs += 1

    def stale(self) -> list[str]:
        """Loops whose last completed run (or start-up) is older than two intervals plus grace."""
        now = self.clock()
        out = []
        for beat in self.loops.values():
            last = beat.last_end if beat.last_end is not None else self.started_at
            if beat.paused or now - last > 2 * beat.interval_s + self.grace_s:
                out.append(beat.name)
        return out

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        stale = set(self.stale())
        return {
            b.name: {
                "interval_s": b.interval_s,
                "last_run_age_s": None if b.last_end is None else round(now - b.last_end, 1),
                "last_ok": b.last_ok,
                "last_error": b.last_error,
                "runs": b.runs,
                "paused": b.paused,
                "fresh": b.name not in stale,
            }
            for b in self.loops.values()
        }


@dataclass
class ConnectorState:
    state: str  # e.g. not_configured, connected, unreachable, reconnect_required
    detail: str = ""
    since: float = field(default_factory=time.time)
    ready: bool = True  # does this state still let the daemon do its job?


class Connectors:
    """Named connector states (btcpay, qbo...), set by their parts, read by health and status."""

    def __init__(self, on_change: Callable[[str, ConnectorState], None] | None = None) -> None:
        self._states: dict[str, ConnectorState] = {}
        self._on_change = on_change

    def set(self, name: str, state: str, detail: str = "", *, ready: bool = True) -> None:
        old = self._states.get(name)
        if old and old.state == state and old.detail == detail:
            return
        new = ConnectorState(state, detail, ready=ready)
        self._states[name] = new
        if self._on_change:
            self._on_change(name, new)

    def get(self, name: str) -> ConnectorState | None:
        return self._states.get(name)

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {"state": s.state, "detail": s.detail, "since": s.since, "ready": s.ready}
            for name, s in self._states.items()
        }


class Metrics:
    """Prometheus metrics in a registry of this daemon's own (no process-global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "sovterm_http_requests", "HTTP requests by route and status", ["route", "status"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "sovterm_webhook_deliveries", "BTCPay webhook deliveries by outcome", ["outcome"],
            registry=self.registry,
        )
        self.control_requests = Counter(
            "sovterm_control_requests", "Control-socket requests", registry=self.registry
        )
        self.loop_runs = Counter(
            "sovterm_loop_runs", "Scheduled loop runs by outcome", ["loop", "outcome"],
            registry=self.registry,
        )
        self.loop_last_success = Gauge(
            "sovterm_loop_last_success_timestamp_seconds", "When each loop last succeeded", ["loop"],
            registry=self.registry,
        )
        self.ready = Gauge("sovterm_ready", "1 when /readyz is green", registry=self.registry)
        self.free_disk = Gauge(
            "sovterm_data_dir_free_bytes", "Free bytes on the data directory's filesystem",
            registry=self.registry,
        )
        self.gauges: dict[str, Gauge] = {}
        self.latency = Histogram(
            "sovterm_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self._per_request: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._per_outcome: dict[str, Any] = {}
        # sync figures, refreshed when /metrics is read (at most every SYNC_REFRESH_S)
        self.sync_jobs = Gauge("sovterm_sync_jobs", "Sync jobs by state (queued, running, held, dead)", ["state"],
                               registry=self.registry)
        self.sync_unmatched = Gauge("sovterm_sync_unmatched_payments",
                                    "Invoicing-mode payments that match no QuickBooks invoice", registry=self.registry)
        self.sync_review = Gauge("sovterm_sync_postings_to_review", "Postings flagged for the operator's review",
                                 registry=self.registry)
        self.sync_postings = Gauge("sovterm_sync_postings", "QuickBooks documents in the postings ledger by "
                                   "document type and status", ["entity", "status"], registry=self.registry)
        self.btcpay_poll_age = Gauge("sovterm_btcpay_poll_age_seconds", "Seconds since BTCPay was last polled",
                                     registry=self.registry)
        self.qbo_errors = Counter("sovterm_qbo_errors", "QuickBooks API errors by code (Intuit's fault code, "
                                  "else sovterm's error kind)", ["code"], registry=self.registry)
        self.sync_refreshed_at = 0.0

    def count_webhook(self, outcome: str) -> None:
        """One BTCPay delivery, by what became of it (the child is looked up once per outcome)."""
        child = self._per_outcome.get(outcome)
        if child is None:
            child = self._per_outcome[outcome] = self.webhooks.labels(outcome)
        child.inc()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency. The labelled children are looked up once per
        (route, status): `labels()` takes a lock and builds a key, on every webhook otherwise."""
        children = self._per_request.get((route, status))
        if children is None:
            children = self.http_requests.labels(route, str(status)), self.latency.labels(route)
            self._per_request[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_qbo_error(self, code: str) -> None:
        self.qbo_errors.labels(code).inc()

    def observe_sync(self, summary: dict[str, Any], postings: list[tuple[str, str, int]]) -> None:
        """The sync part's counts (its `status()`) and its postings by (entity, status, count)."""
        for state in ("queued", "running", "held", "dead"):
            self.sync_jobs.labels(state).set(int(summary.get(state) or 0))
        self.sync_unmatched.set(int(summary.get("unmatched") or 0))
        self.sync_review.set(int(summary.get("review") or 0))
        age = summary.get("last_poll_age_s")
        self.btcpay_poll_age.set(float("nan") if age is None else float(age))
        self.sync_postings.clear()  # a (type, status) pair that is gone must not linger
        for entity, status, count in postings:
            self.sync_postings.labels(entity, status).set(count)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        """A gauge other parts can register lazily (queue depth, dead jobs...)."""
        if name not in self.gauges:
            self.gauges[name] = Gauge(name, doc, list(labels), registry=self.registry)
        return self.gauges[name]
