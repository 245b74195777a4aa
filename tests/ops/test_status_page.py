"""The read-only status page: content, escaping, no secrets or customer data, GET only, real browser."""

from __future__ import annotations

import json
import struct
import time
import urllib.error
import urllib.request
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sovterm.analytics.service import Analytics
from sovterm.config import StatusPageSettings
from tests.ops.helpers import chromium, needs_chromium, status_client
from tests.sync.helpers import invoice, put

EVIL = "<script>alert('x')</script>"


class FakeSync:
    """What the sync part will expose: counts and ages, plus recent postings with fields the page must drop."""

    async def status(self) -> dict[str, Any]:
        return {"queued": 3, "running": 1, "dead": 2, "held": 0, "unmatched": 1,
                "last_poll_age_s": 42.0, "last_posting_age_s": 310.0,
                "store_name": "Alice's Secret Shop"}

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {"entity": "SalesReceipt", "kind": "sale", "status": "posted", "posted_at": now - 60,
             "amount": "123.45", "store_id": "StoreXYZ123", "buyer_email": "alice@example.com"},
            {"entity": "RefundReceipt", "kind": "refund", "status": "pending", "created_at": now - 7200,
             "amount": "9.99", "invoice_id": "InvABC987"},
        ][:limit]


FORBIDDEN = ("123.45", "9.99", "StoreXYZ123", "InvABC987", "alice@example.com", "Alice's Secret Shop", EVIL)


async def test_page_shows_state_and_hides_customer_data(tmp_path: Path) -> None:
    async with status_client(tmp_path, FakeSync()) as (client, services):
        services.connectors.set("btcpay", "connected", "https://btcpay.example", ready=True)
        services.connectors.set("qbo", "reconnect_required", f"refresh token revoked {EVIL}", ready=False)
        resp = await client.get("/")
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'none' forbids scripts
        for text in ("Not ready", "btcpay", "connected", "reconnect required", "Recent postings", "SalesReceipt",
                     "60 s ago", "2.0 h ago", "Open the terminal UI", "docker exec -it sovterm_daemon_1 sovterm tui",
                     "start-cli package attach sovterm", "sovterm-admin", "2 sync job(s) failed for good"):
            assert text in page, text
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # shown, escaped
        for value in FORBIDDEN:
            assert value not in page, value
        assert "<script" not in page.lower()

        data = await (await client.get("/status.json")).json()
        assert data["ready"] is False and data["sync"]["summary"]["dead"] == 2
        assert data["sync"]["recent"][0] == {"entity": "SalesReceipt", "kind": "sale", "status": "posted",
                                              "age_s": data["sync"]["recent"][0]["age_s"]}
        raw = json.dumps(data)
        for value in FORBIDDEN[:-1]:
            assert value not in raw, value


async def test_read_only_get_and_head_only(tmp_path: Path) -> None:
    async with status_client(tmp_path) as (client, _):
        assert (await client.head("/")).status == 200
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert (await client.request(method, "/")).status == 405, method
            assert (await client.request(method, "/status.json")).status == 405, method


async def test_without_sync_part_says_so(tmp_path: Path) -> None:
    async with status_client(tmp_path) as (client, _):
        page = await (await client.get("/")).text()
        assert "Sync not set up yet." in page and "Ready" in page
        assert (await (await client.get("/status.json")).json())["sync"] == {"available": False}


async def test_a_failing_sync_part_does_not_break_the_page(tmp_path: Path) -> None:
    class Broken:
        async def status(self) -> dict[str, Any]:
            raise RuntimeError("database is locked")

    async with status_client(tmp_path, Broken()) as (client, _):
        resp = await client.get("/")
        assert resp.status == 200 and "sync status unavailable (RuntimeError)" in await resp.text()


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def _top_left_pixel(path: Path) -> tuple[int, int, int]:
    """The page background: the first pixel of the first row is stored as is whatever the row filter."""
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return raw[1], raw[2], raw[3]


@needs_chromium
async def test_renders_in_headless_chromium_wide_and_phone(tmp_path: Path) -> None:
    async with status_client(tmp_path, FakeSync()) as (client, services):
        services.connectors.set("btcpay", "connected", "https://btcpay.example", ready=True)
        services.connectors.set("qbo", "reconnect_required", "refresh token revoked", ready=False)
        services.heartbeats.register("reaper", 30)
        services.heartbeats.finished("reaper", True)
        url = str(client.make_url("/"))
        dom = (await chromium(tmp_path, "--window-size=1200,900", "--dump-dom", url)).decode()
        assert "<h1>Sovterm</h1>" in dom and "Open the terminal UI" in dom and "SalesReceipt" in dom
        assert 'class="badge bad">Not ready<' in dom
        for name, size in (("wide", "1200,900"), ("phone", "390,844")):
            shot = tmp_path / f"status-{name}.png"
            await chromium(tmp_path, f"--window-size={size}", "--hide-scrollbars", f"--screenshot={shot}", url)
            width, height = _png_size(shot)
            assert (width, height) == tuple(int(v) for v in size.split(",")), (name, width, height)
            assert shot.stat().st_size > 10_000, f"{name} screenshot looks blank"
        dark = tmp_path / "status-phone-dark.png"
        await chromium(tmp_path, "--window-size=390,844", "--force-dark-mode", "--hide-scrollbars",
                       f"--screenshot={dark}", url)
        assert max(_top_left_pixel(tmp_path / "status-phone.png")) > 200  # light background
        assert max(_top_left_pixel(dark)) < 60  # prefers-color-scheme: dark honoured


def _get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_listening(url: str, timeout: float = 10.0) -> None:
    """The control socket comes up just before the TCP site; wait for the listener too."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _get(url + "/healthz")
            return
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_real_daemon_serves_the_page(daemon_factory) -> None:
    d = daemon_factory()
    _wait_listening(d.url)
    status, page = _get(d.url + "/")
    assert status == 200 and "Open the terminal UI" in page and "btcpay" in page
    status, body = _get(d.url + "/status.json")
    assert status == 200 and json.loads(body)["sovterm"]
    assert _get(d.url + "/", "POST")[0] == 405


async def test_shop_figures_show_counts_and_rates_and_money_only_when_allowed(tmp_path: Path) -> None:
    async with status_client(tmp_path) as (client, services):
        services.analytics = Analytics(services.db)
        created = int(datetime.now(UTC).timestamp()) - 3600
        await put(services.db, invoice("paid1", amount="100.00", created=created))
        await put(services.db, invoice("gone1", status="Expired", amount="55.55", created=created, payments=[]))

        page = await (await client.get("/")).text()
        assert "Settled invoices per day" in page and "<svg" in page and "<rect" in page
        assert ">50.0 %</span><span class=\"label\">conversion" in page
        assert "100.00" not in page and "100.00" not in await (await client.get("/status.json")).text()

        services.settings = services.settings.model_copy(update={"status_page": StatusPageSettings(show_amounts=True)})
        page = await (await client.get("/")).text()
        assert "100.00 USD" in page and "Settled volume (USD) per day" in page
        assert "<script" not in page.lower()
