"""Pay links: creation, listing and expiry, the QuickBooks memo, and the reservations' states.

A reservation (one BTCPay invoice reserved for a link) closes as soon as its invoice settles, expires
or turns invalid: on the click (`links.pay.PayPage`), on the re-read that follows BTCPay's webhook or a
poll (`on_invoice`, the BTCPay intake's invoice port), or when the reaper comes by (`links.reaper.reap`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sovterm.amounts import plain
from sovterm.btcpay.models import Invoice
from sovterm.config import Settings
from sovterm.errors import UserFacingError
from sovterm.links.tokens import LinkClaims, SigningKeys, encode
from sovterm.qbo.client import quote_literal, request_id
from sovterm.qbo.errors import QBOError, QBOStaleObject
from sovterm.store.audit import Recorder
from sovterm.store.db import Database

log = logging.getLogger("sovterm.links")

#: Invoice metadata keys a pay link sets (besides `qboInvoiceId`, which the sync matches on).
DOC_NUMBER_METADATA_KEY = "qboDocNumber"
LINK_METADATA_KEY = "payLinkId"
MEMO_PREFIX = "Pay in bitcoin: "
CUSTOMER_MEMO_MAX = 1000  # QuickBooks' limit on Invoice.CustomerMemo
MEMO_MAX = 200  # standalone link memo (it travels inside the token)
OPEN_STATES = ("open", "processing")
PAID_ADDITIONAL = {"PaidPartial", "PaidLate", "PaidOver"}


class LinkBTCPay(Protocol):
    async def create_invoice(
        self, store_id: str, *, amount: Decimal | None, currency: str, metadata: dict[str, Any] | None = None,
        expiration_minutes: int | None = None,
    ) -> Invoice: ...

    async def get_invoice(self, store_id: str, invoice_id: str) -> Invoice: ...

    async def mark_invoice_status(self, store_id: str, invoice_id: str, status: str) -> Invoice: ...


class LinkQBO(Protocol):
    async def query(self, sql: str, *, page_size: int = ..., limit: int | None = None) -> list[dict[str, Any]]: ...

    async def read(self, entity: str, entity_id: str) -> dict[str, Any]: ...

    async def update(self, entity: str, body: dict[str, Any], *, request_id: str, sparse: bool = True) -> dict[str, Any]: ...


BTCPayFor = Callable[[str], Awaitable[LinkBTCPay]]
QBOFor = Callable[[], Awaitable[LinkQBO]]


def classify(invoice: Invoice) -> str:
    """open | processing | paid | expired: what a reservation's BTCPay invoice means for the link."""
    if invoice.status == "New":
        return "open"
    if invoice.status == "Processing":
        return "processing"
    if invoice.status == "Settled":
        return "paid"
    if invoice.status == "Expired" and (
        invoice.additional_status in PAID_ADDITIONAL or (invoice.paid_amount or 0) > 0
    ):
        return "paid"
    return "expired"


