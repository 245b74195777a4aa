"""Daily summary mode: one QuickBooks document per store, currency and store-local day, instead of one per
BTCPay invoice (docs/accounting.md, "Daily summary mode").

How an invoice reaches a summary (each step is one transaction, so a crash anywhere repeats nothing):
1. the invoice's job asks the rules what it should stand for now (`rules.recognise`, the same as in
   per-transaction mode), splits it by payment method (`targets`), and writes the difference to what the
   invoice already contributed as new entries (`deltas`), dated on the store-local day the money moved;
   in the same transaction it queues the day's job to run when that day closes (`closes_at`);
2. the day's job (key `summary:<CUR>:<YYYY-MM-DD>`) binds the day's unbound entries to the next document
   of that day (`day#0` the summary, `day#1…` adjustments), committing the pending posting with the exact
   body in the same transaction, then writes it through the same sender as every other document (marker
   in DocNumber, looked up after a crash).

A bound entry is never changed, so a late payment, a refund or an invalidation that lands on a day
already posted becomes that day's next adjustment document, never an edit of the posted one.

The pure rules (`local_day`, `closes_at`, `method_split`, `targets`, `deltas`, `day_lines`,
`summary_body`) are tested with the numbers of docs/accounting.md; the jobs that run them are in
`sync.summary_jobs`, and `check` is the summaries' part of the books-match report (`sync.reconcile`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sovterm.amounts import sats_to_btc
from sovterm.errors import UserFacingError
from sovterm.qbo.mapping import StoreMapping
from sovterm.qbo.postings import CurrencyContext, DepositLine, build_deposit, build_purchase, marker_for
from sovterm.sync import rules

PREFIX = "summary:"  # the postings and jobs of a day: summary:<CUR>:<YYYY-MM-DD>
KIND = "day"  # posting kind: seq 0 is the day's summary, 1… its adjustments
JOB_KIND = "summary"
NO_DOCUMENT = -1  # entries that cancelled out: bound, but no document carries them
METHODS = ("on-chain", "Lightning", "other")
DEFAULT_CLOSE_AFTER_S = 3600  # a payment seen an hour after midnight still makes the day's summary
SETTLE_S = 5.0  # changes reaching a closed day within seconds of each other (a poll's catch-up) make one adjustment
SALE, FEE, REFUND = "sale", "fee", "refund"


# -- the store's choice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryPolicy:
    since: date | None  # the cut-over: invoices of store-local days from here on are summarised
    tz: ZoneInfo
    close_after_s: int = DEFAULT_CLOSE_AFTER_S


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or a clear error naming the fix."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserFacingError(f"unknown time zone {name!r}",
                              fix="give an IANA name such as UTC, Europe/Berlin or America/New_York") from None


def policy_of(mode: dict[str, Any]) -> SummaryPolicy:
    """The summary policy of a store's mode record. `since` is None unless the store is in summary mode now;
    the time zone and grace stay after a change of mode, for the invoices already in a summary."""
    since = date.fromisoformat(str(mode["summary_from"])) if mode.get("mode") == "summary" else None
    return SummaryPolicy(since, zone(str(mode.get("timezone") or "UTC")),
                         int(mode.get("close_after_s", DEFAULT_CLOSE_AFTER_S)))


def settings(current: dict[str, Any], since: str | None, timezone: str | None,
             close_after_min: int | None, now: float | None = None) -> dict[str, Any]:
    """The summary settings to store, checked: the time zone (given, else the one set before, else UTC), the
    cut-over day (given, else today in that zone) and the grace after local midnight."""
    tz = zone(timezone or str(current.get("timezone") or "UTC"))
    if since is None:
        day = local_day(time.time() if now is None else now, tz)
    else:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            raise UserFacingError(f"not a date: {since!r}", fix="use YYYY-MM-DD, e.g. 2026-01-01") from None
    close = close_after_min * 60 if close_after_min is not None else int(
        current.get("close_after_s", DEFAULT_CLOSE_AFTER_S))
    return {"summary_from": day.isoformat(), "timezone": tz.key, "close_after_s": close}


# -- pure rules -------------------------------------------------------------------------------------


def local_day(unix_s: int | float, tz: ZoneInfo) -> date:
    """The calendar day a moment falls on in the store's time zone."""
    return datetime.fromtimestamp(unix_s, UTC).astimezone(tz).date()


