"""The balance half of the books-match report: the ledger's arithmetic (docs/accounting.md, Reconciliation)
and what it says when BTCPay will not show the wallet."""

from __future__ import annotations

from sovterm.btcpay.errors import BTCPayAuthError
from sovterm.sync import reconcile
from sovterm.sync.reconcile import LedgerBalance, compare_balance


def test_ledger_balance_is_received_plus_fees_collected_minus_paid_out_and_fees_paid():
    # W1 in docs/accounting.md
    ledger = LedgerBalance(received=149_000, fees_collected=1_000, paid_out=60_000, fees_paid=1_430)
    assert ledger.ledger == 88_570
    same = compare_balance(ledger, onchain=48_590, lightning=39_980)
    assert (same["wallet"], same["difference"]) == (88_570, 0)
    # W2: a withdrawal of 20,000 sats (+500 miner fee) nobody booked
    short = compare_balance(ledger, onchain=28_090, lightning=39_980)
    assert (short["wallet"], short["difference"]) == (68_070, -20_500)
    # W3: booked by hand (a Transfer to Checking): the ledger follows the wallet again
    booked = LedgerBalance(149_000, 1_000, 60_000, 1_430, booked=-20_500)
    assert booked.ledger == 68_070 and compare_balance(booked, 28_090, 39_980)["difference"] == 0
    # a payment still confirming is in the wallet, not in the books yet: shown, and added on the ledger side
    confirming = LedgerBalance(149_000, 1_000, 60_000, 1_430, confirming=25_000)
    assert confirming.ledger == 88_570 and compare_balance(confirming, 73_590, 39_980)["difference"] == 0
    # a side BTCPay would not show leaves the balance unchecked, not "different"
    assert compare_balance(ledger, None, 39_980)["difference"] is None


class NoWalletKey:
    """A BTCPay client whose key lacks the wallet and Lightning permissions (BTCPay answers 403)."""

    async def get_onchain_wallet(self, store_id):
        raise BTCPayAuthError("refused", status=403, missing_permission="btcpay.store.canviewwallet")

    async def get_lightning_balance(self, store_id):
        raise BTCPayAuthError("refused", status=403, missing_permission="btcpay.store.canuselightningnode")


async def test_a_key_without_the_wallet_permissions_gets_not_checked_with_the_permission(db):
    section = await reconcile.wallet_check(db, NoWalletKey(), "S")
    assert section["ok"] is True and section["difference"] is None
    assert section["notes"] == ["on-chain wallet not checked: needs btcpay.store.canviewwallet",
                                "Lightning balance not checked: needs btcpay.store.canuselightningnode",
                                "balance not checked"]
    text = reconcile.format_report({"from": "2026-01-01", "to": "2026-01-31", "ok": True, "days": [],
                                    "differences": [], "wallets": [section]})
    assert "not checked: needs btcpay.store.canviewwallet" in text and "MATCHES" not in text
