"""The whole system for end-to-end tests, benches and the demo: the BTCPay and QuickBooks simulators
on real ports, a real daemon subprocess, and the operator's setup done through the real CLI
(`setup btcpay`, `setup qbo` + the browser's trip through Intuit's consent page, `setup accounts --auto`,
`setup mode ...`, then `qbo auto-sync on`).

    system = start_system(tmp_path, mode="deposit")
    inv = system.btcpay.call(system.btcpay.state.create_invoice, system.store_id, Decimal("25"), "USD")
    system.btcpay.call(system.btcpay.state.pay, inv.id, method="BTC-LN")
    system.wait_for(lambda: system.qbo_docs("SalesReceipt"))
    system.close()

`limits_time_scale` runs the daemon through this module's launcher, which scales the daemon's
QuickBooks request pacing (Intuit's per-minute windows) and client backoff by the same factor as the
simulator's `time_scale`, so a bench can run "minutes" of Intuit's limits in seconds. The production
daemon has no such knob: the launcher wraps two constructors in the subprocess only.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sovterm.sim.runner import ThreadedApp
from tests.support.daemon import DaemonProcess, clean_env, wait_for, write_config
from tests.support.sims import BTCPaySimServer, start_btcpay_sim

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "system-client"
CLIENT_SECRET = "system-client-secret-5c4b3a"
REALM = "9341450000000777"
STORE_PERMISSIONS = (
    "canviewstoresettings", "canmodifystoresettings", "canviewinvoices", "canmodifyinvoices", "cancreateinvoice",
    "webhooks.canmodifywebhooks", "canviewpayouts", "canmanagepayouts", "canviewpullpayments",
    "cancreatepullpayments",
)


class QBOSimServer(ThreadedApp):
    """The QuickBooks simulator on a real port, in a thread with its own loop. Read or change its state
    through `call(fn, ...)` (runs on the simulator's loop), never directly while the daemon talks to it."""

    def __init__(self, state: Any) -> None:
        from sovterm.sim.qbo import create_app

        self.state = state
        super().__init__(create_app(state), name="qbo-sim")


class ScaledDaemon(DaemonProcess):
    """A daemon started through this module's launcher (see the module docstring)."""

    limits_time_scale: float = 1.0

    def start(self, wait: bool = True, timeout: float = 15.0) -> DaemonProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.system", str(self.limits_time_scale), "--config", str(self.config),
             "daemon"],
            env=self.env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        if wait:
            self.wait_ready(timeout)
        return self


