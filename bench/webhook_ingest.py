"""Webhook intake benchmark: signed BTCPay deliveries into a real daemon vs a bare aiohttp handler.

Run: `.venv/bin/python bench/webhook_ingest.py [--count 10000] [--concurrency 8] [--rounds 3]`.
Prints one result per line: the daemon's rate of verified, durably recorded deliveries and its p99
latency; the same load against a handler that only answers 200; and the ratio. Targets: ratio >= 0.5,
p99 < 20 ms.

Layout: this process runs the BTCPay simulator (a thread) and starts a daemon subprocess connected to
a simulated store; the load comes from a second process (`--load`), and the bare handler is a third
(`--bare`), so neither shares an event loop or a GIL with the daemon. Every delivery is a distinct
event with a valid signature; "recorded" is checked afterwards in the daemon's database. The daemon
finishes its follow-up work (re-reading the invoices the events announce) and is stopped before the
bare handler is measured, so nothing of it can slow the other side. Each server's CPU time per request is printed
too: on a two-core machine the load generator and the server share the cores, and CPU per request is
what decides the rate.

The two sides are measured in alternating rounds, each with fresh deliveries. On a shared machine a
neighbour's burst can halve one run's rate (seen here: a bare run at 4,000/s between runs at 7,100/s),
so one pair of runs can land anywhere from 0.44 to 0.8. The summary takes each side's best round, the
usual estimate of what software can do when noise only ever slows it down, and also prints the median
of the per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
EVENT_TYPES = ("InvoiceReceivedPayment", "InvoicePaymentSettled", "InvoiceProcessing", "InvoiceSettled")
TIME_LIMIT_S = 120.0


# -- the load generator (second process) -----------------------------------------------------------


async def load(target: str, bodies_file: Path, concurrency: int) -> dict[str, Any]:
    import aiohttp

    items = json.loads(bodies_file.read_text())
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + TIME_LIMIT_S
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            while not queue.empty() and time.perf_counter() < deadline:
                item = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(
                    target + item["path"], data=item["body"].encode(),
                    headers={"Content-Type": "application/json", "BTCPay-Sig": item["sig"]},
                ) as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - started)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

        # warm the connections outside the measurement
        warm = [queue.get_nowait() for _ in range(min(concurrency * 4, queue.qsize()))]
        await asyncio.gather(*(session.post(target + w["path"], data=w["body"].encode(),
                                            headers={"BTCPay-Sig": w["sig"]}) for w in warm))
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "sent": len(latencies), "elapsed_s": elapsed, "statuses": statuses, "warmup": len(warm),
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


# -- the bare handler (third process) ---------------------------------------------------------------


def bare(port_file: Path) -> None:
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="accepted\n")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/webhooks/btcpay/{store_id}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_file.write_text(str(site._server.sockets[0].getsockname()[1]))  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


# -- orchestration ------------------------------------------------------------------------------------


def make_bodies(sim: Any, store_id: str, count: int, invoices: int) -> list[dict[str, str]]:
    from sovterm.btcpay.webhooks import sign
    from sovterm.store.secrets import Secret

    state = sim.state
    sim.call(setattr, state, "muted", True)  # the bench posts the deliveries itself
    ids = [sim.call(state.create_invoice, store_id, Decimal("10") + i, "USD").id for i in range(invoices)]
    hook = next(iter(state.webhooks.values()))
    secret = Secret(hook.secret)
    out = []
    rng = random.Random(7)
    for n in range(count):
        # BTCPay's ids are random base58, so each lands on a random page of the dedupe index; a
        # counter would append and flatter the daemon. The prefix lets the check count them.
        delivery_id = "bench" + "".join(rng.choices(BASE58, k=17))
        event = {
            "deliveryId": delivery_id, "webhookId": hook.id, "originalDeliveryId": delivery_id,
            "isRedelivery": False, "type": EVENT_TYPES[n % len(EVENT_TYPES)], "timestamp": int(time.time()),
            "storeId": store_id, "invoiceId": ids[n % len(ids)], "metadata": {"orderId": f"order-{n}"},
        }
        body = json.dumps(event, indent=2)
        out.append({"path": f"/webhooks/btcpay/{store_id}", "body": body, "sig": sign(secret, body.encode())})
    return out


def run_load(url: str, bodies: Path, concurrency: int, server_pid: int) -> dict[str, Any]:
    """The load from a second process; adds the server's CPU seconds spent meanwhile."""
    import psutil

    server = psutil.Process(server_pid)
    before = server.cpu_times()
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, "--bodies", str(bodies), "--concurrency", str(concurrency)],
        capture_output=True, text=True, timeout=TIME_LIMIT_S + 30, check=True,
    )
    after = server.cpu_times()
    result = json.loads(out.stdout)
    result["server_cpu_s"] = (after.user - before.user) + (after.system - before.system)
    return result


def cpu_per_request_us(result: dict[str, Any]) -> float:
    """Server CPU per request in µs (warm-up included on both sides of the division)."""
    return result["server_cpu_s"] / (result["sent"] + result["warmup"]) * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_idle(pid: int, timeout_s: float = 15.0) -> None:
    """Until the process spends under 2 % of a core (its follow-up work after a round is done)."""
    import psutil

    proc = psutil.Process(pid)
    deadline = time.monotonic() + timeout_s
    before = sum(proc.cpu_times()[:2])
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(proc.cpu_times()[:2])
        if now - before < 0.01:
            return
        before = now


