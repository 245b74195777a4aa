"""The reconciliation check: what BTCPay settled against what QuickBooks holds, day by day.

Expected: for every invoice in the ledger with money in the period, the net amount the rules say
the books should show (recognised minus refunds). Actual: sovterm's documents found in QuickBooks by
date (TxnDate in the period, DocNumber = one of our markers), net of voids (a voided document counts
0) and with refunds negative. Any invoice with no document, a wrong amount, or a document sovterm
does not know, makes the books "differ" and the command exit non-zero.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sovterm.qbo.client import QBOClient, quote_literal
from sovterm.qbo.postings import MARKER_PREFIX
from sovterm.sync import rules, store

ENTITIES = {"SalesReceipt": 1, "Deposit": 1, "Payment": 1, "RefundReceipt": -1}


@dataclass
class Report:
    date_from: str
    date_to: str
    days: list[dict[str, Any]] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.date_from, "to": self.date_to, "ok": self.ok, "days": self.days,
                "differences": self.differences}


async def expected(db: Any, date_from: str, date_to: str, home: str) -> dict[tuple[str, str], tuple[str, Decimal, str]]:
    """{(store, invoice): (day, net amount, currency)} for invoices with money in the period."""
    start = date.fromisoformat(date_from)
    end = date.fromisoformat(date_to)
    rows = await db.fetchall(
        "SELECT store_id, invoice_id FROM invoices WHERE status IN ('Settled', 'Expired', 'Invalid') "
        "AND COALESCE(paid_at, created_at) BETWEEN ? AND ?",
        (_ts(start) - 86_400, _ts(end) + 2 * 86_400),
    )
    out: dict[tuple[str, str], tuple[str, Decimal, str]] = {}
    for store_id, invoice_id in rows:
        snap = await store.load_snapshot(db, store_id, invoice_id)
        if snap is None:
            continue
        day = rules.txn_date(snap)
        if not start <= day <= end:
            continue
        _, recognised, _ = rules.recognise(snap)
        if recognised is None:
            continue
        resolution = await store.get_resolution(db, store_id, invoice_id)
        if resolution is not None and resolution.kind == "ignore":
            continue
        refunds = sum((rules.refund_fiat(snap, r) or Decimal(0) for r in snap.refunds), Decimal(0))
        net = recognised - refunds if recognised > 0 else Decimal(0)
        if net != 0 or recognised != 0:
            out[(store_id, invoice_id)] = (day.isoformat(), net, snap.currency)
    return out


def _ts(d: date) -> int:
    from datetime import datetime, timezone

    return int(datetime.combine(d, datetime.min.time(), timezone.utc).timestamp())


async def actual(client: QBOClient, db: Any, date_from: str, date_to: str) -> tuple[
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
            number = str(doc.get("DocNumber") or "")
            if not number.startswith(MARKER_PREFIX):
                continue
            voided = doc.get("TxnStatus") == "Voided"
            entry = {"entity": entity, "id": str(doc["Id"]), "marker": number, "date": doc.get("TxnDate"),
                     "amount": Decimal(0) if voided else sign * Decimal(str(doc.get("TotalAmt", "0"))),
                     "voided": voided}
            if number in markers:
                by_invoice[markers[number]].append(entry)
            else:
                unknown.append(entry)
    return by_invoice, unknown


async def check(db: Any, client: QBOClient, date_from: str, date_to: str, home: str = "USD",
                only_store: str | None = None) -> Report:
    """With `only_store`, only that store's invoices and documents (the documents sovterm does not know
    belong to no store, so they show in the report over all stores)."""
    want = await expected(db, date_from, date_to, home)
    have, unknown = await actual(client, db, date_from, date_to)
    if only_store is not None:
        want = {k: v for k, v in want.items() if k[0] == only_store}
        have = defaultdict(list, {k: v for k, v in have.items() if k[0] == only_store})
        unknown = []
    report = Report(date_from, date_to)
    days: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "btcpay_count": 0, "btcpay_total": Decimal(0), "qbo_count": 0, "qbo_total": Decimal(0)})
    for (store_id, invoice_id), (day, net, currency) in sorted(want.items(), key=lambda kv: kv[1][0]):
        d = days[day]
        d["btcpay_count"] += 1
        d["btcpay_total"] += net
        docs = have.get((store_id, invoice_id), [])
        booked = sum((x["amount"] for x in docs), Decimal(0))
        live = [x for x in docs if not x["voided"]]
        if net != 0 and not live:
            problem = "no document in QuickBooks"
        elif booked != net:
            problem = f"QuickBooks shows {booked}, BTCPay says {net}"
        else:
            problem = None
        if problem:
            report.differences.append({"store_id": store_id, "invoice_id": invoice_id, "date": day,
                                       "expected": str(net), "booked": str(booked), "currency": currency,
                                       "problem": problem, "documents": [f"{x['entity']}:{x['id']}" for x in docs]})
    for key, docs in have.items():
        for x in docs:
            if x["voided"]:
                continue
            day = str(x["date"])
            days[day]["qbo_count"] += 1
            days[day]["qbo_total"] += x["amount"]
        if key not in want and any(not x["voided"] for x in docs):
            report.differences.append({"store_id": key[0], "invoice_id": key[1], "date": docs[0]["date"],
                                       "expected": "0", "booked": str(sum(x["amount"] for x in docs)),
                                       "problem": "document for an invoice BTCPay does not show as paid in the period",
                                       "documents": [f"{x['entity']}:{x['id']}" for x in docs]})
    for x in unknown:
        if not x["voided"]:
            report.differences.append({"store_id": None, "invoice_id": None, "date": x["date"], "expected": "0",
                                       "booked": str(x["amount"]), "problem": "sovterm-marked document unknown to this "
                                       "installation", "documents": [f"{x['entity']}:{x['id']}"]})
    report.days = [{"date": day, **{k: str(v) for k, v in vals.items()}} for day, vals in sorted(days.items())]
    return report


def format_report(data: dict[str, Any]) -> str:
    scope = f" for store {data['store_id']}" if data.get("store_id") else ""
    lines = [f"Reconciliation {data['from']} to {data['to']}{scope}: "
             + ("BOOKS MATCH" if data["ok"] else f"BOOKS DIFFER ({len(data['differences'])} item(s))"), "",
             f"{'date':<12}{'BTCPay #':>9}{'BTCPay total':>15}{'QBO #':>7}{'QBO total':>15}"]
    for d in data["days"]:
        mark = "" if d["btcpay_total"] == d["qbo_total"] and d["btcpay_count"] == d["qbo_count"] else "  <-"
        lines.append(f"{d['date']:<12}{d['btcpay_count']:>9}{d['btcpay_total']:>15}{d['qbo_count']:>7}"
                     f"{d['qbo_total']:>15}{mark}")
    if data["differences"]:
        lines += ["", "Differences:"]
        for x in data["differences"]:
            lines.append(f"  {x['date']}  invoice {x['invoice_id'] or '-'}: {x['problem']} "
                         f"(expected {x['expected']}, booked {x['booked']}) {' '.join(x['documents'])}")
    return "\n".join(lines)
