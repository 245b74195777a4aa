"""Periodic loops on APScheduler 3.11: one instance at a time, coalesced, misfires logged.

Every run beats the loop's heartbeat and is counted in metrics; in-flight runs are tracked so that
shutdown can drain them instead of letting the scheduler cancel them mid-write.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from sovterm.logs import correlation, get_logger
from sovterm.services import Services

log = get_logger("loops")

LoopFn = Callable[[], Awaitable[dict[str, Any] | None]]


@dataclass
class LoopSpec:
    name: str
    interval_s: float
    run: LoopFn  # returns a short summary of what the run did (recorded in loop_runs)
    first_delay_s: float = 0.5


class Loops:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.specs: dict[str, LoopSpec] = {}
        self.inflight: set[asyncio.Task[Any]] = set()
        self.scheduler: AsyncIOScheduler | None = None

    def add(self, spec: LoopSpec) -> None:
        self.specs[spec.name] = spec
        self.services.heartbeats.register(spec.name, spec.interval_s)

    def start(self) -> None:
        """Must be called inside the running loop (APScheduler 3.11 takes the running loop)."""
        scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
        )
        scheduler.add_listener(self._on_skip, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        for spec in self.specs.values():
            self._schedule(scheduler, spec)
        scheduler.start()
        self.scheduler = scheduler
        self.services.scheduler = scheduler

    def _schedule(self, scheduler: AsyncIOScheduler, spec: LoopSpec) -> None:
        scheduler.add_job(
            self.run_once, "interval", args=[spec.name], id=spec.name, replace_existing=True,
            seconds=spec.interval_s, next_run_time=_in(spec.first_delay_s),
        )

    def reschedule(self, name: str, interval_s: float) -> None:
        spec = self.specs[name]
        if spec.interval_s == interval_s:
            return
        spec.interval_s = interval_s
        self.services.heartbeats.loops[name].interval_s = interval_s
        if self.scheduler is not None:
            self.scheduler.reschedule_job(name, trigger="interval", seconds=interval_s)

    def pause(self, name: str, paused: bool) -> None:
        self.services.heartbeats.loops[name].paused = paused
        if self.scheduler is not None:
            (self.scheduler.pause_job if paused else self.scheduler.resume_job)(name)

    def trigger(self, name: str) -> None:
        """Run a loop now (e.g. `sovterm sync now`); skipped if it is already running."""
        if self.scheduler is not None:
            self.scheduler.modify_job(name, next_run_time=_in(0))

    async def run_once(self, name: str) -> None:
        spec = self.specs[name]
        task = asyncio.current_task()
        assert task is not None
        self.inflight.add(task)
        hb = self.services.heartbeats
        hb.started(name)
        started = time.time()
        summary: dict[str, Any] | None = None
        error: str | None = None
        try:
            with correlation(f"loop:{name}"):
                summary = await spec.run()
        except asyncio.CancelledError:
            error = "cancelled"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("loop %s failed", name)
        finally:
            self.inflight.discard(task)
            ok = error is None
            hb.finished(name, ok, error)
            self.services.metrics.loop_runs.labels(name, "ok" if ok else "error").inc()
            if ok:
                self.services.metrics.loop_last_success.labels(name).set(time.time())
            await self._record(name, started, ok, summary if ok else {"error": error})
            self.services.bus.publish("loop.run", loop=name, ok=ok, summary=summary, error=error)

    async def _record(self, name: str, started: float, ok: bool, summary: dict[str, Any] | None) -> None:
        db = self.services.db
        if db is None:
            return
        try:
            await db.write(
                "INSERT INTO loop_runs(loop, last_start, last_end, last_ok, summary) VALUES(?,?,?,?,?) "
                "ON CONFLICT(loop) DO UPDATE SET last_start=excluded.last_start, last_end=excluded.last_end,"
                " last_ok=excluded.last_ok, summary=excluded.summary",
                (name, int(started), int(time.time()), int(ok), json.dumps(summary or {}, default=str)),
            )
        except Exception:  # recording must never turn a good run into a failed one
            log.exception("could not record the run of loop %s", name)

    async def drain(self, timeout_s: float) -> bool:
        """Stop scheduling, wait for running loops to finish; True if they all finished in time."""
        if self.scheduler is not None:
            self.scheduler.pause()
        pending = set(self.inflight)
        if pending:
            log.info("waiting for %d running loop(s) to finish", len(pending))
            done, pending = await asyncio.wait(pending, timeout=timeout_s)
            for task in pending:
                task.cancel()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)
        return not pending

    def _on_skip(self, event: JobExecutionEvent) -> None:
        what = "missed its run time" if event.code == EVENT_JOB_MISSED else "is still running; run skipped"
        log.warning("loop %s %s", event.job_id, what)
        self.services.bus.publish("loop.skipped", loop=event.job_id, reason=what)


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
