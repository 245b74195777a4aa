"""#19 point 4: every answer of the public listener carries the headers browsers expect, and the pages
still render under their Content-Security-Policy in a real browser (headless Chromium)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.hardening.conftest import run
from tests.ops.helpers import CHROMIUM, needs_chromium

PAGES = ["/", "/pay/not-a-token", "/oauth/qbo/callback?state=forged&code=x"]
OTHER = ["/status.json", "/healthz", "/readyz", "/metrics", "/no-such-route", "/pay/not-a-token/qr.png"]


async def _answers(base: str) -> dict[str, aiohttp.typedefs.LooseHeaders]:
    out = {}
    async with aiohttp.ClientSession() as http:
        for path in PAGES + OTHER:
            async with http.get(base + path, allow_redirects=False) as resp:
                out[path] = resp.headers
        async with http.post(base + "/webhooks/btcpay/S1", data=b"{}") as resp:
            out["POST webhook"] = resp.headers
        async with http.head(base + "/") as resp:
            out["HEAD /"] = resp.headers
    return out


def test_every_answer_has_a_policy_no_framing_and_no_version_banner(hardened) -> None:
    d = hardened()
    for what, headers in run(_answers(d.url)).items():
        policy = headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, (what, policy)
        assert "unsafe-inline" not in policy and "script-src" not in policy, (what, policy)
        assert headers.get("X-Frame-Options") == "DENY", what
        assert headers.get("X-Content-Type-Options") == "nosniff", what
        assert headers.get("Server") == "sovterm", (what, headers.get("Server"))


def test_a_malformed_request_gets_no_version_banner_either(hardened) -> None:
    d = hardened()
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        answer = s.recv(4096).decode("latin-1")
    assert answer.startswith(("HTTP/1.0 400", "HTTP/1.1 400"))
    banner = [line for line in answer.split("\r\n") if line.lower().startswith("server:")]
    assert banner in ([], ["Server: sovterm"]), banner


async def _browse(tmp: Path, url: str) -> tuple[str, list[str]]:
    """The DOM Chromium ends with, and the console lines naming a Content-Security-Policy."""
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
        "--dump-dom", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    console = [line for line in err.decode("utf-8", "replace").splitlines() if "Content Security Policy" in line]
    return out.decode("utf-8", "replace"), console


@needs_chromium
def test_pages_render_with_their_styles_and_refuse_to_be_framed(hardened, tmp_path: Path) -> None:
    d = hardened()

    async def check() -> None:
        for path in PAGES:
            dom, violations = await _browse(tmp_path, d.url + path)
            assert "<style>" in dom and violations == [], (path, violations)  # the page's own style applies
        async def frames(request: web.Request) -> web.Response:
            return web.Response(text="".join(f'<iframe src="{d.url}{p}"></iframe>' for p in PAGES),
                                content_type="text/html")

        framer = web.Application()
        framer.router.add_get("/", frames)
        runner = web.AppRunner(framer)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            _, violations = await _browse(tmp_path, f"http://127.0.0.1:{port}/")
        finally:
            await runner.cleanup()
        framed = [v for v in violations if "frame-ancestors" in v]
        assert len(framed) == len(PAGES), violations

    run(check())
