"""Paid requests through the 402 gate against the upstream alone, and the gate's CPU per verified request.

Run: `.venv/bin/python bench/paywall.py [--requests 5000] [--concurrency 16]`.
The upstream (a small JSON answer) and sovterm's listener (the real app: middlewares, the priced-path
resource, the credential check, the receipt, the proxy) each run in a process of their own; this one is the
client. Prints requests per second direct and through the gate and their ratio, the listener's CPU per
proxied request (from /proc), and the gate's own CPU per verified request (credential parsed, macaroon chain
checked, preimage hashed, receipt built), measured in-process. Target (#18 point 5): under 0.5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sovterm.config import load_settings  # noqa: E402
from sovterm.logs import LogRing, LogSetup  # noqa: E402
from sovterm.paywall import challenge as wire  # noqa: E402
from sovterm.paywall.gate import Gate  # noqa: E402
from sovterm.paywall.keys import PaywallKeys  # noqa: E402
from sovterm.paywall.macaroon import Grant, mint  # noqa: E402
from sovterm.services import Services  # noqa: E402
from sovterm.store.db import Database  # noqa: E402
from sovterm.store.secrets import SecretBox, SecretStore  # noqa: E402
from sovterm.systemd import Notifier  # noqa: E402
from sovterm.web.app import create_listener_app  # noqa: E402
from sovterm.web.paywall import add_routes, paid_headers  # noqa: E402

PREIMAGE = hashlib.sha256(b"bench-preimage").digest()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve_upstream() -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"weather": "sunny", "path": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()


async def build_gate(tmp: Path, upstream_port: int) -> tuple[Services, str]:
    config = tmp / "sovterm.toml"
    config.write_text(f'[[paywall]]\nname = "weather"\npath = "/api/"\nprice_sats = 100\n'
                      f'upstream = "http://127.0.0.1:{upstream_port}"\n')
    settings = load_settings(config, {"SOVTERM_DATA_DIR": str(tmp), "HOME": str(tmp)})
    services = Services(settings, {}, Notifier({}), LogSetup(ring=LogRing(), handlers=[]))
    db = services.db = await Database.open(tmp / "t.db")
    services.secrets = SecretStore(db, SecretBox(os.urandom(32)))
    keys = PaywallKeys(db, services.secrets)
    await keys.load()
    gate = services.paywall = Gate(db, keys, lambda: settings, lambda store: None)  # type: ignore[arg-type,return-value]
    await gate.load()
    kid, key = await keys.active()
    grant = Grant(hashlib.sha256(PREIMAGE).digest(), "paywall:weather", 100_000, int(time.time()) + 3600, "S", "I",
                  wire.NETWORKS["bc"])
    authorization = f"L402 {base64.b64encode(mint(grant, kid, key)).decode()}:{PREIMAGE.hex()}"
    return services, authorization


async def serve_gate(upstream_port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sovterm-bench-") as tmp:
        services, authorization = await build_gate(Path(tmp), upstream_port)
        async with aiohttp.ClientSession() as http:
            services.http = http
            app = create_listener_app(services)
            add_routes(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            print(json.dumps({"port": runner.addresses[0][1], "authorization": authorization}), flush=True)
            await asyncio.Event().wait()


async def hammer(url: str, headers: dict[str, str], count: int, concurrency: int) -> float:
    remaining = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


async def gate_cpu_per_check(n: int) -> float:
    """The gate's own work for one verified request, in-process: parse, verify, receipt."""
    with tempfile.TemporaryDirectory(prefix="sovterm-bench-") as tmp:
        services, authorization = await build_gate(Path(tmp), 9)
        gate = services.paywall
        assert gate is not None
        started = time.process_time()
        for _ in range(n):
            credential = wire.credential(authorization, None)
            assert credential is not None
            paid_headers(gate.check(credential, "paywall:weather"))
        elapsed = time.process_time() - started
        assert services.db is not None
        await services.db.close()
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-gate", type=int, metavar="UPSTREAM_PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(serve_upstream())
        return
    if args.serve_gate:
        asyncio.run(serve_gate(args.serve_gate))
        return
    upstream, up = spawn("--serve-upstream")
    gate, gw = spawn("--serve-gate", str(up["port"]))
    try:
        direct_url, gated_url = f"http://127.0.0.1:{up['port']}/v1/x", f"http://127.0.0.1:{gw['port']}/api/x"
        auth = {"Authorization": str(gw["authorization"])}
        asyncio.run(hammer(gated_url, auth, 500, args.concurrency))  # warm both
        direct = asyncio.run(hammer(direct_url, {}, args.requests, args.concurrency))
        cpu_before = cpu_s(gate.pid)
        gated = asyncio.run(hammer(gated_url, auth, args.requests, args.concurrency))
        listener_cpu = (cpu_s(gate.pid) - cpu_before) / args.requests
    finally:
        for proc in (gate, upstream):
            proc.terminate()
            proc.wait()
    per_check = asyncio.run(gate_cpu_per_check(20_000))
    print(f"upstream alone:     {args.requests / direct:8,.0f} requests/s")
    print(f"through the gate:   {args.requests / gated:8,.0f} paid requests/s (L402 credential checked, proxied)")
    print(f"throughput ratio gated/direct: {direct / gated:.2f} (a paid request is also a second HTTP request, "
          "the proxy's to the upstream)")
    print(f"listener CPU per proxied paid request (server + proxy client, /proc): {listener_cpu * 1000:.3f} ms")
    print(f"gate CPU per verified request (parse, macaroon, preimage, receipt): {per_check * 1000:.4f} ms "
          f"(target < 0.5 ms)")


if __name__ == "__main__":
    main()