def closes_at(day: date, tz: ZoneInfo, close_after_s: int = DEFAULT_CLOSE_AFTER_S) -> float:
    """When a store-local day is closed for posting: its local midnight (the start of the next day, DST
    included) plus the grace for payments seen late."""
    midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
    return midnight.timestamp() + close_after_s


def key_of(currency: str, day: date) -> str:
    return f"{PREFIX}{currency.upper()}:{day.isoformat()}"


def parse_key(key: str) -> tuple[str, date]:
    currency, day = key.removeprefix(PREFIX).split(":", 1)
    return currency, date.fromisoformat(day)


def is_key(key: str) -> bool:
    return key.startswith(PREFIX)


def method_split(inv: rules.InvoiceSnap, amount: Decimal) -> dict[str, tuple[Decimal, int]]:
    """`amount` shared among the payment methods by the satoshis each brought (net of the network fee),
    in cents, the rounding left on the method that brought most: {method: (fiat, sats)}. An invoice marked
    settled with nothing paid counts as "other"."""
    sats: dict[str, int] = defaultdict(int)
    for p in inv.payments:
        if p.status != "Invalid" and p.currency == "BTC":
            sats[rules.method_label(p.method)] += (p.sats or 0) - p.fee_sats
    total = sum(sats.values())
    if amount == 0:
        return {}
    if total <= 0:
        return {"other": (amount, 0)}
    shares = {m: (rules.cents(amount * s / total), s) for m, s in sats.items() if s}
    biggest = max(shares, key=lambda m: (shares[m][1], m))
    rest = amount - sum(v for v, _ in shares.values())
    shares[biggest] = (shares[biggest][0] + rest, shares[biggest][1])
    return shares


EntryKey = tuple[str, str, str]  # (category, method, ref)


@dataclass(frozen=True)
class Target:
    amount: Decimal
    sats: int
    day: date
    review: str | None = None


@dataclass(frozen=True)
class Entry:
    category: str
    method: str
    ref: str
    amount: Decimal
    sats: int
    day: date
    review: str | None = None


def targets(inv: rules.InvoiceSnap, tz: ZoneInfo) -> dict[EntryKey, Target] | None:
    """What the invoice should stand for in the summaries now, by (category, method, ref); None while
    BTCPay has not decided (nothing moves). Sales and the network fee the customer paid fall on the day the
    money arrived (the last accounted payment), a refund on the day it was made; refunds only of an
    invoice that is in the books, as in per-transaction mode."""
    _, recognised, review = rules.recognise(inv)
    if recognised is None:
        return None
    paid_day = local_day(inv.paid_at or inv.created_at, tz)
    out: dict[EntryKey, Target] = {}
    for method, (amount, sats) in method_split(inv, recognised).items():
        out[(SALE, method, "")] = Target(amount, sats, paid_day, review)
    if recognised > 0 and (fee := rules.fee_value(inv)):
        out[(FEE, "", "")] = Target(fee, 0, paid_day)
    if recognised > 0:
        for refund in inv.refunds:
            fiat = rules.refund_fiat(inv, refund)
            if fiat:
                day = local_day(refund.created_at, tz) if refund.created_at else paid_day
                out[(REFUND, "", refund.pull_payment_id)] = Target(-fiat, 0, day)
    return out


Contribution = tuple[Decimal, int, date]  # (fiat, sats, the day of its latest entry)


def deltas(wanted: dict[EntryKey, Target], have: dict[EntryKey, Contribution]) -> list[Entry]:
    """The entries that bring what an invoice contributed (`have`) to what it should (`wanted`). A
    contribution no longer wanted (an invalidation) is taken back on the day it was booked on, so a
    closed day gets an adjustment."""
    out = []
    for key in sorted(set(wanted) | set(have)):
        amount, sats, booked_day = have.get(key, (Decimal(0), 0, date.min))
        target = wanted.get(key) or Target(Decimal(0), 0, booked_day)
        if target.amount != amount or target.sats != sats:
            out.append(Entry(key[0], key[1], key[2], target.amount - amount, target.sats - sats, target.day,
                             target.review if target.amount > amount else None))
    return out


@dataclass(frozen=True)
class Line:
    label: str
    account: str  # "income" | "fee_collected"
    amount: Decimal  # signed: a refund or a correction downwards is negative
    invoices: int


