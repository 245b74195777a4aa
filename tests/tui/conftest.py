"""A real daemon wired to the BTCPay and QuickBooks simulators on real ports, for the TUI's end-to-end tests."""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from sovterm.btcpay.permissions import STORE
from sovterm.sim.btcpay_state import BTCPaySimState
from sovterm.sim.qbo import QBOSimState, endpoints, seed_company
from tests.support.daemon import DaemonProcess
from tests.support.sims import BTCPaySimServer, run_qbo_sim, start_btcpay_sim

QBO_CLIENT_ID = "tui-client"
QBO_CLIENT_SECRET = "tui-client-secret-5c4b3a"
REALM = "9341450000000077"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class FullEnv:
    daemon: DaemonProcess
    btcpay: BTCPaySimServer
    qbo: QBOSimState
    store_id: str
    api_key: str

    def consent(self, authorization_url: str) -> str:
        """Intuit's (simulated) consent page: where it sends the browser back to, not followed."""
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(authorization_url, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 302, exc.read()
            return str(exc.headers["Location"])
        raise AssertionError("the consent page did not redirect")

    def browser_get(self, url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def settled_invoices(self, amounts: list[str]) -> list[str]:
        """Invoices paid over Lightning (settled at once) in the followed store; their ids."""
        ids = []
        for amount in amounts:
            inv = self.btcpay.call(self.btcpay.state.create_invoice, self.store_id, Decimal(amount), "USD")
            self.btcpay.call(self.btcpay.state.pay, inv.id, method="BTC-LN")
            ids.append(inv.id)
        return ids

    def payout(self, amount: str) -> object:
        return self.btcpay.call(self.btcpay.state.create_payout, self.store_id, Decimal(amount), "BTC")

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.daemon.root / 'data' / 'sovterm.db'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()


@pytest.fixture
def full_env(daemon_factory, tmp_path: Path) -> Iterator[FullEnv]:
    btcpay = start_btcpay_sim(BTCPaySimState(seed=31))
    btcpay.call(setattr, btcpay.state, "delivery_time_scale", 0.001)
    store = btcpay.call(btcpay.state.create_store, "Corner Coffee")
    key = btcpay.call(btcpay.state.create_api_key, [f"{STORE}canmodifystoresettings:{store.id}"], label="sovterm tui")
    qbo = QBOSimState(seed=31)
    seed_company(qbo, REALM)
    qbo_url, stop_qbo = run_qbo_sim(qbo)
    secret_file = tmp_path / "qbo-client-secret"
    secret_file.write_text(QBO_CLIENT_SECRET + "\n")
    daemon = daemon_factory(extra={
        "qbo": {"client_id": QBO_CLIENT_ID, "client_secret_file": str(secret_file), "environment": "sandbox",
                "request_timeout_s": 5, **endpoints(qbo_url)},
        "btcpay": {"poll_interval_s": 10},
        "sync": {"interval_s": 1},
    }, start=False)
    qbo.register_client(QBO_CLIENT_ID, QBO_CLIENT_SECRET, [f"{daemon.url}/oauth/qbo/callback"])
    daemon.start()
    try:
        yield FullEnv(daemon, btcpay, qbo, store.id, str(key))
    finally:
        daemon.kill()
        btcpay.stop()
        stop_qbo()
