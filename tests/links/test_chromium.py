"""The pay page in a real browser (Debian's headless Chromium): the click lands on the checkout showing the amount."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sovterm.links.pay import PayPage
from sovterm.web.links import add_routes
from tests.links.harness import World

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package (/usr/bin/chromium)")


async def chromium(tmp: Path, url: str, *extra: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}", "--window-size=800,600", *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 45)
    assert proc.returncode == 0
    return out.decode("utf-8", "replace")


async def test_pay_page_redirects_to_checkout_with_amount(world: World, tmp_path: Path) -> None:
    world.btcpay_state.public_url = world.btcpay_url  # checkout links the browser can open
    links = world.links()
    app = web.Application()
    pay_page = PayPage(links)
    add_routes(app, lambda request: pay_page)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        link = await links.create_qbo("1003", actor="alice", audit=world.audit)
        pay_url = str(server.make_url("/pay/" + link["url"].rsplit("/pay/", 1)[1]))
        dom = await chromium(tmp_path, pay_url, "--dump-dom")
        [inv] = world.btcpay_invoices()
        assert f"Invoice {inv.id}" in dom  # the browser followed the 303 to BTCPay's checkout
        assert "150.00 USD" in dom  # the open balance of invoice 1003
        shot = tmp_path / "checkout.png"
        await chromium(tmp_path, pay_url, f"--screenshot={shot}")
        assert shot.read_bytes().startswith(b"\x89PNG")
        assert len(world.btcpay_invoices()) == 1  # the second visit reused the reservation
        refused = await chromium(tmp_path, str(server.make_url("/pay/not-a-real-token")), "--dump-dom")
        assert "Link not recognised" in refused and "<script" not in refused
    finally:
        await server.close()