def day_lines(entries: list[dict[str, Any]]) -> list[Line]:
    """A day document's lines: sales per payment method (on-chain, Lightning, other), the network fees
    customers paid, refunds; zero lines left out."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    who: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in entries:
        key = (e["category"], e["method"] if e["category"] == SALE else "")
        sums[key] += Decimal(e["amount"])
        who[key].add(e["invoice_id"])
    order = [(SALE, m) for m in METHODS] + [(FEE, ""), (REFUND, "")]
    labels = {(SALE, m): f"{m} sales" for m in METHODS} | {(FEE, ""): "network fees paid by customers",
                                                           (REFUND, ""): "refunds"}
    return [Line(labels[k], "fee_collected" if k[0] == FEE else "income", sums[k], len(who[k]))
            for k in order if sums.get(k)]


def summary_body(*, marker: str, day: date, seq: int, lines: list[Line], currency: str, mapping: StoreMapping,
                 ctx: CurrencyContext, rate: Decimal | None, note: str) -> tuple[str, Decimal, dict[str, Any]]:
    """(entity, total, body) of a day document: a Deposit into the bitcoin account with a line per payment
    method, fees and refunds (negative lines), or, when the lines take more out than they bring (an
    adjustment for an invalidation or a refund), a Purchase out of the bitcoin account with the lines
    turned round."""
    net = sum((x.amount for x in lines), Decimal(0))
    entity = "Deposit" if net >= 0 else "Purchase"
    common = {"marker": marker, "txn_date": day, "currency": currency, "ctx": ctx, "exchange_rate": rate,
              "note": note}
    accounts = {"income": mapping.income_account_id, "fee_collected": mapping.fee_collected_account_id}
    if entity == "Deposit":
        # build_deposit takes positive lines only: its header, currency and account, then the signed lines
        body = build_deposit(deposit_account_id=mapping.deposit_account_id,
                             lines=[DepositLine(mapping.income_account_id, Decimal("0.01"))], **common)
        body["Line"] = [_deposit_line(x, accounts[x.account], mapping.class_id) for x in lines]
    else:
        body = build_purchase(paying_account_id=mapping.deposit_account_id, expense_account_id=mapping.income_account_id,
                              amount=-net, class_id=mapping.class_id, **common)
        body["Line"] = [_purchase_line(x, accounts[x.account], mapping.class_id) for x in lines]
    return entity, abs(net), body


def _deposit_line(x: Line, account: str | None, class_id: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"AccountRef": {"value": account}}
    if class_id:
        detail["ClassRef"] = {"value": class_id}
    return {"Amount": x.amount, "DetailType": "DepositLineDetail", "DepositLineDetail": detail,
            "Description": f"{x.label} ({x.invoices} invoice{'s' if x.invoices != 1 else ''})"}


def _purchase_line(x: Line, account: str | None, class_id: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"AccountRef": {"value": account}}
    if class_id:
        detail["ClassRef"] = {"value": class_id}
    return {"Amount": -x.amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": detail,
            "Description": f"{x.label} ({x.invoices} invoice{'s' if x.invoices != 1 else ''})"}


def describe(store_id: str, day: date, seq: int, tz: ZoneInfo, currency: str, entries: list[dict[str, Any]]) -> str:
    """The memo: which day, which document of it, how many invoices and how much bitcoin."""
    invoices = len({e["invoice_id"] for e in entries})
    sats = sum(int(e["sats"]) for e in entries)
    what = "BTCPay daily summary" if seq == 0 else f"BTCPay daily summary adjustment #{seq}"
    return (f"{what} (store {store_id}): {day.isoformat()} ({tz.key}), {currency}, {invoices} invoice"
            f"{'s' if invoices != 1 else ''}, {sats_to_btc(sats)} BTC; the invoices are listed by "
            f"`sovterm sync summary {day.isoformat()} --store {store_id}`")


# -- the ledger -------------------------------------------------------------------------------------


async def contributed(db: Any, store_id: str, invoice_id: str) -> dict[EntryKey, Contribution]:
    rows = await db.fetchall(
        "SELECT category, method, ref, amount, sats, day FROM sync_summary_entries WHERE store_id = ? "
        "AND invoice_id = ? ORDER BY id", (store_id, invoice_id))
    out: dict[EntryKey, Contribution] = {}
    for category, method, ref, amount, sats, day in rows:
        have = out.get((category, method, ref), (Decimal(0), 0, date.min))
        out[(category, method, ref)] = (have[0] + Decimal(amount), have[1] + int(sats), date.fromisoformat(day))
    return out


async def unbound(db: Any, store_id: str, currency: str, day: date) -> list[dict[str, Any]]:
    cols = ("id", "invoice_id", "category", "method", "ref", "amount", "sats", "review")
    rows = await db.fetchall(
        f"SELECT {', '.join(cols)} FROM sync_summary_entries WHERE store_id = ? AND currency = ? AND day = ? "
        "AND doc_seq IS NULL ORDER BY id", (store_id, currency, day.isoformat()))
    return [dict(zip(cols, r, strict=True)) for r in rows]


async def members(db: Any, store_id: str | None = None) -> list[dict[str, Any]]:
    """Every entry with the document it went into (for the books-match report and `sync summary`)."""
    cols = ("store_id", "invoice_id", "currency", "day", "category", "method", "ref", "amount", "sats", "doc_seq")
    where, params = ("WHERE store_id = ?", (store_id,)) if store_id else ("", ())
    rows = await db.fetchall(f"SELECT {', '.join(cols)} FROM sync_summary_entries {where} ORDER BY id", params)
    return [dict(zip(cols, r, strict=True)) for r in rows]


async def day_report(db: Any, day: str, store_id: str | None = None) -> dict[str, Any]:
    """One store-local day in summary mode: its documents (summary and adjustments) and what each invoice
    put into which of them (`doc_seq` None: waiting for the day to close)."""
    try:
        date.fromisoformat(day)
    except ValueError:
        raise UserFacingError(f"not a date: {day!r}", fix="use YYYY-MM-DD, e.g. 2026-01-01") from None
    where, params = ("AND store_id = ?", (store_id,)) if store_id else ("", ())
    docs = await db.fetchall(
        "SELECT store_id, invoice_id, seq, entity, amount, currency, status, qbo_id, review FROM sync_postings "
        f"WHERE invoice_id LIKE ? AND txn_date = ? {where} ORDER BY store_id, invoice_id, seq",
        (PREFIX + "%", day, *params))
    rows = await db.fetchall(
        "SELECT store_id, invoice_id, currency, category, method, ref, amount, sats, doc_seq FROM "
        f"sync_summary_entries WHERE day = ? {where} ORDER BY store_id, currency, id", (day, *params))
    doc_keys = ("store_id", "key", "seq", "entity", "amount", "currency", "status", "qbo_id", "review")
    entry_keys = ("store_id", "invoice_id", "currency", "category", "method", "ref", "amount", "sats", "doc_seq")
    return {"day": day, "store_id": store_id, "documents": [dict(zip(doc_keys, r, strict=True)) for r in docs],
            "invoices": [dict(zip(entry_keys, r, strict=True)) for r in rows]}


# -- the books-match report -------------------------------------------------------------------------


@dataclass
class SummaryCheck:
    """The summaries' part of the books-match report: which invoices and document keys it answered for,
    its differences, and what the day rows show on the QuickBooks side (from the entries of the documents
    found, which match those documents to the cent or are a difference)."""

    handled: set[tuple[str, str]]
    differences: list[dict[str, Any]]
    days: dict[tuple[str, str], dict[str, Any]]
    waiting: int = 0  # entries of days not closed yet (in no document, by design)


async def check(db: Any, want: dict[tuple[str, str], tuple[str, Decimal, Decimal, str]],
                have: dict[tuple[str, str], list[dict[str, Any]]], date_from: str, date_to: str,
                now: float | None = None) -> SummaryCheck:
    """Every summarised invoice's net (what BTCPay says, as for any invoice) must equal its entries that sit
    in a document QuickBooks shows (or that cancelled out); every summary document must equal the entries
    bound to it; a closed day's entries must all be in a document. Each entry is bound to one document at
    most, so together: every sat lands once."""
    now = time.time() if now is None else now
    out = SummaryCheck(set(), [], defaultdict(lambda: {"qbo_count": 0, "qbo_sales": Decimal(0),
                                                       "qbo_refunds": Decimal(0)}))
    entries = await members(db)
    if not entries:
        return out
    tzs: dict[str, Any] = {}
    for row in await db.fetchall("SELECT key, value FROM kv WHERE key LIKE 'sync:mode:%'"):
        tzs[row[0].removeprefix("sync:mode:")] = zone(str(json.loads(row[1]).get("timezone") or "UTC"))
    live: dict[tuple[str, str, int], Decimal] = {}  # (store, key, seq) → the document's signed amount
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for (store_id, key), docs in have.items():
        if not is_key(key):
            continue
        out.handled.add((store_id, key))
        markers = {marker_for(KIND, store_id, key, seq): seq for seq in range(len(docs) + 64)}
        for doc in docs:
            seq = markers.get(doc["marker"])
            if seq is None or doc["voided"]:
                continue
            found[(store_id, key, seq)] = doc
            live[(store_id, key, seq)] = abs(doc["amount"]) * (-1 if doc["entity"] == "Purchase" else 1)
    bound: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    by_invoice: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        by_invoice[(e["store_id"], e["invoice_id"])].append(e)
        if e["doc_seq"] is not None and e["doc_seq"] != NO_DOCUMENT:
            bound[(e["store_id"], key_of(e["currency"], date.fromisoformat(e["day"])), e["doc_seq"])].append(e)

    def closed(e: dict[str, Any]) -> bool:
        tz = tzs.get(e["store_id"]) or tzs.get("default") or zone("UTC")
        return now >= closes_at(date.fromisoformat(e["day"]), tz)

    def in_books(e: dict[str, Any]) -> bool:
        if e["doc_seq"] == NO_DOCUMENT:
            return True
        if e["doc_seq"] is None:
            return False
        return (e["store_id"], key_of(e["currency"], date.fromisoformat(e["day"])), e["doc_seq"]) in live

    # the documents: each equals its entries
    postings = await db.fetchall(
        "SELECT store_id, invoice_id, seq, entity, txn_date, qbo_id FROM sync_postings WHERE invoice_id LIKE ? "
        "AND txn_date BETWEEN ? AND ? AND status != 'voided'", (PREFIX + "%", date_from, date_to))
    for store_id, key, seq, entity, day, qbo_id in postings:
        sums = sum((Decimal(e["amount"]) for e in bound.get((store_id, key, seq), [])), Decimal(0))
        doc = found.get((store_id, key, seq))
        shown = live.get((store_id, key, seq))
        if shown is None or shown != sums:
            out.differences.append({
                "store_id": store_id, "invoice_id": f"{key} #{seq}", "date": day, "expected": str(sums),
                "booked": str(shown or 0), "currency": parse_key(key)[0],
                "problem": "no summary document in QuickBooks" if shown is None else
                f"the summary document shows {shown}, its invoices add up to {sums}",
                "documents": [f"{entity}:{doc['id'] if doc else qbo_id}"]})
        if shown is not None:
            d = out.days[(day, parse_key(key)[0])]
            d["qbo_count"] += 1
            for e in bound.get((store_id, key, seq), []):
                if e["category"] == REFUND:
                    d["qbo_refunds"] -= Decimal(e["amount"])
                else:
                    d["qbo_sales"] += Decimal(e["amount"])
    # the invoices: each lands once
    for inv_key, rows in by_invoice.items():
        expected = want.get(inv_key)
        days = {e["day"] for e in rows}
        if expected is None and not any(date_from <= d <= date_to for d in days):
            continue
        out.handled.add(inv_key)
        net = (expected[1] - expected[2] if expected[1] > 0 else Decimal(0)) if expected else Decimal(0)
        waiting = [e for e in rows if e["doc_seq"] is None and not closed(e)]
        out.waiting += len(waiting)
        booked = sum((Decimal(e["amount"]) for e in rows if in_books(e)), Decimal(0))
        pending = sum((Decimal(e["amount"]) for e in waiting), Decimal(0))
        if booked + pending != net:
            out.differences.append({
                "store_id": inv_key[0], "invoice_id": inv_key[1], "date": expected[0] if expected else min(days),
                "expected": str(net), "booked": str(booked), "currency": rows[0]["currency"],
                "problem": f"its daily summaries show {booked}, BTCPay says {net}",
                "documents": sorted({key_of(e["currency"], date.fromisoformat(e["day"])) + f" #{e['doc_seq']}"
                                     for e in rows if e["doc_seq"] is not None})})
    return out
