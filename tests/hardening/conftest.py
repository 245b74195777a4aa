"""Real daemons for the hardening tests, their output in files (a flood must not block on a pipe)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.daemon import DaemonProcess, write_config


class LoggedDaemon(DaemonProcess):
    """A `DaemonProcess` whose stdout and stderr go to `out.log` under its root."""

    preexec: Callable[[], None] | None = None

    @property
    def out_path(self) -> Path:
        return self.root / "out.log"

    def start(self, wait: bool = True, timeout: float = 15.0) -> LoggedDaemon:
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sovterm", "--config", str(self.config), "daemon"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=self.preexec,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")[-4000:]

    def db_bytes(self) -> int:
        """The database's size on disk after a checkpoint folds the WAL back into it."""
        path = self.root / "data" / "sovterm.db"
        conn = sqlite3.connect(path, timeout=10)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return sum(p.stat().st_size for p in path.parent.glob("sovterm.db*"))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.root / 'data' / 'sovterm.db'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


@pytest.fixture
def hardened(tmp_path: Path) -> Iterator[Callable[..., LoggedDaemon]]:
    started: list[LoggedDaemon] = []

    def make(extra: dict | None = None, *, preexec: Callable[[], None] | None = None,
             start: bool = True) -> LoggedDaemon:
        root = tmp_path / f"d{len(started)}"
        root.mkdir()
        d = LoggedDaemon(root, write_config(root, extra))
        d.preexec = preexec
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        d.stop()


async def post_many(url: str, n: int, body: bytes, headers: dict[str, str] | None = None,
                    concurrency: int = 16) -> dict[int, int]:
    """POST `body` to `url` n times, `concurrency` at once; the count of each status answered."""
    statuses: dict[int, int] = {}
    left = iter(range(n))

    async def worker(http: aiohttp.ClientSession) -> None:
        for _ in left:
            async with http.post(url, data=body, headers=headers or {}) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return statuses


def run(coro: Any) -> Any:
    return asyncio.run(coro)
