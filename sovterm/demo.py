"""`sovterm demo`: both simulators, a daemon wired to them in a temporary directory, and the TUI.

The BTCPay simulator is seeded with a realistic store (a few hundred invoices over 60 days in every
state, refunds, payouts awaiting approval, a crowdfund app) and keeps taking payments while the demo
runs; the QuickBooks simulator holds a sandbox company. The daemon is set up exactly as an operator
would, through the control API: BTCPay connection and store, QuickBooks OAuth, accounts, deposit
mode, backfill. Quitting the TUI stops everything the demo started and removes the directory.

This is the only production module that imports `sovterm.sim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from sovterm.control.client import ControlClient
from sovterm.formatting import age
from sovterm.sim.runner import ThreadedApp

REALM = "9341450000000001"
HISTORY_DAYS = 60
HISTORY_INVOICES = 300
TRAFFIC_EVERY_S = 6.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class DemoWorld:
    """Everything the demo runs; `start()` brings it up, `stop()` tears it all down."""

    root: Path
    say: Any = print
    btcpay: ThreadedApp | None = None
    qbo: ThreadedApp | None = None
    angor: ThreadedApp | None = None  # the Angor indexer simulator
    relay: Any = None  # a local nostr-relay, where the package is installed
    angor_follows: list[str] = field(default_factory=list)
    daemon: subprocess.Popen[bytes] | None = None
    store_id: str = ""
    config: Path = field(init=False)
    socket_path: Path = field(init=False)
    _traffic: Any = None

    def __post_init__(self) -> None:
        self.config = self.root / "sovterm.toml"
        self.socket_path = self.root / "run" / "control.sock"

    def start(self) -> None:
        from sovterm.sim.btcpay import BTCPaySimState, seed_store
        from sovterm.sim.btcpay import create_app as btcpay_app
        from sovterm.sim.qbo import QBOSimState, endpoints, seed_company
        from sovterm.sim.qbo import create_app as qbo_app

        self.say("starting the BTCPay simulator (seeding 60 days of a coffee shop)...")
        btcpay_state = BTCPaySimState(seed=7)
        self.btcpay = ThreadedApp(btcpay_app(btcpay_state), name="btcpay-sim")
        btcpay_state.public_url = self.btcpay.url
        seeded = self.btcpay.call(seed_store, btcpay_state, HISTORY_INVOICES, HISTORY_DAYS, 7)
        self.store_id = seeded.store_id

        port = _free_port()
        public_url = f"http://127.0.0.1:{port}"
        client_id, client_secret = "demo-client", secrets.token_urlsafe(24)
        self.say("starting the QuickBooks simulator (a sandbox company)...")
        qbo_state = QBOSimState()
        qbo_state.register_client(client_id, client_secret, [f"{public_url}/oauth/qbo/callback"])
        seed_company(qbo_state, REALM, invoices=6)
        self.qbo = ThreadedApp(qbo_app(qbo_state), name="qbo-sim")

        angor_section = self._start_angor()

        secret_file = self.root / "qbo-client-secret"
        secret_file.write_text(client_secret)
        secret_file.chmod(0o600)
        sections: dict[str, dict[str, Any]] = {
            "listener": {"host": "127.0.0.1", "port": port, "public_url": public_url},
            "control": {"socket": str(self.socket_path)},
            "btcpay": {"url": self.btcpay.url, "poll_interval_s": 30},
            "qbo": {"client_id": client_id, "client_secret_file": str(secret_file),
                    "environment": "sandbox", **endpoints(self.qbo.url)},
            "sync": {"interval_s": 2},
            "reaper": {"interval_s": 15},
        }
        lines = [f"data_dir = {_toml(self.root / 'data')}"]
        for name, values in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        lines += angor_section
        self.config.write_text("\n".join(lines) + "\n")

        self.say("starting the sovterm daemon...")
        log = open(self.root / "daemon.out", "wb")  # noqa: SIM115 - lives as long as the daemon
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "sovterm", "--config", str(self.config), "daemon"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_for_daemon(port)
        asyncio.run(self._set_up(seeded.api_key))
        self._traffic = self.btcpay.submit(_traffic(btcpay_state, self.store_id, seeded.app_id))

    def _start_angor(self) -> list[str]:
        """The Angor indexer simulator with three projects and, where the nostr-relay package is installed,
        a local relay holding their signed events; the config lines pointing the daemon at them."""
        from sovterm.sim.angor import AngorIndexerState, seed_projects
        from sovterm.sim.angor import create_app as angor_app
        from sovterm.sim.angor_relay import LocalRelay, publish, relay_command

        self.say("starting the Angor indexer simulator (three crowdfunding projects)...")
        state = AngorIndexerState()
        projects = seed_projects(state, int(time.time()))
        self.angor = ThreadedApp(angor_app(state), name="angor-sim")
        self.angor_follows = [p.project_id for p in projects]
        lines = ["[angor]", f"indexer_url = {_toml(self.angor.url)}", "refresh_s = 60"]
        if relay_command() is None:  # a relay nobody listens on, rather than the internet's: shown as down
            self.say("  (nostr-relay is not installed: the projects show their indexer figures only)")
            return [*lines, f"relays = [{_toml(f'ws://127.0.0.1:{_free_port()}')}]"]
        self.say("starting a local Nostr relay with the projects' events...")
        self.relay = LocalRelay(self.root / "relay", _free_port()).start()
        asyncio.run(publish(self.relay.url, [e for p in projects for e in p.events()]))
        return [*lines, f"relays = [{_toml(self.relay.url)}]"]

    def _wait_for_daemon(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.daemon is not None
            if self.daemon.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited ({self.daemon.returncode}); see {self.root / 'daemon.out'}"
                )
            with contextlib.suppress(OSError):
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.socket_path))
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            time.sleep(0.1)
        raise TimeoutError("the daemon did not start in time")

    async def _set_up(self, api_key: str) -> None:
        """The same steps as the setup wizard, through the same control methods."""
        async with await ControlClient.connect(self.socket_path, client="demo") as c:
            assert self.btcpay is not None
            self.say("connecting BTCPay (API key with the demo's permissions)...")
            await c.call("setup.btcpay.connect", url=self.btcpay.url, api_key=api_key,
                         features=["sync", "webhooks", "payouts", "paylinks", "refunds"])
            await c.call("setup.btcpay.select_stores", store_ids=[self.store_id])
            self.say("connecting QuickBooks (OAuth against the simulator)...")
            started = await c.call("setup.qbo.start")
            async with aiohttp.ClientSession() as http, http.get(started["authorization_url"]) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"the OAuth callback answered {resp.status}")
            await c.call("setup.qbo.wait", timeout_s=15, since=started["started_at"])
            await c.call("qbo.auto_sync", enabled=True)
            await c.call("setup.accounts.apply", store_id=self.store_id, auto=True)
            await c.call("setup.mode", store_id=self.store_id, mode="deposit")
            since = (date.today() - timedelta(days=HISTORY_DAYS + 1)).isoformat()
            await c.call("btcpay.import_history", since=since)
            await c.call("sync.backfill", since=since)
            self.say("creating pay links for the open QuickBooks invoices and a workshop ticket...")
            await c.call("links.bulk_create", store_id=self.store_id)
            await c.call("links.create", store_id=self.store_id, amount="45.00", currency="USD",
                         memo="Latte art workshop ticket")
            for project_id in self.angor_follows:
                await c.call("angor.follow", ref=project_id)
            self.say("ready: backfilling 60 days of payments into QuickBooks")

    def stop(self) -> None:
        if self._traffic is not None:
            self._traffic.cancel()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        for sim in (self.btcpay, self.qbo, self.angor):
            if sim is not None:
                sim.stop()
        if self.relay is not None:
            self.relay.stop()


async def _traffic(state: Any, store_id: str, app_id: str) -> None:
    """Customers keep paying while the demo runs: on-chain and Lightning, now and then a contribution to the
    crowdfund (so its screen moves) and a payout."""
    rng = random.Random(11)
    items = ["Flat white", "Espresso beans 1kg", "Hoodie", "Workshop ticket", "Gift card"]
    n = 0
    while True:
        await asyncio.sleep(TRAFFIC_EVERY_S)
        n += 1
        amount = Decimal(rng.randint(350, 9000)) / 100
        if n % 4 == 0:  # a Point-of-Sale cart: its lines become items on the SalesReceipt
            menu = [("flat-white", "Flat white", Decimal("4.50")), ("croissant", "Croissant", Decimal("3.25")),
                    ("beans-1kg", "Espresso beans 1kg", Decimal("24.00"))]
            cart = [(code, title, price, rng.randint(1, 3)) for code, title, price in rng.sample(menu, 2)]
            inv = state.create_pos_invoice(store_id, cart)
        else:
            inv = state.create_invoice(store_id, amount, "USD",
                                       metadata={"orderId": f"demo-{n}", "itemDesc": rng.choice(items)})
        method = rng.choice(["BTC-CHAIN", "BTC-LN", "BTC-LN"])
        state.pay(inv.id, method=method)
        if method == "BTC-CHAIN":
            await asyncio.sleep(TRAFFIC_EVERY_S / 2)
            state.confirm(inv.id)
        if n % 3 == 0:
            gift = state.contribute(app_id, Decimal(rng.choice(["25.00", "40.00", "100.00"])),
                                    perk=rng.choice(["mug", "bag", None]))
            state.pay(gift.id, method="BTC-LN")
        if n % 10 == 0:
            state.create_payout(store_id, Decimal(rng.randint(10, 80)), "USD")


@contextlib.contextmanager
def demo_world(root: Path, say: Any = print) -> Iterator[DemoWorld]:
    world = DemoWorld(root, say=say)
    try:
        world.start()
        yield world
    finally:
        world.stop()


PROGRESS_EVERY_S = 5.0


def progress_line(status: Mapping[str, Any]) -> str:
    """One line of sync progress for `sovterm demo --no-tui`, from the control API's `sync.status`."""
    backfill = status.get("backfill") or {}
    parts = []
    counts = f"{backfill.get('done', 0)}/{backfill.get('total', 0)}"
    if backfill.get("state") == "running":
        parts.append(f"backfill {counts}")
    elif backfill.get("state") == "done":
        parts.append(f"backfill done ({counts})")
    parts += [f"{status['queued']} queued", f"{status['dead']} dead", f"{status.get('review', 0)} to review"]
    posted_age = status.get("last_posting_age_s")
    parts.append("nothing posted yet" if posted_age is None else f"last posting {age(posted_age)}")
    return "sync: " + ", ".join(parts)


