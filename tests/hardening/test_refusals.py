"""#19 point 1: refused webhooks are recorded in bounded form and the operator still sees them."""

from __future__ import annotations

import json

import aiohttp

from sovterm.btcpay.webhooks import RECENT_REFUSALS
from tests.btcpay_e2e.conftest import metric
from tests.hardening.conftest import post_many, run

N = 2_000
#: An 8 KB store id in the URL (aiohttp's longest request line) made each refusal row about 8.5 KB.
LONG_STORE = "S" * 8000


def test_thousands_of_refusals_grow_the_database_by_little_and_stay_visible(hardened) -> None:
    d = hardened({"listener": {"rate_limit_webhook_per_min": 1_000_000}})  # what a refusal costs once admitted
    before = d.db_bytes()
    statuses = run(post_many(f"{d.url}/webhooks/btcpay/{LONG_STORE}", N, b"x" * 4000,
                             headers={"BTCPay-Sig": "sha256=" + "0" * 64}))
    assert statuses == {404: N}
    grown = d.db_bytes() - before
    assert grown < 1_000_000, f"{N} refusals grew the database by {grown:,} bytes"  # was 8.5 KB each

    # the ring holds the most recent ones, clipped; the counts hold them all
    ring = d.query("SELECT COUNT(*), MAX(LENGTH(store_id)), MAX(LENGTH(reason)) FROM webhook_refusals")[0]
    assert ring[0] == min(N, RECENT_REFUSALS) and ring[1] <= 64 and ring[2] < 100
    assert d.query("SELECT SUM(refused) FROM webhook_refusal_counts WHERE reason = 'unknown_store'") == [(N,)]

    status = d.cli("btcpay", "status", "--json")
    seen = json.loads(status.stdout)["refusals"]
    assert seen["last_24h"] == {"unknown_store": N}
    assert seen["recent"][0]["client"] == "127.0.0.1" and seen["recent"][0]["http_status"] == 404
    assert seen["recent"][0]["store_id"].startswith("SSSS") and len(seen["recent"][0]["store_id"]) <= 64
    human = d.cli("btcpay", "status").stdout
    assert f"refused webhooks in 24 h: unknown_store {N}" in human and "from 127.0.0.1" in human

    text = run(_get(f"{d.url}/metrics"))
    assert metric(text, "sovterm_webhook_deliveries_total", outcome="unknown_store") == N

    log = (d.root / "data" / "logs").glob("*")
    lines = [line for p in log if p.is_file() for line in p.read_text(errors="replace").splitlines()
             if "refused BTCPay webhook" in line]
    assert 1 <= len(lines) <= 4, f"{len(lines)} log lines for {N} refusals"


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return await resp.text()
