"""Per-day aggregates of the invoice ledger, so a report over years reads days, not a million invoices.

What each invoice adds (its *contribution*: created-day counts by status, and once settled its volume,
sats, payment methods and item on the day the money arrived) is worked out by `contribution` from the
same rows, with the same rules, as the raw report (`report.summarize`), and kept per invoice in
`analytics_invoice_facts`. When the intake records a changed invoice (`InvoiceAggregates.on_invoice`, in
the transaction that wrote it), the old contribution is taken out and the new one put in, so a status
change (settled → invalid, a late payment) moves the invoice between buckets instead of counting it twice.
Money is summed as `Decimal` in Python; SQLite only stores the exact strings.

Days are those of one zone, the `analytics.timezone` setting; a report in another zone reads raw rows.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sovterm.analytics.report import (
    MARKED,
    NO_ITEM,
    TOP_ITEMS,
    Bucket,
    Invoice,
    ItemShare,
    MethodShare,
    Payment,
    Period,
    Report,
    label,
    periods,
    takings,
)

log = logging.getLogger(__name__)

INVOICE_COLUMNS = (
    "store_id, invoice_id, status, additional_status, COALESCE(currency, ''), amount, paid_amount, created_at, "
    "paid_at, status_changed_at, COALESCE(json_extract(metadata, '$.itemCode'), item_desc)"
)
PAYMENT_COLUMNS = (
    "p.store_id, p.invoice_id, p.payment_method, p.payment_method_raw, p.amount_sats, p.amount, m.rate"
)
PAYMENT_JOIN = (
    "FROM invoice_payments p LEFT JOIN invoice_payment_methods m USING (store_id, invoice_id, payment_method_raw)"
)
REBUILD_CHUNK = 2000  # invoices per backfill transaction: the write lock is held for tens of milliseconds


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def invoice_of(r: Sequence[Any]) -> Invoice:
    """An `Invoice` from a row of `INVOICE_COLUMNS`: settled when the last accounted payment arrived, else
    (marked settled by hand) when sovterm first saw it settled."""
    return Invoice(r[0], r[1], r[2], r[3], r[4], _decimal(r[5]), _decimal(r[6]), r[7],
                   r[8] if r[8] is not None else (r[9] // 1000 if r[2] == "Settled" else None), r[10])


def payment_of(r: Sequence[Any]) -> Payment:
    """A `Payment` from a row of `PAYMENT_COLUMNS`, valued in the invoice currency at its method's rate."""
    return Payment(r[0], r[1], r[2] if r[2] != "other" else r[3], r[4],
                   None if r[6] is None else Decimal(r[5]) * Decimal(r[6]))


# -- what one invoice adds -----------------------------------------------------------------------------

# Each table's value columns, in order, and their kinds: the first is always the invoice count (a row
# falling to 0 is deleted, as if the invoices had never been counted).
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "c": ("analytics_created_days", ("day", "currency", "status", "additional_status"), (("invoices", "int"),)),
    "s": ("analytics_settled_days", ("day", "currency"),
          (("invoices", "int"), ("volume", "dec"), ("sats", "int"), ("exponents", "exp"))),
    "m": ("analytics_method_days", ("day", "currency", "method"),
          (("invoices", "int"), ("payments", "int"), ("sats", "int"), ("volume", "dec"))),
    "i": ("analytics_item_days", ("day", "currency", "item"), (("invoices", "int"), ("volume", "dec"))),
}
Deltas = dict[tuple[str, str, tuple[str, ...]], list[Any]]  # (table code, store, key) -> values to add


def _day(at: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, zone).date().isoformat()


