"""The payout mirror and the operator's actions on payouts (approve, cancel, mark paid).

The mirror is fed by a poll of the selected stores and by payout webhooks. Actions name the revision
the operator saw in the mirror: BTCPay refuses an approval of an older revision, and before a cancel or
mark-paid we re-read the payout and refuse if it changed. A refused action refreshes the mirror and is
never retried. Above a configured amount an approval needs two different admins (four eyes).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

import aiosqlite

from sovterm.amounts import plain
from sovterm.btcpay.errors import BTCPayError, BTCPayNotFound
from sovterm.btcpay.models import Payout, PayoutState, PullPayment, btc_to_sats, btc_to_sats_rounded
from sovterm.btcpay.webhooks import PayoutEvent, WebhookEvent
from sovterm.errors import UserFacingError
from sovterm.store.audit import Recorder
from sovterm.store.db import Database
from sovterm.tasks import Background

log = logging.getLogger("sovterm.payouts")

FINAL_STATES = (PayoutState.COMPLETED.value, PayoutState.CANCELLED.value)
COLUMNS = ("store_id", "payout_id", "state", "revision", "original_amount", "original_currency", "payout_amount",
           "payout_currency", "amount_sats", "payment_method", "destination", "pull_payment_id", "pull_payment_name",
           "metadata", "created_at", "completed_at", "updated_at")


class PayoutBTCPay(Protocol):
    async def list_payouts(self, store_id: str, *, include_cancelled: bool = False) -> list[Payout]: ...
    async def get_payout(self, store_id: str, payout_id: str) -> Payout: ...
    async def approve_payout(self, store_id: str, payout_id: str, *, revision: int, rate_rule: str | None = None) -> Payout: ...
    async def cancel_payout(self, store_id: str, payout_id: str) -> None: ...
    async def mark_payout_paid(self, store_id: str, payout_id: str) -> None: ...
    async def get_pull_payment(self, pull_payment_id: str) -> PullPayment: ...


class CompletedPort(Protocol):
    """Who acts on a payout the mirror first records as Completed (sync queues its Transfer), inside the
    transaction that records it."""

    async def on_payout_completed(self, conn: aiosqlite.Connection, row: dict[str, Any]) -> None: ...


BTCPayFor = Callable[[str], Awaitable[PayoutBTCPay]]


class StalePayout(UserFacingError):
    code = "payout_stale"


def _sats(amount: Decimal | None, currency: str | None) -> int | None:
    if amount is None or (currency or "").upper() != "BTC":
        return None
    try:
        return btc_to_sats(amount)
    except ValueError:  # Lightning payouts may carry millisatoshis
        return btc_to_sats_rounded(amount)


def amount_sats(p: Payout) -> int | None:
    """Satoshis leaving the wallet: the approved amount, else the claim when it is in BTC; None if unknown."""
    sats = _sats(p.payout_amount, p.payout_currency)
    return sats if sats is not None else _sats(p.original_amount, p.original_currency)


class PayoutService:
    def __init__(
        self,
        db: Database,
        btcpay_for: BTCPayFor,
        stores: Callable[[], Awaitable[list[str]]],
        four_eyes_above_sats: Callable[[], int | None],
        *,
        completed: CompletedPort | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.btcpay_for = btcpay_for
        self.stores = stores
        self.four_eyes_above_sats = four_eyes_above_sats
        self.clock = clock
        self.completed = completed
        self._pp_names: dict[str, str | None] = {}
        self._background = Background(log)

    # -- the mirror --------------------------------------------------------------------------------

    async def get(self, payout_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone(f"SELECT {', '.join(COLUMNS)} FROM payouts WHERE payout_id = ?", (payout_id,))
        return _row(row) if row else None

    async def list(self, *, include_final: bool = True) -> list[dict[str, Any]]:
        where = "" if include_final else f" WHERE state NOT IN ({', '.join('?' for _ in FINAL_STATES)})"
        rows = await self.db.fetchall(
            f"SELECT {', '.join(COLUMNS)} FROM payouts{where} ORDER BY created_at DESC, payout_id",
            () if include_final else FINAL_STATES,
        )
        pending = {(r[0], r[1]): (r[2], r[3]) for r in await self.db.fetchall(
            "SELECT store_id, payout_id, approved_by, revision FROM payout_approvals")}
        out = []
        for row in rows:
            item = _row(row)
            first = pending.get((item["store_id"], item["payout_id"]))
            item["pending_approval_by"] = first[0] if first and first[1] == item["revision"] else None
            item["needs_four_eyes"] = self.needs_four_eyes(item)
            out.append(item)
        return out

    async def awaiting_approval(self) -> tuple[int, float | None]:
        """How many mirrored payouts wait for approval, and BTCPay's creation time of the oldest (the alert)."""
        row = await self.db.fetchone("SELECT COUNT(*), MIN(created_at) FROM payouts WHERE state = ?",
                                     (PayoutState.AWAITING_APPROVAL.value,))
        return (int(row[0]), None if row[1] is None else float(row[1])) if row else (0, None)

    async def _pull_payment_name(self, client: PayoutBTCPay, pp_id: str | None) -> str | None:
        if pp_id is None:
            return None
        if pp_id not in self._pp_names:
            try:
                self._pp_names[pp_id] = (await client.get_pull_payment(pp_id)).name
            except BTCPayError as exc:
                log.warning("cannot read pull payment %s: %s", pp_id, exc)
                return None
        return self._pp_names[pp_id]

    async def upsert(self, conn: aiosqlite.Connection, store_id: str, p: Payout, pp_name: str | None) -> str:
        """Record one read of a payout; 'new', 'changed' or 'same'. A final state is never overwritten by a
        non-final one (an older read racing a newer one), and reaching Completed calls the `completed` port."""
        now = int(self.clock())
        async with conn.execute("SELECT state, revision, pull_payment_name FROM payouts WHERE store_id = ? AND payout_id = ?",
                                (store_id, p.id)) as cur:
            old = await cur.fetchone()
        if old is not None and old[0] in FINAL_STATES and p.state not in FINAL_STATES:
            return "same"
        values = {
            "store_id": store_id, "payout_id": p.id, "state": p.state, "revision": p.revision,
            "original_amount": _s(p.original_amount), "original_currency": p.original_currency,
            "payout_amount": _s(p.payout_amount), "payout_currency": p.payout_currency, "amount_sats": amount_sats(p),
            "payment_method": p.payout_method_id, "destination": p.destination, "pull_payment_id": p.pull_payment_id,
            "pull_payment_name": pp_name or (old[2] if old else None), "metadata": json.dumps(p.metadata, default=str),
            "created_at": p.date, "updated_at": now,
        }
        cols = list(values)
        await conn.execute(
            f"INSERT INTO payouts({', '.join(cols)}) VALUES({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT(store_id, payout_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("store_id", "payout_id")),
            [values[c] for c in cols],
        )
        became_completed = p.state == PayoutState.COMPLETED and (old is None or old[0] != PayoutState.COMPLETED)
        if became_completed:
            await conn.execute("UPDATE payouts SET completed_at = ? WHERE store_id = ? AND payout_id = ?",
                               (now, store_id, p.id))
            async with conn.execute(f"SELECT {', '.join(COLUMNS)} FROM payouts WHERE store_id = ? AND payout_id = ?",
                                    (store_id, p.id)) as cur:
                row = _row(await cur.fetchone())
            if self.completed is not None:
                await self.completed.on_payout_completed(conn, row)
        if old is None:
            return "new"
        return "changed" if (old[0], old[1]) != (p.state, p.revision) else "same"

    async def record(self, store_id: str, payouts: list[Payout], client: PayoutBTCPay) -> dict[str, int]:
        counts = {"new": 0, "changed": 0, "same": 0}
        names = {p.id: await self._pull_payment_name(client, p.pull_payment_id) for p in payouts}
        async with self.db.transaction() as conn:
            for p in payouts:
                counts[await self.upsert(conn, store_id, p, names[p.id])] += 1
        return counts

    async def refresh_one(self, store_id: str, payout_id: str) -> dict[str, Any] | None:
        client = await self.btcpay_for(store_id)
        try:
            payout = await client.get_payout(store_id, payout_id)
        except BTCPayNotFound:
            log.warning("payout %s is gone from BTCPay store %s", payout_id, store_id)
            return await self.get(payout_id)
        await self.record(store_id, [payout], client)
        return await self.get(payout_id)

    async def poll(self) -> dict[str, Any]:
        """The `payouts.poll` loop: mirror every selected store's payouts."""
        summary: dict[str, Any] = {"stores": 0, "new": 0, "changed": 0, "failed_stores": 0}
        for store_id in await self.stores():
            try:
                client = await self.btcpay_for(store_id)
                listed = await client.list_payouts(store_id)
                seen = {p.id for p in listed}
                # payouts we follow that left the list (cancelled ones are not listed): read them one by one
                missing = [r[0] for r in await self.db.fetchall(
                    f"SELECT payout_id FROM payouts WHERE store_id = ? AND state NOT IN ({', '.join('?' for _ in FINAL_STATES)})",
                    (store_id, *FINAL_STATES)) if r[0] not in seen]
                for payout_id in missing:
                    try:
                        listed.append(await client.get_payout(store_id, payout_id))
                    except BTCPayNotFound:
                        log.warning("payout %s is gone from BTCPay store %s", payout_id, store_id)
                counts = await self.record(store_id, listed, client)
            except BTCPayError as exc:
                summary["failed_stores"] += 1
                log.warning("payout poll of store %s failed: %s", store_id, exc)
                continue
            summary["stores"] += 1
            summary["new"] += counts["new"]
            summary["changed"] += counts["changed"]
        return summary

    async def on_event(self, conn: aiosqlite.Connection, event: WebhookEvent) -> None:
        """The BTCPay intake's event port. Payout events (inside the delivery transaction): note the new
        state, then re-read the payout from BTCPay after the commit (the event carries no amounts)."""
        if not isinstance(event, PayoutEvent) or event.store_id is None:
            return  # (isinstance, not getattr: on an invoice event a missing attribute costs an exception)
        payout_id, state = event.payout_id, event.payout_state
        if state and state not in FINAL_STATES:
            await conn.execute(
                f"UPDATE payouts SET state = ?, updated_at = ? WHERE store_id = ? AND payout_id = ? "
                f"AND state NOT IN ({', '.join('?' for _ in FINAL_STATES)})",
                (state, int(self.clock()), event.store_id, payout_id, *FINAL_STATES))
        # a final state is taken only from a full read, so the `completed` port gets the whole payout
        self._background.spawn(self._refresh_quietly(event.store_id, payout_id))

    async def _refresh_quietly(self, store_id: str, payout_id: str) -> None:
        try:
            await self.refresh_one(store_id, payout_id)
        except Exception:  # the poll loop catches up; a webhook must never break on this
            log.exception("could not refresh payout %s after its webhook", payout_id)

    async def idle(self) -> None:
        """Wait for the re-reads that webhooks started."""
        await self._background.idle()

    async def close(self) -> None:
        await self._background.cancel()

    # -- actions -----------------------------------------------------------------------------------

    def needs_four_eyes(self, row: dict[str, Any]) -> bool:
        """Above the threshold; a payout whose satoshi amount is not known yet (a fiat claim before
        approval) counts as above it, since its size in bitcoin is decided only at approval."""
        limit = self.four_eyes_above_sats()
        if limit is None:
            return False
        return row["amount_sats"] is None or row["amount_sats"] > limit

    async def _require(self, payout_id: str) -> dict[str, Any]:
        row = await self.get(payout_id)
        if row is None:
            raise UserFacingError(f"no payout {payout_id} in the mirror", fix="see `sovterm payouts list`")
        return row

    def _detail(self, row: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"store_id": row["store_id"], "amount": row["original_amount"], "currency": row["original_currency"],
                "sats": row["amount_sats"], "revision": row["revision"], "destination": row["destination"], **extra}

    async def _audit(self, audit: Recorder, row: dict[str, Any], outcome: str, *,
                     conn: aiosqlite.Connection | None = None, **extra: Any) -> None:
        await audit(row["payout_id"], self._detail(row, **extra), outcome, conn=conn)

    async def _stale(self, audit: Recorder, row: dict[str, Any], why: str) -> StalePayout:
        fresh = await self.refresh_one(row["store_id"], row["payout_id"]) or row
        await self.db.write("DELETE FROM payout_approvals WHERE store_id = ? AND payout_id = ?",
                            (row["store_id"], row["payout_id"]))
        await self._audit(audit, row, "stale_revision", now_revision=fresh["revision"], now_state=fresh["state"])
        return StalePayout(
            f"payout {row['payout_id']} changed at BTCPay since the mirror showed it ({why}); it is now "
            f"{fresh['state']}, revision {fresh['revision']}. Nothing was done.",
            fix="review it again (`sovterm payouts list`) and repeat the action if it is still right",
        )

    async def approve(self, payout_id: str, *, actor: str, audit: Recorder) -> dict[str, Any]:
        row = await self._require(payout_id)
        if row["state"] != PayoutState.AWAITING_APPROVAL:
            await self._audit(audit, row, "refused_state")
            raise UserFacingError(f"payout {payout_id} is {row['state']}, not awaiting approval")
        if self.needs_four_eyes(row):
            first = await self.db.fetchone(
                "SELECT approved_by, revision FROM payout_approvals WHERE store_id = ? AND payout_id = ?",
                (row["store_id"], payout_id))
            if first is None or first[1] != row["revision"]:
                await self.db.write(
                    "INSERT INTO payout_approvals(store_id, payout_id, revision, approved_by, approved_at) "
                    "VALUES(?,?,?,?,?) ON CONFLICT(store_id, payout_id) DO UPDATE SET revision = excluded.revision, "
                    "approved_by = excluded.approved_by, approved_at = excluded.approved_at",
                    (row["store_id"], payout_id, row["revision"], actor, int(self.clock())))
                await self._audit(audit, row, "pending_second_approval")
                return {**row, "result": "pending", "message": "first approval recorded; a second, different admin "
                        "must approve this payout too"}
            if first[0] == actor:
                await self._audit(audit, row, "refused_same_user")
                raise UserFacingError(
                    f"you already approved payout {payout_id}; four eyes: a different admin must give the second approval")
            second_of = first[0]
        else:
            second_of = None
        client = await self.btcpay_for(row["store_id"])
        try:
            payout = await client.approve_payout(row["store_id"], payout_id, revision=row["revision"])
        except BTCPayError as exc:
            if exc.btcpay_code in ("old-revision", "invalid-state"):
                raise await self._stale(audit, row, exc.btcpay_code) from None
            if exc.btcpay_code == "amount-too-low":
                await self.refresh_one(row["store_id"], payout_id)
                await self._audit(audit, row, "failed_amount_too_low")
                raise UserFacingError(f"BTCPay refused payout {payout_id}: the amount is too low, so BTCPay "
                                      "cancelled it") from None
            await self._audit(audit, row, "failed", error=exc.message)
            raise
        async with self.db.transaction() as conn:
            await self.upsert(conn, row["store_id"], payout, row["pull_payment_name"])
            await conn.execute("DELETE FROM payout_approvals WHERE store_id = ? AND payout_id = ?",
                               (row["store_id"], payout_id))
            await self._audit(audit, row, "approved", conn=conn, first_approval_by=second_of,
                              payout_amount=_s(payout.payout_amount))
        return {**(await self.get(payout_id) or {}), "result": "approved"}

    async def _checked(self, audit: Recorder, action: str, payout_id: str,
                       allowed: tuple[str, ...]) -> tuple[dict[str, Any], PayoutBTCPay]:
        """The mirrored row, after confirming BTCPay still has the revision and state the operator saw."""
        row = await self._require(payout_id)
        if row["state"] not in allowed:
            await self._audit(audit, row, "refused_state")
            raise UserFacingError(f"payout {payout_id} is {row['state']}; {action.split('.')[1]} needs "
                                  f"{' or '.join(allowed)}")
        client = await self.btcpay_for(row["store_id"])
        current = await client.get_payout(row["store_id"], payout_id)
        if current.revision != row["revision"] or current.state != row["state"]:
            raise await self._stale(audit, row, f"revision {row['revision']} → {current.revision}")
        return row, client

    async def cancel(self, payout_id: str, *, audit: Recorder) -> dict[str, Any]:
        allowed = (PayoutState.AWAITING_APPROVAL.value, PayoutState.AWAITING_PAYMENT.value)
        row, client = await self._checked(audit, "payout.cancel", payout_id, allowed)
        try:
            await client.cancel_payout(row["store_id"], payout_id)
        except BTCPayError as exc:
            await self._audit(audit, row, "failed", error=exc.message)
            await self.refresh_one(row["store_id"], payout_id)
            raise
        await self._audit(audit, row, "cancelled")
        await self.db.write("DELETE FROM payout_approvals WHERE store_id = ? AND payout_id = ?", (row["store_id"], payout_id))
        return {**(await self._refresh_after(row) or row), "result": "cancelled"}

    async def mark_paid(self, payout_id: str, *, audit: Recorder) -> dict[str, Any]:
        allowed = (PayoutState.AWAITING_PAYMENT.value, PayoutState.IN_PROGRESS.value)
        row, client = await self._checked(audit, "payout.mark_paid", payout_id, allowed)
        try:
            await client.mark_payout_paid(row["store_id"], payout_id)
        except BTCPayError as exc:
            await self._audit(audit, row, "failed", error=exc.message)
            await self.refresh_one(row["store_id"], payout_id)
            raise
        await self._audit(audit, row, "marked_paid")
        return {**(await self._refresh_after(row) or row), "result": "marked_paid"}

    async def _refresh_after(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The mirror after a successful action; a failed re-read leaves it to the poll loop."""
        try:
            return await self.refresh_one(row["store_id"], row["payout_id"])
        except BTCPayError as exc:
            log.warning("payout %s: done, but re-reading it failed: %s", row["payout_id"], exc)
            return None


def _s(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def _row(row: Any) -> dict[str, Any]:
    item = dict(zip(COLUMNS, row, strict=True))
    item["metadata"] = json.loads(item["metadata"] or "{}")
    for key in ("original_amount", "payout_amount"):  # rows stored before amounts were kept plain read `1E-8`
        item[key] = _s(None if item[key] is None else Decimal(item[key]))
    return item
