"""Who is asking: the client address behind a trusted proxy, and per-client rate limits.

Behind Umbrel's app proxy, StartOS or a reverse proxy every request comes from the proxy's address, so
limits keyed on it would put every customer in one bucket. `X-Forwarded-For` names the real client,
but anyone can send that header: it is believed only from the configured `listener.trusted_proxies`,
and read from the right (the address each trusted hop saw), stopping at the first untrusted one.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from itertools import islice

from aiohttp import web

#: Clients tracked per limiter; beyond it, refilled buckets are forgotten first, then the oldest.
MAX_TRACKED = 50_000


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def trusts(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, remote: str | None, forwarded_for: Iterable[str]) -> str:
        """The first address, from the right, that is not a trusted proxy (`remote` itself if it is not)."""
        address = remote or "unknown"
        if not self.trusts(address):
            return address
        for header in reversed(list(forwarded_for)):
            for hop in reversed(header.split(",")):
                hop = hop.strip()
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    return address  # garbage in the chain: the last hop we could trust is the client
                if not self.trusts(hop):
                    return hop
                address = hop
        return address


TRUSTED = web.AppKey("trusted_proxies", TrustedProxies)


def client_address(request: web.Request) -> str:
    """The requesting client's address, X-Forwarded-For believed from trusted proxies only."""
    trusted = request.app.get(TRUSTED)
    if trusted is None:
        return request.remote or "unknown"
    return trusted.client(request.remote, request.headers.getall("X-Forwarded-For", ()))


class RateLimiter:
    """A token bucket per client: `per_min` requests a minute, in bursts of up to `per_min`. Memory is
    bounded (two floats a client, at most `MAX_TRACKED` clients)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED) -> None:
        self.clock = clock
        self.max_tracked = max_tracked
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def allow(self, client: str, per_min: int) -> bool:
        now = self.clock()
        tokens, then = self.buckets.pop(client, (float(per_min), now))
        tokens = min(float(per_min), tokens + (now - then) * per_min / 60.0)
        allowed = tokens >= 1.0
        self.buckets[client] = (tokens - 1.0 if allowed else tokens, now)  # re-inserted: newest last
        if len(self.buckets) > self.max_tracked:
            self._forget(now, per_min)
        return allowed

    def _forget(self, now: float, per_min: int) -> None:
        """Drop the buckets that have refilled (forgetting them changes nothing), then, if a crowd of
        addresses still fills the table, the least recently seen half."""
        for client in [c for c, (tokens, then) in self.buckets.items() if tokens + (now - then) * per_min / 60 >= per_min]:
            del self.buckets[client]
        excess = len(self.buckets) - self.max_tracked // 2
        if excess > 0:
            for client in list(islice(self.buckets, excess)):
                del self.buckets[client]
