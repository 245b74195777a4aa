"""Shared helpers for the ops tests: an in-process listener and headless Chromium."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sovterm.config import load_settings
from sovterm.logs import LogRing, LogSetup
from sovterm.services import Services
from sovterm.store.db import Database
from sovterm.systemd import Notifier
from sovterm.web.app import create_listener_app
from sovterm.web.status import add_routes

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


@asynccontextmanager
async def status_client(tmp_path: Path, sync: Any = None) -> AsyncIterator[tuple[TestClient, Services]]:
    """The listener app with the status routes, on a real 127.0.0.1 port, with an optional sync service."""
    settings = load_settings(None, {"SOVTERM_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)})
    logs = LogSetup(ring=LogRing(), handlers=[])  # not setup_logging: it reconfigures the global tree
    services = Services(settings, {}, Notifier({}), logs)
    if sync is not None:
        services.sync = sync  # the sync part sets this field when it is wired in
    services.db = await Database.open(tmp_path / "t.db")
    app = create_listener_app(services)
    add_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, services
    finally:
        await client.close()
        await services.db.close()
        logs.close()


async def chromium(tmp_path: Path, *args: str, timeout: float = 60.0) -> bytes:
    """Run headless Chromium without blocking the event loop that serves the page."""
    assert CHROMIUM is not None
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


async def seed_data_dir(data_dir: Path, secrets: dict[str, str], kv: dict[str, Any] | None = None) -> None:
    """Create a daemon's database and key file before it starts, holding known secrets."""
    from sovterm.store import keyring

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = await Database.open(data_dir / "sovterm.db")
    try:
        store = await keyring.unlock(db, data_dir)
        for name, value in secrets.items():
            await store.put(name, value)
        for key, value in (kv or {}).items():
            await db.write("INSERT INTO kv(key, value, updated_at) VALUES(?, ?, 0)", (key, json.dumps(value)))
    finally:
        await db.close()


async def read_secret(data_dir: Path, name: str) -> str | None:
    from sovterm.store import keyring

    db = await Database.open(data_dir / "sovterm.db")
    try:
        value = await (await keyring.unlock(db, data_dir)).get(name)
        return value.reveal() if value else None
    finally:
        await db.close()