def qbo_amount(value: Any) -> Decimal:
    """An amount QuickBooks sent, exactly."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise QBOError(f"QuickBooks sent an amount that is not a number: {value!r}") from None


LINK_COLUMNS = ("link_id", "kind", "store_id", "qbo_invoice_id", "qbo_doc_number", "amount", "currency", "memo",
                "kid", "state", "created_at", "created_by", "expires_at", "ended_at")
RES_COLUMNS = ("id", "link_id", "store_id", "btcpay_invoice_id", "checkout_link", "amount", "currency", "state",
               "created_at", "expires_at", "closed_at")


class LinkService:
    def __init__(
        self,
        db: Database,
        keys: SigningKeys,
        settings: Callable[[], Settings],
        btcpay_for: BTCPayFor,
        qbo: QBOFor,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.keys = keys
        self.settings = settings
        self.btcpay_for = btcpay_for
        self.qbo = qbo
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    # -- reading -----------------------------------------------------------------------------------

    async def link(self, link_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone(f"SELECT {', '.join(LINK_COLUMNS)} FROM pay_links WHERE link_id = ?", (link_id,))
        return dict(zip(LINK_COLUMNS, row, strict=True)) if row else None

    async def open_reservation(self, link_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone(
            f"SELECT {', '.join(RES_COLUMNS)} FROM link_reservations WHERE link_id = ? AND state IN ('open','processing')",
            (link_id,),
        )
        return dict(zip(RES_COLUMNS, row, strict=True)) if row else None

    async def last_paid_reservation(self, link_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone(
            f"SELECT {', '.join(RES_COLUMNS)} FROM link_reservations WHERE link_id = ? AND state = 'paid' "
            "ORDER BY id DESC LIMIT 1",
            (link_id,),
        )
        return dict(zip(RES_COLUMNS, row, strict=True)) if row else None

    async def paid_not_in_books(self, link_id: str) -> bool:
        """Did a customer pay through this link an invoice the sync has not posted to QuickBooks yet?

        Read from the sync's own record of what it posted (`sync_postings`), not guessed from the balance:
        after a cheque for part of the invoice the balance drops while the link's payment is still on its
        way, and comparing amounts would invoice the customer a second time."""
        row = await self.db.fetchone(
            "SELECT 1 FROM link_reservations r WHERE r.link_id = ? AND r.state = 'paid' AND NOT EXISTS ("
            " SELECT 1 FROM sync_postings p WHERE p.store_id = r.store_id AND p.invoice_id = r.btcpay_invoice_id"
            " AND p.kind != 'refund' AND p.status = 'posted') LIMIT 1",
            (link_id,),
        )
        return row is not None

    def claims_of(self, link: dict[str, Any]) -> LinkClaims:
        if link["kind"] == "qbo":
            return LinkClaims(link["link_id"], link["expires_at"], qbo_invoice_id=link["qbo_invoice_id"],
                              qbo_doc_number=link["qbo_doc_number"])
        return LinkClaims(link["link_id"], link["expires_at"], amount=Decimal(link["amount"]),
                          currency=link["currency"], memo=link["memo"])

    async def url_of(self, link: dict[str, Any]) -> str | None:
        """The link's URL, rebuilt from its row and key (tokens are not stored); None once the key is retired."""
        key = await self.keys.key(link["kid"])
        if key is None:
            return None
        return f"{self.settings().public_url}/pay/{encode(self.claims_of(link), link['kid'], key)}"

    async def list(self) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(f"SELECT {', '.join(LINK_COLUMNS)} FROM pay_links ORDER BY created_at DESC, link_id")
        out = []
        now = self.now()
        for row in rows:
            link = dict(zip(LINK_COLUMNS, row, strict=True))
            if link["state"] == "active" and link["expires_at"] <= now:
                link["state"] = "expired"
            res = await self.open_reservation(link["link_id"])
            link["reservation"] = None if res is None else {
                "btcpay_invoice_id": res["btcpay_invoice_id"], "state": res["state"], "expires_at": res["expires_at"],
                "amount": res["amount"], "currency": res["currency"],
            }
            link["url"] = await self.url_of(link) if link["state"] == "active" else None
            out.append(link)
        return out

    # -- creating ----------------------------------------------------------------------------------

    async def _store_id(self, store_id: str | None) -> str:
        selected = [r[0] for r in await self.db.fetchall("SELECT store_id FROM btcpay_stores WHERE selected = 1")]
        if store_id is not None:
            if store_id not in selected:
                raise UserFacingError(
                    f"BTCPay store {store_id} is not followed",
                    fix="`sovterm btcpay status` lists the followed stores; follow this one with "
                        "`sovterm setup btcpay --store STORE_ID` (repeat --store for each store to keep)",
                )
            return store_id
        if len(selected) != 1:
            raise UserFacingError(
                "no BTCPay store is selected" if not selected else "several BTCPay stores are selected",
                fix="pass --store STORE_ID" if selected else "connect BTCPay and select a store first",
            )
        return selected[0]

    def _expiry(self, expires_days: int | None) -> int:
        days = self.settings().links.default_expiry_days if expires_days is None else expires_days
        if days < 1:
            raise UserFacingError("a link must live at least one day", fix="use --expires-days 1 or more")
        return self.now() + days * 86_400

    async def _insert(self, conn: Any, link: dict[str, Any]) -> None:
        cols = [c for c in LINK_COLUMNS if c in link]
        await conn.execute(
            f"INSERT INTO pay_links({', '.join(cols)}) VALUES({', '.join('?' for _ in cols)})",
            [link[c] for c in cols],
        )

    async def find_qbo_invoice(self, doc_number: str) -> dict[str, Any]:
        qbo = await self.qbo()
        rows = await qbo.query(f"SELECT * FROM Invoice WHERE DocNumber = {quote_literal(doc_number)}")
        if not rows:
            raise UserFacingError(f"QuickBooks has no invoice number {doc_number}")
        if len(rows) > 1:
            raise UserFacingError(f"QuickBooks has {len(rows)} invoices numbered {doc_number}",
                                  fix="give each invoice its own number in QuickBooks")
        return rows[0]

    async def create_for_invoice(
        self, invoice: dict[str, Any], *, actor: str, audit: Recorder, expires_days: int | None = None,
        store_id: str | None = None,
    ) -> dict[str, Any]:
        """A link for one open QuickBooks invoice (read by the caller); optionally written into its memo."""
        balance = qbo_amount(invoice.get("Balance", 0))
        doc = str(invoice.get("DocNumber") or invoice["Id"])
        if balance <= 0:
            raise UserFacingError(f"QuickBooks invoice {doc} has nothing left to pay")
        link = {
            "link_id": os.urandom(8).hex(), "kind": "qbo", "store_id": await self._store_id(store_id),
            "qbo_invoice_id": str(invoice["Id"]), "qbo_doc_number": doc, "state": "active",
            "created_at": self.now(), "created_by": actor, "expires_at": self._expiry(expires_days),
        }
        kid, _ = await self.keys.sign(self.claims_of(link))
        link["kid"] = kid
        async with self.db.transaction() as conn:
            await self._insert(conn, link)
            await audit(link["link_id"], {"qbo_invoice": doc, "balance": str(balance),
                                          "expires_at": link["expires_at"]}, "created", conn=conn)
        url = await self.url_of(link)
        assert url is not None
        result = {**link, "url": url, "balance": str(balance), "memo_written": None}
        if self.settings().links.write_to_qbo_memo:
            result["memo_written"] = await self.write_memo(invoice, url, link["link_id"])
        return result

    async def create_qbo(self, doc_number: str, *, actor: str, audit: Recorder, expires_days: int | None = None,
                         store_id: str | None = None) -> dict[str, Any]:
        return await self.create_for_invoice(
            await self.find_qbo_invoice(doc_number), actor=actor, audit=audit, expires_days=expires_days,
            store_id=store_id,
        )

    async def create_fixed(
        self, amount: str, currency: str, memo: str | None, *, actor: str, audit: Recorder,
        expires_days: int | None = None, store_id: str | None = None,
    ) -> dict[str, Any]:
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise UserFacingError(f"{amount!r} is not an amount", fix="write it like 25.00") from None
        if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -8:  # type: ignore[operator]
            raise UserFacingError(f"{amount!r} is not a positive amount with at most 8 decimals")
        code = currency.strip().upper()
        if not code.isalpha() or not 3 <= len(code) <= 5:
            raise UserFacingError(f"{currency!r} is not a currency code", fix="e.g. USD, EUR, BTC")
        if memo is not None and len(memo) > MEMO_MAX:
            raise UserFacingError(f"the memo is longer than {MEMO_MAX} characters")
        link = {
            "link_id": os.urandom(8).hex(), "kind": "fixed", "store_id": await self._store_id(store_id),
            "amount": plain(value), "currency": code, "memo": memo or None, "state": "active",
            "created_at": self.now(), "created_by": actor, "expires_at": self._expiry(expires_days),
        }
        kid, _ = await self.keys.sign(self.claims_of(link))
        link["kid"] = kid
        async with self.db.transaction() as conn:
            await self._insert(conn, link)
            await audit(link["link_id"], {"amount": plain(value), "currency": code, "memo": memo,
                                          "expires_at": link["expires_at"]}, "created", conn=conn)
        return {**link, "url": await self.url_of(link)}

    async def _open_invoices(self) -> list[dict[str, Any]]:
        qbo = await self.qbo()
        return await qbo.query("SELECT * FROM Invoice WHERE Balance > '0'")

    async def _linked(self) -> dict[str, str]:
        """QuickBooks invoice id -> id of its active pay link."""
        rows = await self.db.fetchall(
            "SELECT qbo_invoice_id, link_id FROM pay_links WHERE kind = 'qbo' AND state = 'active' AND expires_at > ?",
            (self.now(),),
        )
        return {r[0]: r[1] for r in rows}

    async def search_invoices(self, query: str | None, *, limit: int) -> list[dict[str, Any]]:
        """Open QuickBooks invoices whose number or customer contains `query` (all when empty), each
        with its active pay link if it has one. QuickBooks cannot filter invoices by customer name, so the
        open ones are read and matched here."""
        needle = (query or "").strip().lower()
        linked = await self._linked()
        found = []
        for inv in await self._open_invoices():
            customer = (inv.get("CustomerRef") or {}).get("name") or ""
            if needle and needle not in str(inv.get("DocNumber", "")).lower() and needle not in customer.lower():
                continue
            found.append({
                "id": str(inv["Id"]), "doc_number": inv.get("DocNumber"), "customer": customer,
                "balance": str(inv.get("Balance")), "currency": (inv.get("CurrencyRef") or {}).get("value"),
                "txn_date": inv.get("TxnDate"), "due_date": inv.get("DueDate"),
                "link_id": linked.get(str(inv["Id"])),
            })
        found.sort(key=lambda i: (i["due_date"] or "", i["doc_number"] or ""))
        return found[:limit]

    async def bulk_create(self, *, actor: str, audit: Recorder, dry_run: bool, expires_days: int | None = None,
                          store_id: str | None = None) -> dict[str, Any]:
        """Links for every open QuickBooks invoice that has no active link yet (each with its own audit row)."""
        invoices = await self._open_invoices()
        have = await self._linked()
        todo = [i for i in invoices if str(i["Id"]) not in have]
        result: dict[str, Any] = {"dry_run": dry_run, "open_invoices": len(invoices),
                                  "already_linked": len(invoices) - len(todo), "created": [], "failed": []}
        if dry_run:
            result["would_create"] = [{"qbo_doc_number": i.get("DocNumber"), "balance": str(i.get("Balance"))}
                                      for i in todo]
            return result
        for invoice in todo:
            try:
                link = await self.create_for_invoice(invoice, actor=actor, audit=audit, expires_days=expires_days,
                                                     store_id=store_id)
            except UserFacingError as exc:
                result["failed"].append({"qbo_doc_number": invoice.get("DocNumber"), "error": exc.message})
                continue
            result["created"].append({k: link[k] for k in ("link_id", "qbo_doc_number", "balance", "url", "memo_written")})
        return result

    async def write_memo(self, invoice: dict[str, Any], url: str, link_id: str) -> str:
        """Put the link into the invoice's CustomerMemo (replacing an older link line); what happened, in words."""
        qbo = await self.qbo()
        line = MEMO_PREFIX + url
        for attempt in range(2):
            existing = str((invoice.get("CustomerMemo") or {}).get("value") or "")
            kept = "\n".join(x for x in existing.splitlines() if not x.startswith(MEMO_PREFIX)).strip()
            memo = f"{kept}\n{line}" if kept else line
            if len(memo) > CUSTOMER_MEMO_MAX:
                return f"skipped: the customer memo would exceed {CUSTOMER_MEMO_MAX} characters"
            body = {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "CustomerMemo": {"value": memo}}
            try:
                await qbo.update("Invoice", body, request_id=request_id("link-memo", link_id, invoice["SyncToken"]))
                return "written"
            except QBOStaleObject:
                if attempt:
                    raise
                invoice = await qbo.read("Invoice", str(invoice["Id"]))
        raise AssertionError("unreachable")

    async def expire(self, link_id: str, *, audit: Recorder) -> dict[str, Any]:
        link = await self.link(link_id)
        if link is None:
            raise UserFacingError(f"no pay link {link_id}", fix="see `sovterm link list`")
        now = self.now()
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE pay_links SET state = 'expired', ended_at = ? WHERE link_id = ? AND state = 'active'",
                (now, link_id),
            )
            await audit(link_id, {"previous_state": link["state"]},
                        "expired" if link["state"] == "active" else f"already {link['state']}", conn=conn)
        return {**link, "state": "expired" if link["state"] == "active" else link["state"]}

    async def refresh_reservation(self, res: dict[str, Any]) -> dict[str, Any]:
        """Ask BTCPay what became of a reservation's invoice and record it; the updated row, with
        `money_received` (a partial payment leaves an invoice New)."""
        btcpay = await self.btcpay_for(res["store_id"])
        invoice = await btcpay.get_invoice(res["store_id"], res["btcpay_invoice_id"])
        received = (invoice.paid_amount or 0) > 0 or invoice.additional_status == "PaidPartial"
        state = classify(invoice)
        if state != res["state"]:
            async with self.db.transaction() as conn:
                await self._record(conn, "id = ?", (res["id"],), state)
        return {**res, "state": state, "closed_at": None if state in OPEN_STATES else self.now(),
                "money_received": received}

    async def _record(self, conn: Any, where: str, params: tuple[Any, ...], state: str) -> None:
        """Write a reservation's new state (closing it unless open/processing); a paid fixed link ends."""
        now = self.now()
        closed = None if state in OPEN_STATES else now
        cur = await conn.execute(
            f"UPDATE link_reservations SET state = ?, closed_at = ? WHERE {where} AND state IN ('open', 'processing') "
            "RETURNING link_id", (state, closed, *params))
        changed = [r[0] for r in await cur.fetchall()]
        if state == "paid":
            for lid in changed:
                await conn.execute(
                    "UPDATE pay_links SET state = 'paid', ended_at = ? WHERE link_id = ? AND kind = 'fixed' "
                    "AND state = 'active'", (now, lid))

    async def on_invoice(self, conn: Any, store_id: str, invoice: Invoice) -> None:
        """The BTCPay intake's invoice port (a changed snapshot from the re-read after a webhook, or a poll),
        inside its transaction: close the reservation of an invoice that settled, expired or turned invalid.
        Invoices no link created cost nothing (checked on the metadata, no query)."""
        if LINK_METADATA_KEY not in invoice.metadata:
            return
        await self._record(conn, "store_id = ? AND btcpay_invoice_id = ?", (store_id, invoice.id), classify(invoice))
