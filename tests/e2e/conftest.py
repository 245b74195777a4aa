"""The whole system: both simulators, a real daemon, and the setup done through the CLI.

`deposit_system` and `invoicing_system` are shared by the tests of one module (each test works on its
own invoices), so the setup runs once per mode and worker rather than once per rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.system import System, start_system


@pytest.fixture
def system_factory(tmp_path: Path) -> Iterator[Callable[..., System]]:
    started: list[System] = []

    def make(**kw: Any) -> System:
        system = start_system(tmp_path / f"s{len(started)}", **kw)
        started.append(system)
        return system

    yield make
    for system in started:
        system.close()


@pytest.fixture(scope="module")
def deposit_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = start_system(tmp_path_factory.mktemp("deposit"), mode="deposit")
    yield system
    system.close()


@pytest.fixture(scope="module")
def invoicing_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = start_system(tmp_path_factory.mktemp("invoicing"), mode="invoicing")
    yield system
    system.close()


def settle(system: System, amount: str, *, method: str = "BTC-LN", currency: str = "USD",
           metadata: dict[str, Any] | None = None, pay_btc: Decimal | None = None, store_id: str | None = None) -> Any:
    """A BTCPay invoice (of the system's store unless `store_id`), paid (and, on-chain, confirmed) until Settled."""
    sim, state = system.btcpay, system.btcpay.state
    inv = sim.call(state.create_invoice, store_id or system.store_id, Decimal(amount), currency, metadata=metadata)
    sim.call(state.pay, inv.id, method=method, amount_btc=pay_btc)
    if method == "BTC-CHAIN":
        sim.call(state.confirm, inv.id)
    assert inv.status == "Settled", inv.status
    return inv


def postings(system: System, invoice_id: str) -> list[tuple[Any, ...]]:
    return system.sql(
        "SELECT kind, seq, entity, amount, status, qbo_id, review, void_reason FROM sync_postings "
        "WHERE invoice_id = ? ORDER BY kind, seq", (invoice_id,))


def docs_about(system: System, entity: str, invoice_id: str) -> list[dict[str, Any]]:
    return [d for d in system.qbo_docs(entity) if invoice_id in str(d.get("PrivateNote", ""))]