def contribution(invoice: Invoice, payments: Iterable[Payment], zone: ZoneInfo) -> list[Any]:
    """What `invoice` adds to the aggregates, by the rules of `report.summarize`, as its fact (JSON-ready):
    [created day, currency, status, additional status, settled day or None, takings, sats, item,
    [[method, payments, sats, volume], ...]] (no payments: marked settled by hand)."""
    fact: list[Any] = [_day(invoice.created_at, zone), invoice.currency, invoice.status, invoice.additional_status,
                       None, None, 0, None, []]
    if invoice.status != "Settled":
        return fact
    by_method: dict[str, list[Any]] = {}
    sats = 0
    for p in payments:
        share = by_method.get(p.method)
        if share is None:
            share = by_method[p.method] = [p.method, 0, 0, Decimal(0)]
        share[1] += 1
        share[2] += p.sats or 0
        share[3] += p.value or Decimal(0)
        sats += p.sats or 0
    fact[4:] = [_day(invoice.settled_at or invoice.created_at, zone), str(takings(invoice)), sats,
                invoice.item or NO_ITEM, [[m, n, s, str(v)] for m, n, s, v in sorted(by_method.values())]]
    return fact


def _dump(fact: list[Any]) -> str:
    return json.dumps(fact, separators=(",", ":"))


# -- keeping them -------------------------------------------------------------------------------------


def _bump(deltas: Deltas, key: tuple[str, str, tuple[str, ...]], values: list[Any]) -> None:
    into = deltas.get(key)
    if into is None:
        deltas[key] = values
        return
    for n, v in enumerate(values):
        if isinstance(v, dict):  # exponents: counts may go negative for a while
            merged = dict(into[n])
            for e, count in v.items():
                merged[e] = merged.get(e, 0) + count
            into[n] = merged
        else:
            into[n] += v


def _add(deltas: Deltas, store_id: str, fact: list[Any], sign: int) -> None:
    """Add `sign` times what `fact` counts to `deltas`."""
    created_day, currency, status, additional, day, taken_text, sats, item, methods = fact
    _bump(deltas, ("c", store_id, (created_day, currency, status, additional)), [sign])
    if day is None:
        return
    taken = Decimal(taken_text)
    signed = taken * sign
    _bump(deltas, ("s", store_id, (day, currency)),
          [sign, signed, sats * sign, {int(taken.as_tuple().exponent): sign}])
    if not methods:
        _bump(deltas, ("m", store_id, (day, currency, MARKED)), [sign, 0, 0, signed])
    for method, payments, method_sats, volume in methods:
        _bump(deltas, ("m", store_id, (day, currency, method)),
              [sign, payments * sign, method_sats * sign, Decimal(volume) * sign])
    _bump(deltas, ("i", store_id, (day, currency, item)), [sign, signed])