def describe(side: str, result: dict[str, Any], unit: str) -> str:
    return (f"{side}: {result['rate']:.0f} {unit}/s, p99 {result['p99_ms']:.1f} ms (p50 {result['p50_ms']:.1f} ms), "
            f"{cpu_per_request_us(result):.0f} µs CPU per request")


def main(count: int, concurrency: int, invoices: int, rounds: int) -> int:
    from tests.btcpay_e2e.conftest import FULL
    from tests.support.daemon import DaemonProcess, write_config
    from tests.support.sims import start_btcpay_sim

    sim = start_btcpay_sim()
    tmp = Path(tempfile.mkdtemp(prefix="sovterm-bench-"))
    daemon = DaemonProcess(tmp / "d", write_config(_mkdir(tmp / "d"), {
        "logging": {"level": "WARNING"},
        "listener": {"rate_limit_webhook_per_min": 10**9},  # intake's rate, not the per-client limit's
    }))
    bare_proc = None
    try:
        store = sim.call(sim.state.create_store, "Bench")
        key = sim.call(sim.state.create_api_key, [f"{p}:{store.id}" for p in FULL])
        (tmp / "key").write_text(key)
        daemon.start()
        setup = daemon.cli("setup", "btcpay", "--url", sim.url, "--api-key-file", str(tmp / "key"))
        if setup.returncode != 0:
            print(setup.stdout, setup.stderr, file=sys.stderr)
            return 1
        all_bodies = make_bodies(sim, store.id, count * rounds, invoices)
        port_file = tmp / "bare.port"
        bare_proc = subprocess.Popen([sys.executable, __file__, "--bare", str(port_file)])
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline:
                raise TimeoutError("bare handler did not start")
            time.sleep(0.02)
        bare_url = f"http://127.0.0.1:{port_file.read_text()}"
        ours_runs: list[dict[str, Any]] = []
        theirs_runs: list[dict[str, Any]] = []
        for n in range(rounds):
            bodies = tmp / f"bodies-{n}.json"
            bodies.write_text(json.dumps(all_bodies[n * count:(n + 1) * count]))
            if daemon.proc is None or daemon.proc.poll() is not None:
                daemon.start()
            assert daemon.proc is not None
            wait_idle(daemon.proc.pid)  # the poll at start-up re-reads every invoice
            ours = run_load(daemon.url, bodies, concurrency, daemon.proc.pid)
            accepted = ours["statuses"].get("200", 0)
            if accepted != ours["sent"]:
                print(f"MISMATCH: round {n + 1}: {ours['sent']} sent, {accepted} answered 200", file=sys.stderr)
                return 1
            wait_idle(daemon.proc.pid)  # its re-reads of the invoices the round announced
            daemon.stop()  # nothing of it may run beside the bare handler
            theirs = run_load(bare_url, bodies, concurrency, bare_proc.pid)
            for run in (ours, theirs):
                run["rate"] = run["sent"] / run["elapsed_s"]
            ours_runs.append(ours)
            theirs_runs.append(theirs)
            print(f"round {n + 1}: " + describe("daemon", ours, "deliveries") + "; "
                  + describe("bare", theirs, "responses") + f"; ratio {ours['rate'] / theirs['rate']:.2f}")

        db = sqlite3.connect(f"file:{daemon.root / 'data' / 'sovterm.db'}?mode=ro", uri=True)
        recorded = db.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE delivery_id LIKE 'bench%'").fetchone()[0]
        db.close()
        answered = sum(r["statuses"].get("200", 0) + r["warmup"] for r in ours_runs)
        if recorded != answered:
            print(f"MISMATCH: {answered} deliveries answered 200 (warm-up included), {recorded} recorded",
                  file=sys.stderr)
            return 1

        ours = max(ours_runs, key=lambda r: r["rate"])
        theirs = max(theirs_runs, key=lambda r: r["rate"])
        ratios = sorted(o["rate"] / t["rate"] for o, t in zip(ours_runs, theirs_runs, strict=True))
        worst_p99 = max(r["p99_ms"] for r in ours_runs)
        print(f"daemon: {ours['rate']:.0f} verified durably recorded deliveries/s, best of {rounds} rounds "
              f"({ours['sent']} deliveries each, concurrency {concurrency}, {invoices} invoices; all {recorded} "
              f"answered with 200 are in the database)")
        print(f"daemon: p99 latency {ours['p99_ms']:.1f} ms (p50 {ours['p50_ms']:.1f} ms, worst round's p99 "
              f"{worst_p99:.1f} ms); {cpu_per_request_us(ours):.0f} µs of daemon CPU per delivery")
        print(f"bare aiohttp handler: {theirs['rate']:.0f} responses/s, best of {rounds} rounds")
        print(f"bare aiohttp handler: p99 latency {theirs['p99_ms']:.1f} ms (p50 {theirs['p50_ms']:.1f} ms); "
              f"{cpu_per_request_us(theirs):.0f} µs of server CPU per request")
        print(f"ratio daemon/bare: {ours['rate'] / theirs['rate']:.2f} best to best (target >= 0.5), "
              f"median of rounds {ratios[len(ratios) // 2]:.2f}; "
              f"p99 {'meets' if worst_p99 < 20 else 'MISSES'} the 20 ms target in every round")
        return 0
    finally:
        if bare_proc is not None:
            bare_proc.terminate()
            bare_proc.wait(10)
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()
        sim.stop()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="deliveries per run (default 10000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--invoices", type=int, default=50, help="distinct invoices the events are about")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default 3)")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bare", type=Path, metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(load(args.load, args.bodies, args.concurrency))))
    elif args.bare:
        bare(args.bare)
    else:
        sys.exit(main(args.count, args.concurrency, args.invoices, args.rounds))
