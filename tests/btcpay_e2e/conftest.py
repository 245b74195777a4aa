"""A real daemon subprocess wired to the BTCPay simulator on a real loopback port."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sovterm.btcpay.permissions import STORE
from sovterm.sim.btcpay_state import BTCPaySimState
from tests.support.daemon import DaemonProcess
from tests.support.sims import BTCPaySimServer, start_btcpay_sim

FULL = [STORE + "canmodifystoresettings"]
VIEW_ONLY = [STORE + "canviewstoresettings"]


@pytest.fixture
def btcpay_sim() -> Iterator[BTCPaySimServer]:
    sim = start_btcpay_sim(BTCPaySimState(seed=11))
    sim.call(setattr, sim.state, "delivery_time_scale", 0.001)  # retries after 10 ms, not 10 s
    yield sim
    sim.stop()


def make_store(sim: BTCPaySimServer, name: str = "Coffee", permissions: list[str] | None = None) -> tuple[str, str]:
    """A store and an API key scoped to it; returns (store_id, api_key)."""
    store = sim.call(sim.state.create_store, name)
    perms = [f"{p}:{store.id}" for p in (FULL if permissions is None else permissions)]
    key = sim.call(sim.state.create_api_key, perms, label="sovterm test")
    return store.id, key


def key_file(root: Path, key: str) -> Path:
    path = root / "btcpay.key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def connect(d: DaemonProcess, sim: BTCPaySimServer, key: str, *extra: str) -> Any:
    """`sovterm setup btcpay` through the real CLI; returns the completed process."""
    return d.cli("setup", "btcpay", "--url", sim.url, "--api-key-file", str(key_file(d.root, key)), *extra)


def query(d: DaemonProcess, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the daemon's database read-only (the test never writes it)."""
    conn = sqlite3.connect(f"file:{d.root / 'data' / 'sovterm.db'}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def status_json(d: DaemonProcess, *cmd: str) -> tuple[int, dict[str, Any]]:
    out = d.cli(*cmd, "--json")
    return out.returncode, json.loads(out.stdout)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
