"""The reconciliation check: what BTCPay settled against what QuickBooks holds, day by day, and what the
ledger says the bitcoin account holds against what BTCPay's wallet holds.

Documents. Expected: for every invoice in the ledger with money in the period, the net amount the rules
say the books should show (recognised plus the network fee the customer paid, minus refunds); for every payout, its fee and every wallet
transaction the operator booked, the posting sovterm meant to write. Actual: sovterm's documents found in
QuickBooks by date (TxnDate in the period, carrying one of our markers), net of voids (a voided
document counts 0) and with refunds negative. Any invoice or payout with no document, a wrong amount, or a
document sovterm does not know, makes the books "differ". Day totals are per currency: sales, refunds,
and transfers (payouts, their fees, booked wallet transactions).

Balances (as of now, per store): the satoshis our own BTCPay ledger says the bitcoin account holds
(`LedgerBalance`) against the on-chain wallet and the Lightning node; and the on-chain transactions no
invoice payment, payout or booking explains. A difference, or an unexplained transaction, makes the
books differ too; a balance BTCPay would not show (the key lacks the permission) is "not checked".
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date
from decimal import Decimal
from typing import Any

from sovterm.amounts import msats_to_sats
from sovterm.btcpay import ledger
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayNotFound
from sovterm.btcpay.models import btc_to_sats, payout_proof_reference
from sovterm.errors import UserFacingError
from sovterm.formatting import sats_text
from sovterm.qbo.client import QBOClient, quote_literal
from sovterm.qbo.postings import marker_of
from sovterm.sync import queue, records, rules, summary

ENTITIES = {"SalesReceipt": 1, "Deposit": 1, "Payment": 1, "RefundReceipt": -1, "Transfer": 1, "Purchase": 1}
CATEGORY = {"SalesReceipt": "sales", "Deposit": "sales", "Payment": "sales", "RefundReceipt": "refunds",
            "Transfer": "transfers", "Purchase": "transfers"}
WALLET_PREFIX = "wallet:"  # the postings of a wallet transaction the operator booked: `wallet:<txid>`
NEEDS_WALLET = "btcpay.store.canviewwallet"
NEEDS_LIGHTNING = "btcpay.store.canuselightningnode"


@dataclass
class Report:
    date_from: str
    date_to: str
    days: list[dict[str, Any]] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    wallets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and all(w["ok"] for w in self.wallets)

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.date_from, "to": self.date_to, "ok": self.ok, "days": self.days,
                "differences": self.differences, "wallets": self.wallets}


@dataclass(frozen=True)
class LedgerBalance:
    """Satoshis by what moved them, from sovterm's own BTCPay ledger (settled payments, completed payouts,
    the fees of payout transactions, wallet transactions booked by hand; all positive but `booked`)."""

    received: int = 0  # settled invoice payments, less the network fee the customer paid
    fees_collected: int = 0  # the customer-paid network fee (paymentMethodFee) of those payments
    paid_out: int = 0  # completed payouts (refunds' included)
    fees_paid: int = 0  # miner and routing fees of payout transactions
    booked: int = 0  # wallet transactions booked by hand: deposits positive, withdrawals negative
    confirming: int = 0  # invoice payments still confirming: in the wallet, not yet in the books

    @property
    def ledger(self) -> int:
        """What the books say the bitcoin account holds."""
        return self.received + self.fees_collected - self.paid_out - self.fees_paid + self.booked

    @property
    def expected_in_wallet(self) -> int:
        return self.ledger + self.confirming


def compare_balance(ledger: LedgerBalance, onchain: int | None, lightning: int | None) -> dict[str, Any]:
    """Ledger against wallet, in sats. A side BTCPay would not show (None) is not checked, and the totals
    are compared only when both are known."""
    out: dict[str, Any] = {
        "received": ledger.received, "fees_collected": ledger.fees_collected, "paid_out": ledger.paid_out,
        "fees_paid": ledger.fees_paid, "booked": ledger.booked, "ledger": ledger.ledger,
        "confirming": ledger.confirming, "wallet_onchain": onchain, "wallet_lightning": lightning,
        "wallet": None if onchain is None or lightning is None else onchain + lightning,
    }
    out["difference"] = None if out["wallet"] is None else out["wallet"] - ledger.expected_in_wallet
    return out


async def expected(db: Any, date_from: str, date_to: str,
                   home: str) -> dict[tuple[str, str], tuple[str, Decimal, Decimal, str]]:
    """{(store, invoice): (day, recognised plus the network fee collected, refunded, currency)} for invoices with
    money in the period."""
    start = date.fromisoformat(date_from)
    end = date.fromisoformat(date_to)
    rows = await db.fetchall(
        "SELECT store_id, invoice_id FROM invoices WHERE status IN ('Settled', 'Expired', 'Invalid') "
        "AND COALESCE(paid_at, created_at) BETWEEN ? AND ?",
        (_ts(start) - 86_400, _ts(end) + 2 * 86_400),
    )
    out: dict[tuple[str, str], tuple[str, Decimal, Decimal, str]] = {}
    for store_id, invoice_id in rows:
        snap = await records.load_snapshot(db, store_id, invoice_id)
        if snap is None:
            continue
        day = rules.txn_date(snap)
        if not start <= day <= end:
            continue
        _, recognised, _ = rules.recognise(snap)
        if recognised is None:
            continue
        resolution = await records.get_resolution(db, store_id, invoice_id)
        if resolution is not None and resolution.kind == "ignore":
            continue
        refunds = sum((rules.refund_fiat(snap, r) or Decimal(0) for r in snap.refunds), Decimal(0))
        if recognised > 0:
            recognised += rules.fee_value(snap)  # the network fee the customer paid has its own Deposit
        if recognised != 0:
            out[(store_id, invoice_id)] = (day.isoformat(), recognised, refunds, snap.currency.upper())
    return out


def _ts(d: date) -> int:
    from datetime import datetime

    return int(datetime.combine(d, datetime.min.time(), UTC).timestamp())


async def actual(client: QBOClient, db: Any, date_from: str, date_to: str, home: str = "USD") -> tuple[
        dict[tuple[str, str], list[dict[str, Any]]], list[dict[str, Any]]]:
    """Our documents in QuickBooks in the period, by invoice; and SV-marked ones sovterm does not know."""
    markers = {r[0]: (r[1], r[2]) for r in await db.fetchall("SELECT marker, store_id, invoice_id FROM sync_postings")}
    by_invoice: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    unknown: list[dict[str, Any]] = []
    for entity, sign in ENTITIES.items():
        rows = await client.query(
            f"SELECT * FROM {entity} WHERE TxnDate >= {quote_literal(date_from)} AND TxnDate <= {quote_literal(date_to)}"
        )
        for doc in rows:
            number = marker_of(doc)  # Payments carry it only in the private note
            if number is None:
                continue
            voided = doc.get("TxnStatus") == "Voided"
            total = doc.get("TotalAmt", doc.get("Amount", "0"))  # a Transfer has `Amount`
            entry = {"entity": entity, "id": str(doc["Id"]), "marker": number, "date": doc.get("TxnDate"),
                     "amount": Decimal(0) if voided else sign * Decimal(str(total)), "voided": voided,
                     "category": CATEGORY[entity],
                     "currency": str((doc.get("CurrencyRef") or {}).get("value") or home).upper()}
            if number in markers:
                by_invoice[markers[number]].append(entry)
            else:
                unknown.append(entry)
    return by_invoice, unknown


async def expected_transfers(db: Any, date_from: str, date_to: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """{(store, payout:<id> | wallet:<txid>): [posting]} for the Transfers and fees sovterm meant to write in
    the period (their value was fixed when the posting was planned: the rate of the day)."""
    rows = await db.fetchall(
        "SELECT store_id, invoice_id, entity, amount, currency, txn_date FROM sync_postings "
        "WHERE (invoice_id LIKE 'payout:%' OR invoice_id LIKE 'wallet:%') AND status != 'voided' "
        "AND txn_date BETWEEN ? AND ?", (date_from, date_to))
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for store_id, key, entity, amount, currency, day in rows:
        out[(store_id, key)].append({"entity": entity, "amount": Decimal(amount), "currency": currency, "date": day})
    return out


async def unbooked_payouts(db: Any, date_from: str, date_to: str) -> list[dict[str, Any]]:
    """Completed payouts of the period that sovterm should have booked (since its sync first ran) and has
    no posting for: a dead job, a job still waiting."""
    since = await records.kv_get(db, records.SINCE_KEY)
    if since is None:
        return []
    rows = await db.fetchall(
        "SELECT p.store_id, p.payout_id, p.completed_at FROM payouts p WHERE p.state = 'Completed' "
        "AND COALESCE(p.created_at, 0) >= ? AND p.completed_at BETWEEN ? AND ? AND NOT EXISTS (SELECT 1 FROM "
        "sync_postings s WHERE s.store_id = p.store_id AND s.invoice_id = 'payout:' || p.payout_id) "
        "AND NOT EXISTS (SELECT 1 FROM wallet_entries e WHERE e.store_id = p.store_id AND e.kind = 'fee' "
        "AND e.note LIKE '%' || p.payout_id || '%')",
        (int(since), _ts(date.fromisoformat(date_from)), _ts(date.fromisoformat(date_to)) + 86_399))
    return [{"store_id": r[0], "invoice_id": f"payout:{r[1]}", "date": rules.day_of(int(r[2])).isoformat(),
             "expected": "?", "booked": "0", "problem": "completed payout with no document in QuickBooks",
             "documents": []} for r in rows]


def _day_row() -> dict[str, Any]:
    return {"btcpay_count": 0, "btcpay_sales": Decimal(0), "btcpay_refunds": Decimal(0),
            "btcpay_transfers": Decimal(0), "qbo_count": 0, "qbo_sales": Decimal(0), "qbo_refunds": Decimal(0),
            "qbo_transfers": Decimal(0)}


async def check(db: Any, client: QBOClient, date_from: str, date_to: str, home: str = "USD",
                btcpay: Callable[[str], Any] | None = None, only_store: str | None = None) -> Report:
    """The whole report; `btcpay(store_id)` gives the BTCPay client for the balance check (None: skipped).
    With `only_store`, only that store's invoices, payouts, documents and wallet (the documents sovterm does
    not know belong to no store, so they show in the report over all stores)."""
    want = await expected(db, date_from, date_to, home)
    transfers = await expected_transfers(db, date_from, date_to)
    have, unknown = await actual(client, db, date_from, date_to, home)
    if only_store is not None:
        want = {k: v for k, v in want.items() if k[0] == only_store}
        transfers = {k: v for k, v in transfers.items() if k[0] == only_store}
        have = defaultdict(list, {k: v for k, v in have.items() if k[0] == only_store})
        unknown = []
    report = Report(date_from, date_to)
    days: dict[tuple[str, str], dict[str, Any]] = defaultdict(_day_row)
    summaries = await summary.check(db, want, have, date_from, date_to)  # daily summary mode's invoices and days
    report.differences += [x for x in summaries.differences if only_store in (None, x["store_id"])]
    for key, vals in summaries.days.items():
        for name, value in vals.items():
            days[key][name] += value
    for (store_id, invoice_id), (day, recognised, refunds, currency) in sorted(want.items(), key=lambda kv: kv[1][0]):
        net = recognised - refunds if recognised > 0 else Decimal(0)
        d = days[(day, currency)]
        d["btcpay_count"] += 1
        d["btcpay_sales"] += recognised
        d["btcpay_refunds"] += refunds if recognised > 0 else Decimal(0)
        if (store_id, invoice_id) not in summaries.handled:
            _compare(report, store_id, invoice_id, day, net, currency, have.get((store_id, invoice_id), []))
    for (store_id, key), postings in transfers.items():
        for x in postings:
            days[(x["date"], x["currency"])]["btcpay_transfers"] += x["amount"]
        total = sum((x["amount"] for x in postings), Decimal(0))
        _compare(report, store_id, key, postings[0]["date"], total, postings[0]["currency"], have.get((store_id, key), []))
    report.differences += [x for x in await unbooked_payouts(db, date_from, date_to)
                           if only_store is None or x["store_id"] == only_store]
    for key, docs in have.items():
        if key in summaries.handled:
            continue
        for x in docs:
            if x["voided"]:
                continue
            d = days[(str(x["date"]), x["currency"])]
            d["qbo_count"] += 1
            d[f"qbo_{x['category']}"] += abs(x["amount"])
        if key not in want and key not in transfers and any(not x["voided"] for x in docs):
            report.differences.append({"store_id": key[0], "invoice_id": key[1], "date": docs[0]["date"],
                                       "expected": "0", "booked": str(sum(x["amount"] for x in docs)),
                                       "problem": "document for an invoice BTCPay does not show as paid in the period",
                                       "documents": [f"{x['entity']}:{x['id']}" for x in docs]})
    for x in unknown:
        if not x["voided"]:
            report.differences.append({"store_id": None, "invoice_id": None, "date": x["date"], "expected": "0",
                                       "booked": str(x["amount"]), "problem": "sovterm-marked document unknown to this "
                                       "installation", "documents": [f"{x['entity']}:{x['id']}"]})
    report.days = [{"date": day, "currency": currency, **{k: str(v) for k, v in vals.items()}}
                   for (day, currency), vals in sorted(days.items())]
    if btcpay is not None:
        report.wallets = [await wallet_check(db, btcpay(store_id), store_id)
                          for store_id in await ledger.selected_stores(db) if only_store in (None, store_id)]
    return report


def _compare(report: Report, store_id: str, key: str, day: str, net: Decimal, currency: str,
             docs: list[dict[str, Any]]) -> None:
    booked = sum((x["amount"] for x in docs), Decimal(0))
    live = [x for x in docs if not x["voided"]]
    if net != 0 and not live:
        problem = "no document in QuickBooks"
    elif booked != net:
        problem = f"QuickBooks shows {booked}, BTCPay says {net}"
    else:
        return
    report.differences.append({"store_id": store_id, "invoice_id": key, "date": day, "expected": str(net),
                               "booked": str(booked), "currency": currency, "problem": problem,
                               "documents": [f"{x['entity']}:{x['id']}" for x in docs]})


# -- balances -----------------------------------------------------------------------------------------


async def ledger_balance(db: Any, store_id: str) -> LedgerBalance:
    """The store's satoshis by what moved them, from sovterm's BTCPay ledger tables."""
    pays = await db.fetchall(
        "SELECT status, COALESCE(SUM(amount_sats), 0), COALESCE(SUM(COALESCE(fee_sats, 0)), 0) FROM invoice_payments "
        "WHERE store_id = ? AND currency = 'BTC' AND payment_method != 'cashu' AND status IN ('Settled', 'Processing') "
        "GROUP BY status", (store_id,))  # Cashu ecash is held at the mint, never in the wallet
    by_status = {r[0]: (int(r[1]), int(r[2])) for r in pays}
    settled, fees = by_status.get("Settled", (0, 0))
    out = await db.fetchone("SELECT COALESCE(SUM(amount_sats), 0) FROM payouts WHERE store_id = ? AND state = "
                            "'Completed'", (store_id,))
    entries = dict(await db.fetchall(
        "SELECT kind, COALESCE(SUM(sats), 0) FROM wallet_entries WHERE store_id = ? GROUP BY kind", (store_id,)))
    return LedgerBalance(received=settled - fees, fees_collected=fees, paid_out=int(out[0]),
                         fees_paid=-int(entries.get("fee", 0)), booked=int(entries.get("booked", 0)),
                         confirming=by_status.get("Processing", (0, 0))[0])


async def payout_transactions(btcpay: Any, store_id: str) -> dict[str, int]:
    """{txid or payment hash: sats the store's completed payouts paid in it}, by their proofs as BTCPay shows
    them (empty when the key may not read payouts: the fee entries still name the ones sovterm booked)."""
    paid: dict[str, int] = defaultdict(int)
    try:
        for p in await btcpay.list_payouts(store_id):
            ref = payout_proof_reference(p.payment_proof)
            if ref is not None and p.state == "Completed" and p.payout_amount is not None:
                paid[ref] += btc_to_sats(p.payout_amount)
    except BTCPayAuthError:
        pass
    return paid


async def explained_txids(db: Any, paid_by_payouts: dict[str, int], store_id: str) -> set[str]:
    """On-chain transactions a document explains: invoice payments (`<txid>-<vout>`), payouts (the txid of
    their proof, as BTCPay shows it and as the fee entries recorded it) and bookings by hand."""
    rows = await db.fetchall(
        "SELECT txid FROM invoice_payments WHERE store_id = ? AND txid IS NOT NULL UNION "
        "SELECT reference FROM wallet_entries WHERE store_id = ?", (store_id, store_id))
    return {str(r[0]) for r in rows} | set(paid_by_payouts)


async def unrecorded_payout_fees(db: Any, transactions: list[Any], paid_by_payouts: dict[str, int],
                                 store_id: str) -> int:
    """Miner fees of payout transactions sovterm has no fee entry for (payouts completed before its sync first
    ran are history and not booked, but their fee left the wallet all the same): what the transaction spent
    beyond the payouts it paid."""
    recorded = {str(r[0]) for r in await db.fetchall(
        "SELECT reference FROM wallet_entries WHERE store_id = ? AND kind = 'fee'", (store_id,))}
    return sum(-t.sats - paid_by_payouts[t.transaction_hash] for t in transactions
               if t.transaction_hash in paid_by_payouts and t.transaction_hash not in recorded
               and -t.sats > paid_by_payouts[t.transaction_hash])


async def wallet_check(db: Any, btcpay: Any, store_id: str) -> dict[str, Any]:
    """One store's balance section: ledger against wallet, and the unexplained on-chain transactions."""
    notes: list[str] = []
    onchain: int | None = None
    lightning: int | None = None
    unexplained: list[dict[str, Any]] = []
    history_fees = 0
    try:
        onchain = btc_to_sats((await btcpay.get_onchain_wallet(store_id)).balance)
        paid_by_payouts = await payout_transactions(btcpay, store_id)
        known = await explained_txids(db, paid_by_payouts, store_id)
        transactions = await btcpay.list_onchain_transactions(store_id)
        unexplained = [{"txid": t.transaction_hash, "sats": t.sats, "timestamp": t.timestamp,
                        "confirmations": t.confirmations}
                       for t in transactions if t.transaction_hash not in known]
        history_fees = await unrecorded_payout_fees(db, transactions, paid_by_payouts, store_id)
        if history_fees:
            notes.append(f"fees paid include {sats_text(history_fees)} of miner fees of payouts sovterm did not book "
                         "(completed before its sync first ran)")
    except BTCPayAuthError as exc:
        notes.append(f"on-chain wallet not checked: needs {exc.missing_permission or NEEDS_WALLET}")
    except BTCPayNotFound:
        onchain = 0
        notes.append("the store has no on-chain wallet")
    try:
        msats = (await btcpay.get_lightning_balance(store_id)).local_msats
        lightning = msats_to_sats(msats)
    except BTCPayAuthError as exc:
        notes.append(f"Lightning balance not checked: needs {exc.missing_permission or NEEDS_LIGHTNING}")
    except BTCPayNotFound:
        lightning = 0
        notes.append("the store has no Lightning node")
    balance = await ledger_balance(db, store_id)
    if history_fees:
        balance = replace(balance, fees_paid=balance.fees_paid + history_fees)
    section = compare_balance(balance, onchain, lightning)
    if section["difference"] is None:
        notes.append("balance not checked")
    section.update({"store_id": store_id, "unexplained": unexplained, "notes": notes,
                    "ok": not section["difference"] and not unexplained})
    return section


# -- booking an unexplained wallet transaction ----------------------------------------------------------

#: What a Transfer can move money to or from ("Must be a Balance Sheet account").
BALANCE_SHEET = {"Bank", "Accounts Receivable", "Other Current Asset", "Fixed Asset", "Other Asset",
                 "Accounts Payable", "Credit Card", "Other Current Liability", "Long Term Liability", "Equity"}


async def find_account(client: QBOClient, account: str) -> dict[str, Any]:
    """A QuickBooks account by Id or by name, refused unless a Transfer can use it."""
    rows = await client.query(f"SELECT * FROM Account WHERE Id = {quote_literal(account)}", limit=1) \
        if account.isdigit() else []
    rows = rows or await client.query(f"SELECT * FROM Account WHERE Name = {quote_literal(account)}", limit=2)
    if len(rows) != 1:
        raise UserFacingError(f"QuickBooks has {'no' if not rows else 'more than one'} account {account!r}",
                              fix="give the account's exact name or its Id (`sovterm setup accounts list`)")
    found = rows[0]
    if found.get("AccountType") not in BALANCE_SHEET:
        raise UserFacingError(
            f"account {found.get('Name')!r} is a {found.get('AccountType')} account; a Transfer needs a balance "
            "sheet account (bank, asset, liability or equity)",
            fix="book a fee or an expense by hand in QuickBooks, or choose e.g. the exchange's bank account")
    return found


async def book(db: Any, btcpay: Any, client: QBOClient, store_id: str, txid: str, account: str,
               actor: str) -> dict[str, Any]:
    """Record the operator's decision that a wallet transaction went to (or came from) `account`, and queue
    its Transfer: the sync job posts it exactly once, through the postings ledger."""
    try:
        tx = await btcpay.get_onchain_transaction(store_id, txid)
    except BTCPayNotFound:
        raise UserFacingError(f"store {store_id}'s wallet has no transaction {txid}",
                              fix="copy the txid from `sovterm reconcile`'s list") from None
    if txid in await explained_txids(db, await payout_transactions(btcpay, store_id), store_id):
        raise UserFacingError(f"transaction {txid} is already explained (an invoice payment, a payout, or booked)")
    found = await find_account(client, account)

    async def unit(conn: Any) -> bool:
        cur = await conn.execute(
            "INSERT INTO wallet_entries(store_id, reference, kind, sats, account_id, note, happened_at, created_by, "
            "created_at) VALUES(?, ?, 'booked', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (store_id, txid, tx.sats, str(found["Id"]), f"{'from' if tx.sats > 0 else 'to'} {found.get('Name')}",
             tx.timestamp, actor, int(time.time())))
        if cur.rowcount != 1:
            return False
        await queue.enqueue(conn, store_id, WALLET_PREFIX + txid, payload={"cause": f"booked by {actor}"})
        return True

    async with db.transaction() as conn:
        if not await unit(conn):
            raise UserFacingError(f"transaction {txid} is already booked")
    return {"store_id": store_id, "txid": txid, "sats": tx.sats, "account_id": str(found["Id"]),
            "account": found.get("Name"), "direction": "in" if tx.sats > 0 else "out"}
