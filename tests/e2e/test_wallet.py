"""Payout fees and the wallet balance, end to end: invoices paid on-chain and over Lightning, payouts whose
miner and routing fees become expenses exactly once, and `sovterm reconcile` comparing the ledger with
BTCPay's wallet until a withdrawal nobody booked makes it differ, and booking it makes it match again."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import docs_about, settle
from tests.support.system import System, start_system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    s = start_system(tmp_path_factory.mktemp("wallet"), mode="deposit")
    yield s
    s.close()


def _about(s: System, entity: str, text: str) -> list[dict]:
    return [d for d in s.qbo_docs(entity) if text in str(d.get("PrivateNote", ""))]


def _reconcile(s: System) -> tuple[int, dict]:
    import json

    result = s.cli("reconcile", "--from", "2000-01-01", "--to", "2100-01-01", "--json", timeout=120)
    return result.returncode, json.loads(result.stdout)


def test_payout_fees_are_booked_once_and_the_wallet_balance_reconciles(system: System, tmp_path: Path) -> None:
    s, state = system, system.btcpay.state
    paid = [settle(s, "65.00", method="BTC-CHAIN"),  # 0.001 BTC at 65,000 USD/BTC = 100,000 sats on-chain
            settle(s, "32.50", method="BTC-LN")]  # 50,000 sats over Lightning
    for inv in paid:  # booked first: a BTC payout is valued at the rate of the latest settled invoice (P3)
        s.wait_for(lambda inv=inv: docs_about(s, "SalesReceipt", inv.id), what="the sales receipt")
    chain = s.btcpay.call(state.create_payout, s.store_id, Decimal("0.0005"), "BTC", approved=True)
    tx = s.btcpay.call(state.pay_payouts, s.store_id, [chain.id], fee_sats=1_410)
    ln = s.btcpay.call(state.create_payout, s.store_id, Decimal("0.0001"), "BTC", payout_method_id="BTC-LN",
                       destination="lnbc100u1sim", approved=True)
    s.btcpay.call(state.pay_lightning_payout, s.store_id, ln.id, fee_msat=20_000)

    # P1-style Transfer of the payout's value, and its miner fee as a Purchase at the same rate
    fee = s.wait_for(lambda: _about(s, "Purchase", tx.txid), what="the miner fee's Purchase")
    transfer = _about(s, "Transfer", chain.id)
    assert len(transfer) == 1 and Decimal(str(transfer[0]["Amount"])) == Decimal("32.50")
    assert len(fee) == 1 and Decimal(str(fee[0]["TotalAmt"])) == Decimal("0.92")  # 1,410 sats × 65,000
    accounts = {a["Id"]: a["Name"] for a in s.qbo_docs("Account")}
    assert accounts[fee[0]["AccountRef"]["value"]] == "Bitcoin (BTCPay)"
    line = fee[0]["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]
    assert accounts[line] == "Bitcoin Network Fees"
    assert "1410 sats" in fee[0]["PrivateNote"] and chain.id in fee[0]["PrivateNote"]
    # the Lightning payout's routing fee (20 sats = 0.013 USD)
    routed = s.wait_for(lambda: [d for d in s.qbo_docs("Purchase") if "routing fee" in d.get("PrivateNote", "")],
                        what="the routing fee's Purchase")
    assert [Decimal(str(d["TotalAmt"])) for d in routed] == [Decimal("0.01")]
    # a redelivered completion adds nothing
    hook = next(iter(state.webhooks.values()))
    done = [d for d in list(state.deliveries.values()) if d.event.get("payoutId") == chain.id]
    s.btcpay.call(state.redeliver, hook.id, done[-1].id)
    s.wait_idle()
    assert len(_about(s, "Purchase", tx.txid)) == 1 and len(_about(s, "Transfer", chain.id)) == 1
    assert s.sql("SELECT sats FROM wallet_entries WHERE kind = 'fee' ORDER BY sats") == [(-1_410,), (-20,)]

    # the ledger and the wallet agree: 150,000 in, 60,000 out, 1,430 in fees
    code, report = _reconcile(s)
    wallet = report["wallets"][0]
    assert (wallet["received"], wallet["paid_out"], wallet["fees_paid"]) == (150_000, 60_000, 1_430)
    assert wallet["ledger"] == wallet["wallet"] == 88_570 and wallet["unexplained"] == []
    assert (wallet["wallet_onchain"], wallet["wallet_lightning"]) == (48_590, 39_980)
    assert code == 0 and report["ok"], report
    day = report["days"][0]
    assert day["currency"] == "USD" and day["btcpay_sales"] == day["qbo_sales"] == "97.50"
    assert day["btcpay_transfers"] == day["qbo_transfers"] == "39.93"  # 32.50 + 0.92 + 6.50 + 0.01

    # someone withdraws from the wallet outside BTCPay's payouts: the books differ and say which transaction
    withdrawal = s.btcpay.call(state.wallet_send, s.store_id, Decimal("0.0002"), fee_sats=500)
    code, report = _reconcile(s)
    wallet = report["wallets"][0]
    assert code == 1 and not report["ok"]
    assert wallet["difference"] == -20_500
    assert wallet["unexplained"] == [{"txid": withdrawal.txid, "sats": -20_500, "timestamp": withdrawal.timestamp,
                                      "confirmations": 1}]
    text = s.cli("reconcile", "--from", "2000-01-01", "--to", "2100-01-01").stdout
    assert "BOOKS DIFFER" in text and withdrawal.txid in text and "-20,500 sats" in text

    # the operator books it to the account it went to: a Transfer, once; the books match again
    booked = s.cli_json("reconcile", "book", withdrawal.txid, "--account", "Checking")
    assert booked["sats"] == -20_500 and booked["direction"] == "out"
    again = s.cli("reconcile", "book", withdrawal.txid, "--account", "Checking")
    assert again.returncode != 0 and "already" in again.stderr
    refused = s.cli("reconcile", "book", tx.txid, "--account", "Checking")
    assert refused.returncode != 0 and "already explained" in refused.stderr
    moved = s.wait_for(lambda: _about(s, "Transfer", withdrawal.txid), what="the booked withdrawal's Transfer")
    assert len(moved) == 1 and Decimal(str(moved[0]["Amount"])) == Decimal("13.32")  # 20,500 sats × 65,000 = 13.325, half-even
    assert accounts[moved[0]["ToAccountRef"]["value"]] == "Checking"
    code, report = _reconcile(s)
    assert code == 0 and report["ok"], report
    assert report["wallets"][0]["booked"] == -20_500
    assert s.sql("SELECT subject, outcome FROM audit WHERE action = 'reconcile.book' ORDER BY id") == [
        (withdrawal.txid, "ok"), (withdrawal.txid, "refused"), (tx.txid, "refused")]