async def _print_progress(socket_path: Path, deadline: float | None) -> None:
    """What the TUI's dashboard would show, a line every few seconds, until the deadline (or Ctrl-C)."""
    async with await ControlClient.connect(socket_path, client="demo") as control:
        while deadline is None or time.monotonic() < deadline:
            print(progress_line(await control.call("sync.status")), flush=True)
            left = PROGRESS_EVERY_S if deadline is None else deadline - time.monotonic()
            await asyncio.sleep(max(0.0, min(PROGRESS_EVERY_S, left)))


STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def _stop_demo(signum: int, frame: Any) -> None:
    """The terminal went away (SIGHUP: tmux window closed, SSH session lost), or someone asked us to stop:
    unwind through `demo_world` and `run_demo`'s cleanup, which stop the daemon and simulators and
    delete the directory. Further signals are ignored so that nothing interrupts that cleanup."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def run_demo(environ: Mapping[str, str], *, headless: bool = False, seconds: float | None = None) -> int:
    """Everything the demo starts lives in one temporary directory and is torn down on the way out,
    whatever the way: the TUI quit, --seconds over, Ctrl-C, SIGTERM, or the terminal closing (SIGHUP,
    which by default would kill only this process and orphan the daemon in its own session)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_demo)
    root = Path(tempfile.mkdtemp(prefix="sovterm-demo-"))
    try:
        with demo_world(root) as world:
            if headless:
                print(f"demo running; try: sovterm --config {world.config} status   (Ctrl-C stops it)", flush=True)
                deadline = None if seconds is None else time.monotonic() + seconds
                with contextlib.suppress(KeyboardInterrupt):
                    asyncio.run(_print_progress(world.socket_path, deadline))
                return 0
            from sovterm.tui.app import run_tui

            return run_tui(world.socket_path)
    except (RuntimeError, TimeoutError) as exc:
        print(f"sovterm demo: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
