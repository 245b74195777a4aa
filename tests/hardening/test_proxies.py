"""#19 point 5: rate limits per real client behind a trusted proxy, on every public route, far above
what BTCPay and a busy shop send."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from sovterm.config import load_settings
from sovterm.errors import ConfigError
from sovterm.web.clients import RateLimiter, TrustedProxies
from tests.hardening.conftest import run

PROXY = TrustedProxies(["127.0.0.1", "10.21.0.0/16"])


@pytest.mark.parametrize(("remote", "xff", "client"), [
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a proxy: its header is not believed
    ("127.0.0.1", [], "127.0.0.1"),  # a proxy that forwards nothing (Tor): the proxy itself
    ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ("127.0.0.1", ["198.51.100.1, 10.21.0.5"], "198.51.100.1"),  # two trusted hops
    ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # a forged entry left of the real one
    ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # the same in two header lines
    ("127.0.0.1", ["junk, 10.21.0.5"], "10.21.0.5"),
])
def test_forwarded_for_is_believed_from_trusted_proxies_only(remote, xff, client) -> None:
    assert PROXY.client(remote, xff) == client


def test_trusted_proxies_from_the_environment_and_a_clear_error(tmp_path) -> None:
    env = {"SOVTERM_DATA_DIR": str(tmp_path), "SOVTERM_LISTENER__TRUSTED_PROXIES": "10.21.0.0/16, 127.0.0.1"}
    assert load_settings(None, env).listener.trusted_proxies == ["10.21.0.0/16", "127.0.0.1"]
    with pytest.raises(ConfigError) as bad:
        load_settings(None, {**env, "SOVTERM_LISTENER__TRUSTED_PROXIES": "umbrel.local"})
    assert "listener.trusted_proxies" in str(bad.value) and "not an IP address or network" in str(bad.value)


def test_btcpay_and_a_busy_shop_never_meet_the_default_webhook_limit() -> None:
    """An hour of a busy shop: a burst of 300 deliveries every 10 s at the peak (75 invoices settling at
    once, 4 events each) plus BTCPay's retries of all of them after 10 s and 1 min; then the queue of
    5,000 events BTCPay flushes back to back after sovterm was down (it sends one at a time per webhook)."""
    defaults = load_settings(None, {"SOVTERM_DATA_DIR": "/tmp"}).listener
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    refused = 0
    for second in range(0, 3600, 10):
        now[0] = float(second)
        burst = 300 if second % 600 < 60 else 20
        retries = burst if second % 600 in (10, 60) else 0
        refused += sum(not limiter.allow("btcpay", defaults.rate_limit_webhook_per_min) for _ in range(burst + retries))
    now[0] = 3600.0
    refused += sum(not limiter.allow("btcpay", defaults.rate_limit_webhook_per_min) for _ in range(5000))
    assert refused == 0
    # while a flood from one address is cut to the limit
    now[0] = 5000.0
    allowed = sum(limiter.allow("flood", defaults.rate_limit_webhook_per_min) for _ in range(50_000))
    assert allowed == defaults.rate_limit_webhook_per_min


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(max_tracked=1000)
    for i in range(10_000):
        limiter.allow(f"2001:db8::{i:x}", 30)
    assert len(limiter.buckets) <= 1000


ROUTES = [("GET", "/"), ("GET", "/status.json"), ("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/readyz"),
          ("GET", "/oauth/qbo/callback?state=x&code=y"), ("POST", "/webhooks/btcpay/S1"), ("GET", "/nothing-here")]
LOW = {"rate_limit_webhook_per_min": 4, "rate_limit_callback_per_min": 4, "rate_limit_status_per_min": 4,
       "rate_limit_metrics_per_min": 4, "rate_limit_health_per_min": 4}


async def _statuses(base: str, method: str, path: str, n: int, forwarded: str | None) -> list[int]:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with aiohttp.ClientSession() as http:
        out = []
        for _ in range(n):
            async with http.request(method, base + path, headers=headers, data=b"{}") as resp:
                await resp.read()
                out.append(resp.status)
        return out


def test_every_public_route_is_limited_per_forwarded_client(hardened) -> None:
    d = hardened({"listener": {**LOW, "trusted_proxies": "127.0.0.1"}})

    async def check() -> None:
        for i, (method, path) in enumerate(ROUTES):  # a customer each: / and /status.json share a limit
            first = await _statuses(d.url, method, path, 5, f"198.51.100.{i}")
            assert 429 not in first[:4] and first[4] == 429, (path, first)
            other = await _statuses(d.url, method, path, 1, f"203.0.113.{i}")  # another customer, same proxy
            assert other[0] != 429, (path, other)

    run(check())


def test_a_client_that_is_no_proxy_cannot_escape_its_limit_by_forging_the_header(hardened) -> None:
    d = hardened({"listener": {**LOW, "trusted_proxies": "10.21.0.1"}})

    async def check() -> list[int]:
        return [s for i in range(6) for s in await _statuses(d.url, "GET", "/", 1, f"198.51.100.{i}")]

    statuses = run(check())
    assert statuses.count(429) == 2, statuses


def test_limits_protect_the_daemon_from_a_flood_without_slowing_others(hardened) -> None:
    d = hardened({"listener": {"rate_limit_status_per_min": 10}})

    async def check() -> tuple[list[int], int]:
        flood = await asyncio.gather(*(_statuses(d.url, "GET", "/", 20, None) for _ in range(4)))
        async with aiohttp.ClientSession() as http, http.get(d.url + "/healthz") as resp:
            return [s for batch in flood for s in batch], resp.status

    flood, health = run(check())
    assert flood.count(200) == 10 and flood.count(429) == 70 and health == 200
