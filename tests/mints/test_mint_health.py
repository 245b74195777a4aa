"""Trusted-mint health against a real nutshell mint on loopback: stopped, restarted with a message, with a new
key (keyset rotation) and with minting disabled, each change seen and kept in the history; and mints that
answer garbage, hang or redirect, which are states, never crashes. Only GET /v1/info and /v1/keysets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sovterm.alerts import SyncRead, conditions
from sovterm.mints.monitor import MintMonitor
from sovterm.store.db import Database
from tests.mints.nutshell import NutshellMint, mint_venv
from tests.support.daemon import free_port


@pytest.fixture(scope="module")
def venv() -> Path:
    return mint_venv()


@pytest.fixture
def mint(venv: Path, tmp_path: Path) -> Iterator[NutshellMint]:
    m = NutshellMint(venv, tmp_path / "mint", free_port())
    yield m
    m.stop()


@pytest.fixture
async def monitor_for(tmp_path: Path) -> AsyncIterator[Any]:
    db = await Database.open(tmp_path / "sovterm.db")
    http = aiohttp.ClientSession()
    changes: list[tuple[str, str, list[str]]] = []

    def make(*urls: str, timeout_s: float = 3.0) -> MintMonitor:
        return MintMonitor(db, http, configured=list(urls), timeout_s=timeout_s, max_skew_s=60,
                           on_change=lambda url, r, what: changes.append((url, r.state, what)))

    make.changes = changes  # type: ignore[attr-defined]
    yield make
    await http.close()
    await db.close()


def alerts_for(monitor: MintMonitor) -> list[tuple[str, str]]:
    return [(c.key, c.severity) for c in conditions(True, {"mints": monitor.snapshot()}, SyncRead())]


@pytest.mark.slow
async def test_a_real_mint_through_stop_restart_message_rotation_and_disabled_minting(mint, monitor_for) -> None:
    await asyncio.to_thread(mint.start)
    monitor = monitor_for(mint.url)
    host = mint.url.split("://")[1]
    assert await monitor.check() == {"mints": 1, "ok": 1}
    (m,) = await monitor.listing()
    assert (m["state"], m["name"], m["version"], m["source"]) == ("ok", "sovterm-test-mint", "Nutshell/0.20.2", "config")
    assert len(m["active_keysets"]) == 1 and m["input_fee_ppk"] == 0 and abs(m["skew_s"]) < 5
    assert m["minting_disabled"] is False and m["melting_disabled"] is False and m["latency_ms"] is not None
    first_keyset = m["active_keysets"][0]
    assert alerts_for(monitor) == []

    await asyncio.to_thread(mint.stop)  # down: unreachable
    await monitor.check()
    (m,) = await monitor.listing()
    assert m["state"] == "down" and m["problems"] == ["unreachable (ClientConnectorError)"]
    assert alerts_for(monitor) == [(f"mint.{host}.down", "error")]

    await asyncio.to_thread(mint.start, MINT_INFO_MOTD="maintenance on Sunday 02:00 UTC")
    await monitor.check()
    (m,) = await monitor.listing()
    assert m["state"] == "ok" and m["motd"] == "maintenance on Sunday 02:00 UTC"
    assert alerts_for(monitor) == [(f"mint.{host}.motd", "info")]

    await asyncio.to_thread(mint.stop)  # the operator rotates the keyset: a new derivation path, the old one retired
    await asyncio.to_thread(mint.start, MINT_DERIVATION_PATH="m/0'/0'/1'")
    await monitor.check()
    (m,) = await monitor.listing()
    assert first_keyset in m["active_keysets"] and len(m["active_keysets"]) == 2  # nutshell keeps the old one active

    await asyncio.to_thread(mint.stop)
    await asyncio.to_thread(mint.start, MINT_DERIVATION_PATH="m/0'/0'/1'", MINT_BOLT11_DISABLE_MINT="true")
    await monitor.check()
    (m,) = await monitor.listing()
    assert m["state"] == "degraded" and m["minting_disabled"] is True and "minting disabled" in m["problems"]
    assert (f"mint.{host}.degraded", "warning") in alerts_for(monitor)

    history = [h["detail"] for h in reversed(m["history"])]
    assert history[0] == "first check: ok"
    assert history[1].startswith("ok → down: unreachable")
    assert "down → ok" in history[2] and "message: maintenance on Sunday 02:00 UTC" in history
    assert any(h.startswith("keyset rotated: active ") for h in history)
    assert history[-1] == "ok → degraded: minting disabled"
    # a check that changes nothing adds no history
    await monitor.check()
    assert len((await monitor.listing())[0]["history"]) == len(history)


@pytest.fixture
async def odd_mints() -> AsyncIterator[str]:
    """A server whose "mints" misbehave: garbage, a hang, a redirect, an error, no active keyset."""
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>not a mint</html>")

    released = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await released.wait()  # past the monitor's timeout; released at teardown so cleanup need not wait
        return web.Response(text="{}")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://elsewhere.example/v1/info")

    async def error(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    async def retired_info(request: web.Request) -> web.Response:
        return web.json_response({"name": "retired", "version": "Nutshell/0.20.2"})

    async def retired_keysets(request: web.Request) -> web.Response:
        return web.json_response({"keysets": [{"id": "00aa", "unit": "sat", "active": False, "input_fee_ppk": 0}]})

    app = web.Application()
    for name, handler in (("garbage", garbage), ("hang", hang), ("redirect", redirect), ("error", error)):
        app.router.add_get(f"/{name}/v1/info", handler)
        app.router.add_get(f"/{name}/v1/keysets", handler)
    app.router.add_get("/retired/v1/info", retired_info)
    app.router.add_get("/retired/v1/keysets", retired_keysets)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    released.set()
    await runner.cleanup()


async def test_garbage_hangs_redirects_and_errors_are_states(monitor_for, odd_mints) -> None:
    names = ("garbage", "hang", "redirect", "error", "retired")
    monitor = monitor_for(*(f"{odd_mints}/{n}" for n in names), timeout_s=1.0)
    assert await monitor.check() == {"mints": 5, "down": 5}
    problems = {m["url"].rsplit("/", 1)[1]: m["problems"] for m in await monitor.listing()}
    assert problems == {
        "garbage": ["/v1/info answers something that is not JSON"],
        "hang": ["no answer within 1 s"],
        "redirect": ["/v1/info redirects (302) to https://elsewhere.example/v1/info"],
        "error": ["/v1/info answers HTTP 503"],
        "retired": ["no active keyset (it cannot issue ecash)"],
    }