@dataclass
class System:
    daemon: DaemonProcess
    btcpay: BTCPaySimServer
    qbo: QBOSimServer
    store_id: str
    api_key: str
    realm: str = REALM
    outputs: list[str] = field(default_factory=list)

    # -- the operator ----------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        result = self.daemon.cli(*args, timeout=timeout)
        self.outputs += [result.stdout, result.stderr]
        return result

    def cli_ok(self, *args: str, timeout: float = 60.0) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, (f"sovterm {' '.join(args)} → {result.returncode}: {result.stderr}"
                                        f"{result.stdout[-3000:]}")
        return result.stdout

    def cli_json(self, *args: str, timeout: float = 60.0) -> Any:
        return json.loads(self.cli_ok(*args, "--json", timeout=timeout))

    # -- looking at things --------------------------------------------------------------------------------

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the daemon's database (read-only)."""
        conn = sqlite3.connect(f"file:{self.daemon.root / 'data' / 'sovterm.db'}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def qbo_docs(self, entity: str) -> list[dict[str, Any]]:
        """Copies of the company's documents of `entity`, read on the simulator's loop."""
        return self.qbo.call(lambda: [json.loads(json.dumps(d, default=str))
                                      for d in self.qbo.state.documents(self.realm, entity)])

    def qbo_doc(self, entity: str, doc_id: str) -> dict[str, Any]:
        return next(d for d in self.qbo_docs(entity) if d["Id"] == doc_id)

    @staticmethod
    def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        return wait_for(check, timeout, what)

    def wait_idle(self, timeout: float = 30.0) -> dict[str, Any]:
        """Until BTCPay delivered everything and the sync queue is empty (nothing queued or running)."""
        self.btcpay.wait_deliveries_idle()

        def idle() -> dict[str, Any] | None:
            rows = self.sql("SELECT state, COUNT(*) FROM sync_jobs GROUP BY state")
            counts = {r[0]: r[1] for r in rows}
            return counts if not counts.get("queued") and not counts.get("running") else None

        time.sleep(0.2)
        return self.wait_for(idle, timeout, "the sync queue to drain")

    def close(self) -> None:
        self.daemon.kill()
        self.btcpay.stop()
        self.qbo.stop()


def _browser_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def start_system(
    root: Path,
    *,
    mode: str | None = "deposit",
    deposit_as: str | None = None,
    store_currency: str = "USD",
    home_currency: str = "USD",
    multicurrency: bool = False,
    qbo_invoices: int = 3,
    country: str = "US",
    sync: dict[str, Any] | None = None,
    qbo_settings: dict[str, Any] | None = None,
    btcpay_settings: dict[str, Any] | None = None,
    qbo_time_scale: float = 1.0,
    limits_time_scale: float | None = None,
    seed: int = 7,
    before_setup: Callable[[System], None] | None = None,
) -> System:
    """Both simulators, a daemon, and the whole setup through the CLI; `close()` when done.

    `before_setup(system)` runs after the daemon started and before `setup btcpay` (e.g. to fill the
    BTCPay store with history)."""
    from sovterm.sim.btcpay_state import BTCPaySimState
    from sovterm.sim.qbo import QBOSimState, endpoints, seed_company

    root.mkdir(parents=True, exist_ok=True)
    btcpay = start_btcpay_sim(BTCPaySimState(seed=seed))
    btcpay.call(setattr, btcpay.state, "delivery_time_scale", 0.001)  # retries after ms, not s
    store = btcpay.call(btcpay.state.create_store, "Satoshi's Coffee", default_currency=store_currency)
    key = btcpay.call(btcpay.state.create_api_key, [f"btcpay.store.{p}:{store.id}" for p in STORE_PERMISSIONS])
    qstate = QBOSimState(seed=seed, time_scale=qbo_time_scale)
    seed_company(qstate, REALM, home_currency=home_currency, multicurrency=multicurrency, invoices=qbo_invoices,
                 country=country)
    qbo = QBOSimServer(qstate)
    secret_file = root / "qbo-client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    extra: dict[str, dict[str, Any]] = {
        "qbo": {"client_id": CLIENT_ID, "client_secret_file": str(secret_file), "environment": "sandbox",
                "request_timeout_s": 10, **endpoints(qbo.url), **(qbo_settings or {})},
        "sync": {"interval_s": 1, "backoff_base_s": 0.2, "backoff_max_s": 2.0, "lease_s": 10, **(sync or {})},
        "btcpay": {"poll_interval_s": 3600, **(btcpay_settings or {})},
        "reaper": {"interval_s": 1},
    }
    droot = root / "daemon"
    droot.mkdir(exist_ok=True)
    config = write_config(droot, extra)
    if limits_time_scale is not None:
        daemon: DaemonProcess = ScaledDaemon(droot, config, env=clean_env(PYTHONPATH=str(REPO)))
        daemon.limits_time_scale = limits_time_scale  # type: ignore[attr-defined]
    else:
        daemon = DaemonProcess(droot, config)
    qbo.call(qstate.register_client, CLIENT_ID, CLIENT_SECRET, [f"{daemon.url}/oauth/qbo/callback"])
    system = System(daemon, btcpay, qbo, store.id, key)
    try:
        daemon.start()
        if before_setup is not None:
            before_setup(system)
        setup(system, mode=mode, deposit_as=deposit_as)
    except BaseException:
        system.close()
        raise
    return system


def setup(system: System, *, mode: str | None = "deposit", deposit_as: str | None = None) -> None:
    """The operator's setup, step by step, through the CLI."""
    key_file = system.daemon.root / "btcpay.key"
    key_file.write_text(system.api_key + "\n")
    key_file.chmod(0o600)
    system.cli_ok("setup", "btcpay", "--url", system.btcpay.url, "--api-key-file", str(key_file),
                  "--store", system.store_id)
    out = system.cli_ok("setup", "qbo", "--no-wait")
    url = next(line.strip() for line in out.splitlines() if "/connect/oauth2?" in line)
    status, page = _browser_get(url)  # Intuit's consent page redirects the browser to the daemon
    assert status == 200 and "QuickBooks connected" in page, page
    # accounts and mode before auto-sync: nothing is posted under a mode the operator has not chosen yet
    system.cli_ok("setup", "accounts", "--store", system.store_id, "--auto")
    if mode is not None:
        system.cli_ok("setup", "mode", mode, *(("--deposit-as", deposit_as) if deposit_as else ()))
    system.cli_ok("qbo", "auto-sync", "on")


def _launch(argv: list[str]) -> int:
    """`python -m tests.support.system SCALE <sovterm args>`: the daemon with Intuit's windows scaled."""
    import functools

    import sovterm.qbo.service as qbo_service
    from sovterm.cli import main
    from sovterm.qbo.client import QBOClient
    from sovterm.qbo.limiter import RealmLimiter

    scale = float(argv[0])
    qbo_service.RealmLimiter = functools.partial(RealmLimiter, window_s=60.0 * scale)  # type: ignore[misc]
    qbo_service.QBOClient = functools.partial(  # type: ignore[misc]
        QBOClient, backoff_base_s=max(0.01, scale), backoff_max_s=max(0.05, 60.0 * scale))
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))