async def _write(conn: Any, deltas: Deltas) -> None:
    """Add `deltas` to the stored rows (read, add in Python, write back; a row whose count falls to 0 goes)."""
    for (code, store_id, key), values in deltas.items():
        table, key_names, value_cols = TABLES[code]
        where = " AND ".join(f"{k} = ?" for k in ("store_id", *key_names))
        names = [c for c, _ in value_cols]
        async with conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {where}", (store_id, *key)) as cur:
            row = await cur.fetchone()
        if row is not None:
            values = [_plus(kind, v, stored) for (_, kind), v, stored in zip(value_cols, values, row, strict=True)]
        if values[0] < 0:
            raise RuntimeError(f"analytics aggregate {table} {store_id} {key} would fall below zero")
        if values[0] == 0:
            await conn.execute(f"DELETE FROM {table} WHERE {where}", (store_id, *key))
            continue
        cols = ("store_id", *key_names, *names)
        await conn.execute(
            f"INSERT OR REPLACE INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            (store_id, *key, *(_stored(v) for v in values)))


def _plus(kind: str, value: Any, stored: Any) -> Any:
    if kind == "dec":
        return value + Decimal(stored)
    if kind == "exp":
        total = {int(e): n for e, n in json.loads(stored).items()}
        for e, n in value.items():
            total[e] = total.get(e, 0) + n
        return total
    return value + stored


def _stored(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return json.dumps({str(e): n for e, n in sorted(value.items()) if n})
    return value


async def _fact(conn: Any, store_id: str, invoice_id: str) -> str | None:
    async with conn.execute("SELECT contribution FROM analytics_invoice_facts WHERE store_id = ? AND invoice_id = ?",
                            (store_id, invoice_id)) as cur:
        row = await cur.fetchone()
    return None if row is None else row[0]


async def record(conn: Any, store_id: str, invoice_id: str, zone: ZoneInfo) -> None:
    """Bring the aggregates up to date with one invoice as it now stands in the ledger (inside the
    transaction that changed it)."""
    async with conn.execute(f"SELECT {INVOICE_COLUMNS} FROM invoices WHERE store_id = ? AND invoice_id = ?",
                            (store_id, invoice_id)) as cur:
        row = await cur.fetchone()
    async with conn.execute(f"SELECT {PAYMENT_COLUMNS} {PAYMENT_JOIN} WHERE p.store_id = ? AND p.invoice_id = ? "
                            "AND p.status != 'Invalid'", (store_id, invoice_id)) as cur:
        pay_rows = await cur.fetchall()
    new = None if row is None else contribution(invoice_of(row), [payment_of(p) for p in pay_rows], zone)
    old, fact = await _fact(conn, store_id, invoice_id), None if new is None else _dump(new)
    if old == fact:
        return
    deltas: Deltas = {}
    if old is not None:
        _add(deltas, store_id, json.loads(old), -1)
    if new is not None:
        _add(deltas, store_id, new, 1)
    await _write(conn, deltas)
    if row is None:
        await conn.execute("DELETE FROM analytics_invoice_facts WHERE store_id = ? AND invoice_id = ?",
                           (store_id, invoice_id))
    else:
        await conn.execute("INSERT OR REPLACE INTO analytics_invoice_facts(store_id, invoice_id, contribution) "
                           "VALUES (?, ?, ?)", (store_id, invoice_id, fact))


class InvoiceAggregates:
    """The intake's invoice port (see `BTCPayIntake`): keeps the aggregates in the recording transaction."""

    def __init__(self, zone: str) -> None:
        self.zone_name = zone
        self.zone = ZoneInfo(zone)

    async def on_invoice(self, conn: Any, store_id: str, invoice: Any) -> None:
        """A fault here must never cost the ledger its write (the books depend on it, analytics do not): its
        writes are undone and the aggregates set aside, so reports read raw rows until the next start
        rebuilds them. Aggregates of another zone (set aside, or before the start's rebuild after a new
        `analytics.timezone`) are left alone: the rebuild starts them over."""
        async with conn.execute("SELECT zone FROM analytics_aggregate_state WHERE id = 1") as cur:
            row = await cur.fetchone()
        if row is None or row[0] != self.zone_name:
            return
        await conn.execute("SAVEPOINT analytics_aggregates")
        try:
            await record(conn, store_id, invoice.id, self.zone)
        except Exception:
            log.exception("analytics aggregates set aside (rebuilt at the next start) after invoice %s", invoice.id)
            await conn.execute("ROLLBACK TO analytics_aggregates")
            await conn.execute("UPDATE analytics_aggregate_state SET zone = '', ready = 0 WHERE id = 1")
        await conn.execute("RELEASE analytics_aggregates")


async def state(db: Any) -> tuple[str, bool]:
    row = await db.fetchone("SELECT zone, ready FROM analytics_aggregate_state WHERE id = 1")
    return (row[0], bool(row[1])) if row is not None else ("UTC", False)


async def rebuild(db: Any, zone: str, *, chunk: int = REBUILD_CHUNK) -> int:
    """Count every invoice not counted yet (a ledger from before the aggregates, or after a change of
    `analytics.timezone`, which starts them over), a chunk per transaction; returns how many were added.
    Chunks follow each store's invoices in creation order, so one touches a few days' rows. The intake
    keeps recording meanwhile: an invoice it records gets its fact, and a chunk skips it."""
    stored_zone, ready = await state(db)
    if stored_zone != zone:
        async with db.transaction() as conn:
            for table in ("analytics_invoice_facts", *(t for t, _, _ in TABLES.values())):
                await conn.execute(f"DELETE FROM {table}")
            await conn.execute("UPDATE analytics_aggregate_state SET zone = ?, ready = 0 WHERE id = 1", (zone,))
    elif ready:
        return 0
    tz = ZoneInfo(zone)
    added = 0
    for (store_id,) in await db.fetchall("SELECT DISTINCT store_id FROM invoices"):
        after: tuple[int, int] = (-(2**62), 0)
        while True:
            async with db.transaction() as conn:
                async with conn.execute(
                        "SELECT created_at, rowid FROM invoices WHERE store_id = ? AND (created_at, rowid) > (?, ?) "
                        "ORDER BY created_at, rowid LIMIT 1 OFFSET ?", (store_id, *after, chunk - 1)) as cur:
                    row = await cur.fetchone()
                last = (row[0], row[1]) if row is not None else (2**62, 0)
                added += await _count_span(conn, store_id, after, last, tz)
            if row is None:
                break
            after = last
            await asyncio.sleep(0)  # let the intake in between chunks
    async with db.transaction() as conn:
        await conn.execute("UPDATE analytics_aggregate_state SET ready = 1 WHERE id = 1")
    return added


async def _count_span(conn: Any, store_id: str, after: tuple[int, int], last: tuple[int, int], tz: ZoneInfo) -> int:
    """Count the store's invoices in (after, last] (by creation time, rowid) that have no fact yet."""
    span = ("i.store_id = ? AND (i.created_at, i.rowid) > (?, ?) AND (i.created_at, i.rowid) <= (?, ?) AND NOT EXISTS "
            "(SELECT 1 FROM analytics_invoice_facts f WHERE f.store_id = i.store_id AND f.invoice_id = i.invoice_id)")
    args = (store_id, *after, *last)
    async with conn.execute(f"SELECT {INVOICE_COLUMNS} FROM invoices i WHERE {span}", args) as cur:
        rows = await cur.fetchall()
    by_invoice: dict[str, list[Payment]] = defaultdict(list)
    async with conn.execute(f"SELECT {PAYMENT_COLUMNS} {PAYMENT_JOIN} JOIN invoices i USING (store_id, invoice_id) "
                            f"WHERE p.status != 'Invalid' AND {span}", args) as cur:
        for p in await cur.fetchall():
            by_invoice[p[1]].append(payment_of(p))
    deltas: Deltas = {}
    facts = []
    for r in rows:
        fact = contribution(invoice_of(r), by_invoice.get(r[1], ()), tz)
        _add(deltas, store_id, fact, 1)
        facts.append((store_id, r[1], _dump(fact)))
    await _write(conn, deltas)
    await conn.executemany(
        "INSERT INTO analytics_invoice_facts(store_id, invoice_id, contribution) VALUES (?, ?, ?)", facts)
    return len(rows)


# -- the report from them -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    date_from: date
    date_to: date
    store_id: str | None
    currency: str | None

    def where(self, first: date | None = None) -> tuple[str, list[Any]]:
        sql, args = "day >= ? AND day <= ?", [(first or self.date_from).isoformat(), self.date_to.isoformat()]
        if self.store_id is not None:
            sql, args = sql + " AND store_id = ?", [*args, self.store_id]
        if self.currency is not None:
            sql, args = sql + " AND currency = ?", [*args, self.currency]
        return sql, args


@functools.lru_cache(maxsize=256)
def _exponents(stored: str) -> frozenset[int]:
    """The exponents a stored row's volumes have (its counts are all positive); rows share a handful."""
    return frozenset(int(k) for k in json.loads(stored))


def _total(volumes: str) -> Decimal:
    """The sum of comma-joined exact decimals (a decimal's text never has a comma), from Decimal(0) as
    `summarize` adds them."""
    return sum(map(Decimal, volumes.split(",")), Decimal(0))


def _most(counts: Counter[str]) -> str | None:
    counts = Counter({c: n for c, n in counts.items() if n})
    return min(counts, key=lambda c: (-counts[c], c)) if counts else None


async def aggregated_report(
    db: Any, date_from: date, date_to: date, *, store_id: str | None, by: Period, tz: str,
    currency: str | None, fallback_from: date,
) -> Report:
    """The invoice part of the report from the aggregates (refunds and payouts are added by the caller);
    equal to `summarize` over the raw rows. `fallback_from`: the first created day whose settled
    invoices pick the report currency when nothing settled in the period (as the raw read does)."""
    scope = Scope(date_from, date_to, store_id, currency)
    where, args = scope.where()
    # a month's rows are added up by SQLite (counts are integers); days and weeks need each day
    day_of = "substr(day, 1, 7) || '-01'" if by == "month" else "day"
    created = await db.fetchall(
        f"SELECT {day_of} AS d, status, additional_status, SUM(invoices) FROM analytics_created_days WHERE {where} "
        "GROUP BY d, status, additional_status", args)
    # money is exact decimal text: SQLite groups the rows and joins their amounts, Python adds them up
    settled = await db.fetchall(
        f"SELECT {day_of} AS d, currency, SUM(invoices), group_concat(volume), SUM(sats), "
        f"json_group_array(DISTINCT exponents) FROM analytics_settled_days WHERE {where} GROUP BY d, currency", args)
    per_currency: Counter[str] = Counter()
    for row in settled:
        per_currency[row[1]] += row[2]
    main = currency or _most(per_currency)
    if main is None:
        fb_where, fb_args = scope.where(fallback_from)
        rows = await db.fetchall(f"SELECT currency, SUM(invoices) FROM analytics_created_days WHERE {fb_where} "
                                 "AND status = 'Settled' GROUP BY currency", fb_args)
        main = _most(Counter({r[0]: r[1] for r in rows})) or "USD"
    report = Report(date_from, date_to, by, tz, main)
    series = {p: Bucket(p) for p in periods(date_from, date_to, by)}
    labels: dict[str, str] = {}

    def bucket(day: str) -> Bucket:
        if day not in labels:
            labels[day] = label(date.fromisoformat(day), by)
        return series.setdefault(labels[day], Bucket(labels[day]))

    for day, status, additional, n in created:
        report.created += n
        report.statuses[status] = report.statuses.get(status, 0) + n
        report.converted += n if status == "Settled" else 0
        report.expired += n if status == "Expired" else 0
        report.invalid += n if status == "Invalid" else 0
        report.partial += n if additional == "PaidPartial" else 0
        report.overpaid += n if additional == "PaidOver" else 0
        bucket(day).created += n

    exponents: dict[str, set[int]] = defaultdict(set)
    for day, cur, n, volumes, sats, exps in settled:
        amount = _total(volumes)
        report.volume_by_currency[cur] = report.volume_by_currency.get(cur, Decimal(0)) + amount
        for stored in json.loads(exps):
            exponents[cur] |= _exponents(stored)
        if cur != main:
            continue
        b = bucket(day)
        report.settled += n
        report.volume += amount
        report.volume_sats += sats
        b.settled += n
        b.volume += amount
        b.sats += sats
    for cur, total in report.volume_by_currency.items():  # shown with the places its invoices had
        places = min([0, *exponents[cur]])
        report.volume_by_currency[cur] = total.quantize(Decimal(1).scaleb(places))

    main_where, main_args = Scope(date_from, date_to, store_id, main).where()
    methods: dict[str, MethodShare] = {}
    for method, n, payments, sats, volumes in await db.fetchall(
            f"SELECT method, SUM(invoices), SUM(payments), SUM(sats), group_concat(volume) FROM analytics_method_days "
            f"WHERE {main_where} GROUP BY method", main_args):
        methods[method] = MethodShare(method, payments, n, sats, _total(volumes))
    items: dict[str, ItemShare] = {}
    for item, n, volumes in await db.fetchall(
            f"SELECT item, SUM(invoices), group_concat(volume) FROM analytics_item_days WHERE {main_where} "
            "GROUP BY item", main_args):
        items[item] = ItemShare(item, n, _total(volumes))
    report.methods = sorted(methods.values(), key=lambda m: (-m.volume, -m.payments, m.method))
    report.items = sorted(items.values(), key=lambda i: (-i.volume, -i.invoices, i.item))[:TOP_ITEMS]
    report.series = [series[p] for p in sorted(series)]
    return report
