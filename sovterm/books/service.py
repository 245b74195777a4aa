"""The books part's service: records the store's BTCPay rate every day, reports the bitcoin held at fair
value, and posts the remeasurement JournalEntry of each bitcoin account and period exactly once.

Exactly once, as for every other posting: the intent (marker, exact body, requestid) is committed in
`books_remeasurements` before QuickBooks is called; a `pending` row (a crash, a lost answer) is looked up
by its marker (`DocNumber`, which Intuit filters on for JournalEntry) before it is created; the primary
key (account, period) makes a second run for the same period a no-op. The rate and where it came from
are in the memo.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sovterm.books import ledger, rules
from sovterm.errors import UserFacingError
from sovterm.formatting import sats_text
from sovterm.qbo.client import QBOClient, quote_literal, request_id
from sovterm.qbo.errors import QBODuplicateName
from sovterm.qbo.models import dumps, loads
from sovterm.qbo.postings import find_documents, marker_for, private_note

log = logging.getLogger("sovterm.books")

GAIN_ACCOUNT = "Unrealized Gain/Loss on Bitcoin"
GAIN_ACCOUNT_KEY = "books:gain_account"
#: account types the gain/loss may go to (through net income, ASU 2023-08)
GAIN_ACCOUNT_TYPES = {"Other Income", "Other Expense", "Income", "Expense"}


class RateSource(Protocol):
    async def stores(self) -> list[str]: ...
    async def rate(self, store_id: str, currency: str) -> tuple[Decimal, str]: ...


class Books(Protocol):
    async def client(self) -> QBOClient: ...
    async def home_currency(self) -> str: ...


def parse_day(text: str, what: str = "--as-of") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserFacingError(f"not a date: {text!r}", fix=f"give {what} as YYYY-MM-DD, e.g. 2026-01-31") from None


def last_month_end(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


class BooksService:
    def __init__(self, db: Any, rates: RateSource | None, books: Books | None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.rates = rates
        self.books = books
        self.clock = clock

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    # -- rates ------------------------------------------------------------------------------------------

    async def record_rates(self) -> dict[str, Any]:
        """Today's BTC rate of every followed store in the home currency, once a day (the `books.rates` loop)."""
        if self.rates is None or self.books is None:
            return {"skipped": "BTCPay and QuickBooks must both be connected"}
        home = (await self.books.home_currency()).upper()
        day = self.today().isoformat()
        recorded, failed = 0, []
        for store_id in await self.rates.stores():
            if await self.db.fetchone("SELECT 1 FROM books_rates WHERE store_id = ? AND currency = ? AND day = ?",
                                      (store_id, home, day)):
                continue
            try:
                rate, source = await self.rates.rate(store_id, home)
            except UserFacingError as exc:
                failed.append(f"{store_id}: {exc}")
                continue
            await self.db.write(
                "INSERT INTO books_rates(store_id, day, currency, rate, source, fetched_at) VALUES(?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", (store_id, day, home, str(rate), source, int(self.clock())))
            recorded += 1
        return {"recorded": recorded, "failed": failed}

    # -- holdings -----------------------------------------------------------------------------------------

    async def holdings(self, as_of: date) -> list[dict[str, Any]]:
        """Per bitcoin account on `as_of`: satoshis, FIFO cost, fair value, unrealized gain/loss, what the books
        carry and the remeasurement that would bring them to fair value, and the payouts' realized gains."""
        if self.books is None:
            raise UserFacingError("QuickBooks is not connected", fix="run `sovterm setup qbo`")
        home = (await self.books.home_currency()).upper()
        if as_of == self.today():
            await self.record_rates()  # today's rate, if the loop has not recorded it yet
        out = []
        for account_id, stores in (await ledger.accounts(self.db)).items():
            found = await ledger.rate_on(self.db, stores, home, as_of)
            if found is None:
                raise UserFacingError(
                    f"no BTCPay rate recorded up to {as_of} for the stores of account {account_id}",
                    fix="sovterm records each store's rate every day from the day the books part first runs; "
                        "choose a later --as-of date")
            rate, source, rate_day = found
            book = await ledger.read(self.db, account_id, stores, home, as_of)
            carried = ledger.carrying(book, await ledger.remeasured(self.db, account_id, as_of))
            h = rules.holding(account_id, as_of, book.lots, book.disposals, rate, source, carried)
            posted = await self.db.fetchone("SELECT status, qbo_id FROM books_remeasurements WHERE account_id = ? "
                                            "AND period = ? AND status != 'voided'", (account_id, as_of.isoformat()))
            out.append({
                "account_id": account_id, "account": await self._account_name(account_id), "stores": stores,
                "as_of": as_of.isoformat(), "currency": home, "sats": h.sats, "cost": str(h.cost),
                "rate": str(rate), "rate_day": rate_day, "rate_source": source, "fair_value": str(h.fair_value),
                "unrealized": str(h.unrealized), "carrying": str(h.carrying), "remeasurement": str(h.remeasurement),
                "remeasured": None if posted is None else {"status": posted[0], "qbo_id": posted[1]},
                "realized": [{"ref": r.ref, "day": r.day.isoformat(), "sats": r.sats, "proceeds": str(r.proceeds),
                              "cost": str(r.cost), "gain": str(r.gain), "uncovered_sats": r.uncovered_sats}
                             for r in h.realized],
                "notes": book.notes,
            })
        return out

    async def _account_name(self, account_id: str) -> str | None:
        row = await self.db.fetchone("SELECT names FROM qbo_mappings WHERE deposit_account_id = ? LIMIT 1",
                                     (account_id,))
        return None if row is None else loads(row[0] or "{}").get("deposit_account_id")

    # -- remeasurement ------------------------------------------------------------------------------------

    async def remeasure(self, as_of: date, actor: str) -> dict[str, Any]:
        """One JournalEntry per bitcoin account for the period ending `as_of`, to the gain/loss account;
        exactly once (a second run finds it and posts nothing)."""
        if as_of > self.today():
            raise UserFacingError(f"{as_of} is in the future", fix="remeasure as of today or an earlier date")
        held = await self.holdings(as_of)
        assert self.books is not None
        client = await self.books.client()
        gain_account = await self.gain_account(client)
        results = []
        for h in held:
            results.append(await self._one(client, h, gain_account, actor))
        return {"as_of": as_of.isoformat(), "gain_account_id": gain_account, "entries": results}

    async def _one(self, client: QBOClient, h: dict[str, Any], gain_account: str, actor: str) -> dict[str, Any]:
        account_id, period = h["account_id"], h["as_of"]
        live = ("SELECT status, qbo_id, amount, marker, request_id, body, seq FROM books_remeasurements WHERE "
                "account_id = ? AND period = ? AND status != 'voided'")
        row = await self.db.fetchone(live, (account_id, period))
        base = {"account_id": account_id, "period": period}
        if row is not None and row[0] == "posted":
            return {**base, "state": "already posted", "qbo_id": row[1], "amount": row[2]}
        if row is not None and row[0] == "voiding":
            return {**base, "state": "being rolled back", "qbo_id": row[1], "amount": row[2]}
        earlier = await self.db.fetchone("SELECT MAX(seq) FROM books_remeasurements WHERE account_id = ? AND "
                                         "period = ?", (account_id, period))
        later = await self.db.fetchone("SELECT MAX(period) FROM books_remeasurements WHERE account_id = ? AND "
                                       "period > ? AND status != 'voided'", (account_id, period))
        if row is None and later[0] is not None and earlier[0] is None:
            # that entry already brought the account to fair value on a later date; one for an earlier date
            # would count this period's change twice (a period rolled back is posted again: the later entry
            # was worked out with it)
            return {**base, "state": f"later period {later[0]} already remeasured", "qbo_id": None, "amount": "0.00"}
        if row is None:
            amount = Decimal(h["remeasurement"])
            if amount == 0:
                return {**base, "state": "nothing to post", "qbo_id": None, "amount": "0.00"}
            seq = 0 if earlier[0] is None else int(earlier[0]) + 1
            # posted again after a rollback: a new marker (the old requestid would replay the deleted entry)
            marker = marker_for("remeasure", account_id, period, *((seq,) if seq else ()))
            memo = (f"Fair value of bitcoin (ASU 2023-08) as of {period}: {sats_text(h['sats'])} at {h['rate']} "
                    f"{h['currency']}/BTC ({h['rate_source']}, {h['rate_day']}) = {h['fair_value']}; books carried "
                    f"{h['carrying']}; cost {h['cost']}")
            lines = [{"Amount": value, "DetailType": "JournalEntryLineDetail", "Description": memo[:4000],
                      "JournalEntryLineDetail": {"PostingType": kind, "AccountRef": {"value": acct}}}
                     for kind, acct, value in rules.remeasurement_lines(amount, account_id, gain_account)]
            body = dumps({"DocNumber": marker, "TxnDate": period, "PrivateNote": private_note(marker, memo),
                          "Line": lines})
            rid = request_id("sovterm", marker, hashlib.sha256(body.encode()).hexdigest()[:16])
            await self.db.write(
                "INSERT INTO books_remeasurements(account_id, period, seq, amount, currency, rate, source, sats, "
                "marker, request_id, body, status, created_by, created_at) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
                (account_id, period, seq, str(amount), h["currency"], h["rate"], h["rate_source"], h["sats"], marker,
                 rid, body, actor, int(self.clock())))
            row = await self.db.fetchone(live, (account_id, period))
        _, _, amount_text, marker, rid, body, seq = row
        doc = await self._create_once(client, marker, rid, body)
        await self.db.write("UPDATE books_remeasurements SET status = 'posted', qbo_id = ?, posted_at = ? "
                            "WHERE account_id = ? AND period = ? AND seq = ?",
                            (str(doc["Id"]), int(self.clock()), account_id, period, seq))
        return {**base, "state": "posted", "qbo_id": str(doc["Id"]), "amount": amount_text}

    async def repost_rolled_back(self) -> dict[str, Any]:
        """Post again the remeasurements a rollback took back, oldest period first, once the sync has posted
        again what their accounts' stores had in the books (the sync loop calls it; worked out afresh, as
        `books remeasure` would, with the mapping of now). An entry a crash left `pending` a minute ago or more
        (not one a `books remeasure` call is writing now) is finished here too, looked up by its marker first."""
        rows = await self.db.fetchall(
            "SELECT DISTINCT account_id, period FROM books_remeasurements r WHERE (status = 'pending' AND "
            "created_at < ?) OR (status = 'voided' AND NOT EXISTS (SELECT 1 FROM books_remeasurements l WHERE "
            "l.account_id = r.account_id AND l.period = r.period AND l.status != 'voided')) ORDER BY period, "
            "account_id", (int(self.clock()) - 60,))
        if not rows or self.books is None:
            return {"posted": 0, "waiting": len(rows)}
        if await self.db.fetchone("SELECT 1 FROM sync_rollbacks WHERE state = 'running'") is not None:
            return {"posted": 0, "waiting": len(rows)}  # the rollback is still taking documents back
        stores_of = await ledger.accounts(self.db)
        client = await self.books.client()
        gain_account = await self.gain_account(client)
        posted = waiting = 0
        for account_id, period in rows:
            stores = stores_of.get(account_id, [])
            marks = ", ".join("?" for _ in stores)
            busy = stores and await self.db.fetchone(
                f"SELECT 1 FROM sync_jobs WHERE store_id IN ({marks}) AND (state IN ('running', 'held') OR "
                "(state = 'queued' AND next_run_at <= ?)) LIMIT 1", (*stores, self.clock()))
            if busy:  # its documents are being posted again: the carrying amount is not final yet
                waiting += 1
                continue
            held = [h for h in await self.holdings(date.fromisoformat(period)) if h["account_id"] == account_id]
            for h in held:
                done = await self._one(client, h, gain_account, "daemon")
                posted += done["state"] == "posted"
        return {"posted": posted, "waiting": waiting}

    async def _create_once(self, client: QBOClient, marker: str, rid: str, body: str) -> dict[str, Any]:
        """Look the marker up (a crash may have left it created), else create it."""
        data = loads(body)
        found = await find_documents(client, "JournalEntry", [data])
        if marker in found:
            return found[marker]
        return await client.create("JournalEntry", data, request_id=rid)

    # -- the gain/loss account --------------------------------------------------------------------------------

    async def gain_account(self, client: QBOClient) -> str:
        """The mapped gain/loss account, else "Unrealized Gain/Loss on Bitcoin" (found by name, created once)."""
        row = await self.db.fetchone("SELECT value FROM kv WHERE key = ?", (GAIN_ACCOUNT_KEY,))
        if row is not None:
            return str(loads(row[0])["id"])
        sql = f"SELECT * FROM Account WHERE Name = {quote_literal(GAIN_ACCOUNT)}"
        rows = await client.query(sql, limit=1)
        if not rows:
            body = {"Name": GAIN_ACCOUNT, "AccountType": "Other Income", "AccountSubType": "OtherMiscellaneousIncome",
                    "Description": "Fair-value remeasurement of bitcoin held (ASU 2023-08), posted by sovterm"}
            try:
                rows = [await client.create("Account", body, request_id=request_id("account", GAIN_ACCOUNT))]
            except QBODuplicateName:
                rows = await client.query(sql, limit=1)
        await self._save_gain_account(rows[0], "sovterm")
        return str(rows[0]["Id"])

    async def map_gain_account(self, ref: str, actor: str) -> dict[str, Any]:
        """Map the gain/loss account by name or Id; it must be an income or expense account."""
        assert self.books is not None
        client = await self.books.client()
        rows = await client.query(f"SELECT * FROM Account WHERE Name = {quote_literal(ref)}", limit=1)
        if not rows and ref.isdigit():
            rows = await client.query(f"SELECT * FROM Account WHERE Id = {quote_literal(ref)}", limit=1)
        if not rows:
            raise UserFacingError(f"QuickBooks has no account {ref!r}",
                                  fix="give the name or Id of an Other Income (or Expense) account")
        if rows[0].get("AccountType") not in GAIN_ACCOUNT_TYPES:
            raise UserFacingError(
                f"{rows[0].get('Name')} is a {rows[0].get('AccountType')} account; gains and losses on bitcoin go "
                "through net income", fix="choose an Other Income, Other Expense, Income or Expense account")
        return await self._save_gain_account(rows[0], actor)

    async def _save_gain_account(self, account: dict[str, Any], actor: str) -> dict[str, Any]:
        value = {"id": str(account["Id"]), "name": account.get("Name"), "type": account.get("AccountType"),
                 "by": actor}
        await self.db.write(
            "INSERT INTO kv(key, value, updated_at) VALUES(?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "value = excluded.value, updated_at = excluded.updated_at",
            (GAIN_ACCOUNT_KEY, dumps(value), int(self.clock())))
        return value

    # -- the month-end loop ------------------------------------------------------------------------------------

    async def month_end(self) -> dict[str, Any]:
        """Remeasure as of the last month's end (the optional `books.month_end` loop; a no-op once done).
        Before any rate was recorded for that month (a new installation) it waits for the next month."""
        as_of = last_month_end(self.today())
        try:
            return await self.remeasure(as_of, "daemon")
        except UserFacingError as exc:
            return {"as_of": as_of.isoformat(), "entries": [], "skipped": str(exc)}

