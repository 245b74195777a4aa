"""The balance half of the books-match report: the ledger's arithmetic (docs/accounting.md, Reconciliation)
and what it says when BTCPay will not show the wallet."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from sovterm.btcpay.errors import BTCPayAuthError
from sovterm.cli.sync import reconcile_text
from sovterm.sync import reconcile
from sovterm.sync.reconcile import LedgerBalance, compare_balance
from tests.sync.helpers import STORE, invoice, put


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
    text = reconcile_text({"from": "2026-01-01", "to": "2026-01-31", "ok": True, "days": [],
                           "differences": [], "wallets": [section]})
    assert "not checked: needs btcpay.store.canviewwallet" in text and "MATCHES" not in text


class HistoryWallet:
    """A wallet whose only spend is a payout paid before sovterm's sync first ran (history: no document, no
    fee entry): 60,000 sats to the payee and 1,410 to the miners, from 149,000 received on-chain."""

    def __init__(self) -> None:
        self.tx = SimpleNamespace(transaction_hash="ab" * 32, sats=-61_410, timestamp=1, confirmations=6)

    async def get_onchain_wallet(self, store_id):
        return SimpleNamespace(balance=Decimal("0.00087590"))

    async def list_payouts(self, store_id):
        return [SimpleNamespace(payment_proof={"TransactionId": self.tx.transaction_hash}, state="Completed",
                                payout_amount=Decimal("0.00060000"))]

    async def list_onchain_transactions(self, store_id):
        return [self.tx]

    async def get_lightning_balance(self, store_id):
        return SimpleNamespace(local_msats=0)


async def test_the_miner_fee_of_a_payout_from_before_sovterm_counts_in_the_balance(db):
    # the ledger knows the payout (the mirror's first poll) and the payment, but no fee entry for the payout
    await put(db, invoice("i1", payments=[("BTC-CHAIN", "0.00149", "Settled")]))
    await db.write("INSERT INTO payouts(store_id, payout_id, state, revision, payout_amount, payout_currency, "
                   "amount_sats, updated_at) VALUES(?, 'p1', 'Completed', 1, '0.0006', 'BTC', 60000, 1)", (STORE,))
    section = await reconcile.wallet_check(db, HistoryWallet(), STORE)
    assert (section["fees_paid"], section["ledger"], section["wallet"]) == (1_410, 87_590, 87_590)
    assert section["ok"] and section["unexplained"] == []
    assert "1,410 sats of miner fees of payouts sovterm did not book" in section["notes"][0]
