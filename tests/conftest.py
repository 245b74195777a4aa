from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from sovterm.store.db import Database
from tests.support.daemon import DaemonProcess, write_config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long end-to-end tests (marked `slow`) first, the rest in their order: under xdist the short ones
    then fill the end, so the run does not wait on one worker finishing a two-minute test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database with every migration applied."""
    database = await Database.open(tmp_path / "t.db")
    yield database
    await database.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[object]:
    """Start real daemons under tmp_path; each is stopped (or killed) after the test."""
    started: list[DaemonProcess] = []

    def make(extra: dict | None = None, start: bool = True, name: str = "d", **top: object) -> DaemonProcess:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        d = DaemonProcess(root, write_config(root, extra, **top))
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        d.kill()


@pytest.fixture
def daemon(daemon_factory) -> DaemonProcess:
    return daemon_factory()
