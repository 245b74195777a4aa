"""The pay-page decision: what `GET /pay/{token}` does for a click, given the link, its reservation and
the live balance.

A click is served under a per-link lock (and the database allows at most one open reservation per
link), so two simultaneous clicks create one BTCPay invoice. Every click re-reads the reserved BTCPay
invoice and, for a QuickBooks-invoice link, the invoice's live balance (docs/pay-links.md):
- balance 0: the paid page (an open reservation is invalidated at BTCPay so nobody pays it twice);
- balance equal to the reservation's amount: the customer goes back to the same checkout;
- balance changed (a cheque, a part payment, an edited invoice): the superseded BTCPay invoice is
  marked Invalid (Greenfield mark-status, permission `btcpay.store.canmodifyinvoices`) and a new one is
  reserved for the new balance.
A reservation whose invoice is Processing (a payment in flight) is never invalidated nor doubled: the
customer sees "payment being confirmed". A click never redirects to a checkout that can no longer be paid.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sovterm.amounts import plain
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayValidationError
from sovterm.btcpay.models import QBO_REF_METADATA_KEY
from sovterm.errors import UserFacingError
from sovterm.links.service import DOC_NUMBER_METADATA_KEY, LINK_METADATA_KEY, LinkService, qbo_amount
from sovterm.links.tokens import LinkClaims, TokenGone, TokenInvalid
from sovterm.logs import correlation
from sovterm.qbo.errors import QBOError

log = logging.getLogger("sovterm.links")

#: A reservation we closed because the QuickBooks balance changed (its BTCPay invoice marked Invalid).
SUPERSEDED = "superseded"
#: What marking a superseded checkout Invalid needs (`POST /api/v1/stores/{storeId}/invoices/{id}/status`).
INVALIDATE_PERMISSION = "btcpay.store.canmodifyinvoices"
#: A customer is waiting on the pay page: give up on a slow connector rather than retry for a minute.
QBO_READ_TIMEOUT_S = 10.0
BTCPAY_READ_TIMEOUT_S = 10.0
BTCPAY_CREATE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class PayOutcome:
    """What the pay page does: redirect to a checkout, or show a plain page with a status."""

    status: int
    title: str = ""
    message: str = ""
    location: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    retry_after_s: int | None = None
    reason: str = ""  # for logs and tests only, never shown

    @classmethod
    def redirect(cls, url: str, amount: Decimal, currency: str, reason: str) -> PayOutcome:
        return cls(303, "Redirecting to checkout", "", url, amount, currency, reason=reason)


NOT_FOUND = PayOutcome(404, "Link not recognised",
                       "This payment link is not valid. Please check that you copied the whole link, "
                       "or ask the merchant for a new one.", reason="invalid")
EXPIRED = PayOutcome(410, "Link expired",
                     "This payment link has expired. Please ask the merchant for a new one.", reason="expired")
CONFIRMING = PayOutcome(202, "Payment being confirmed",
                        "We have received your payment and are waiting for the bitcoin network to confirm it. "
                        "There is nothing more to do; you can close this page.", reason="payment_processing")


def _outage(what: str, reason: str) -> PayOutcome:
    return PayOutcome(503, "Temporarily unavailable",
                      f"We cannot reach the merchant's {what} right now. Nothing was charged. "
                      "Please try again in a few minutes.", retry_after_s=120, reason=reason)


class PayPage:
    """`services.pay_page`: the decision for each click on a pay link, over the link service's records."""

    def __init__(self, links: LinkService) -> None:
        self.links = links
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def pay(self, token: str) -> PayOutcome:
        """Everything `GET /pay/{token}` decides; never raises for anything a customer or an outage causes."""
        try:
            _, claims = await self.links.keys.verify(token)
        except TokenGone as exc:
            return PayOutcome(EXPIRED.status, EXPIRED.title, EXPIRED.message, reason=exc.reason)
        except TokenInvalid as exc:
            return PayOutcome(NOT_FOUND.status, NOT_FOUND.title, NOT_FOUND.message, reason=exc.reason)
        lock = self._locks.get(claims.link_id)
        if lock is None:
            lock = self._locks[claims.link_id] = asyncio.Lock()
        async with lock:
            with correlation(f"link:{claims.link_id}"):
                return await self._pay_locked(claims)

    async def reserve(self, token: str) -> tuple[PayOutcome, dict[str, Any] | None]:
        """A machine's request (HTTP 402): the same decision as a click, by the same rules (live balance, one
        invoice per link), with the open reservation a click would have been sent to pay, if any."""
        outcome = await self.pay(token)
        if outcome.location is None:
            return outcome, None
        _, claims = await self.links.keys.verify(token)
        return outcome, await self.links.open_reservation(claims.link_id)

    async def _pay_locked(self, claims: LinkClaims) -> PayOutcome:
        link = await self.links.link(claims.link_id)
        if link is None or link["kind"] != claims.kind or (
            link["kind"] == "qbo" and link["qbo_invoice_id"] != claims.qbo_invoice_id
        ):
            return NOT_FOUND
        now = self.links.now()
        if link["state"] == "expired" or link["expires_at"] <= now:
            return EXPIRED
        if link["state"] == "paid":
            return _paid_page(link)
        res = await self.links.open_reservation(link["link_id"])
        if res is not None:
            # webhooks and polls close reservations within seconds, but a click must not trust that:
            # BTCPay says now whether the checkout can still be paid
            checked = await self._checked(link, res)
            if isinstance(checked, PayOutcome):
                return checked
            res = checked
            if res["state"] == "processing":
                return CONFIRMING
            if res["state"] != "open":
                res = None
        if link["kind"] == "fixed":
            if res is not None:
                return PayOutcome.redirect(res["checkout_link"], Decimal(res["amount"]), res["currency"], "reused")
            if await self.links.last_paid_reservation(link["link_id"]) is not None:
                return _paid_page(link)
            return await self._create(link, Decimal(link["amount"]), link["currency"], None)
        return await self._pay_qbo(link, res)

    async def _pay_qbo(self, link: dict[str, Any], res: dict[str, Any] | None) -> PayOutcome:
        """The QuickBooks balance decides, every click; `res` is the open reservation (New at BTCPay), if any."""
        try:
            async with asyncio.timeout(QBO_READ_TIMEOUT_S):
                qbo = await self.links.qbo()
                invoice = await qbo.read("Invoice", link["qbo_invoice_id"])
        except TimeoutError:
            log.warning("pay link %s: QuickBooks did not answer in %.0f s", link["link_id"], QBO_READ_TIMEOUT_S)
            return _outage("accounting system", "qbo_timeout")
        except QBOError as exc:
            if exc.fault_code in ("610", "2500"):
                if res is not None:
                    await self._supersede(link, res)
                return PayOutcome(410, "Invoice not found",
                                  "The merchant's books no longer have this invoice. Please contact the merchant.",
                                  reason="qbo_gone")
            log.warning("pay link %s: QuickBooks unavailable: %s", link["link_id"], exc)
            return _outage("accounting system", "qbo_unavailable")
        except UserFacingError as exc:  # not connected, reconnect required, ...
            log.warning("pay link %s: QuickBooks unavailable: %s", link["link_id"], exc)
            return _outage("accounting system", "qbo_unavailable")
        balance = qbo_amount(invoice.get("Balance", 0))
        total = qbo_amount(invoice.get("TotalAmt", 0))
        currency = str((invoice.get("CurrencyRef") or {}).get("value") or "USD")
        if res is not None and (balance != Decimal(res["amount"]) or currency != res["currency"]):
            # the checkout asks for an amount the books no longer owe: take it away before anything else
            superseded = await self._supersede(link, res)
            if superseded is not None:
                return superseded
            res = None
        if str(invoice.get("TxnStatus", "")).lower() == "voided" or (balance <= 0 and total <= 0):
            return PayOutcome(410, "Invoice cancelled",
                              f"Invoice {link['qbo_doc_number']} was cancelled by the merchant; there is nothing to pay.",
                              reason="voided")
        if balance <= 0:
            await self._end_link(link["link_id"], "paid")
            return _paid_page(link)
        if res is not None:
            return PayOutcome.redirect(res["checkout_link"], Decimal(res["amount"]), res["currency"], "reused")
        if await self.links.paid_not_in_books(link["link_id"]):
            # BTCPay has the money but QuickBooks does not show it yet (the sync posts the Payment): never
            # invoice the customer again meanwhile. Once the books show 0, the paid page above.
            return PayOutcome(409, "Payment received",
                              "We have received your payment; the merchant's books will show it shortly. "
                              "There is nothing more to do.", reason="payment_pending_in_books")
        return await self._create(link, balance, currency, invoice)

    async def _supersede(self, link: dict[str, Any], res: dict[str, Any]) -> PayOutcome | None:
        """Mark a superseded reservation's BTCPay invoice Invalid and close the reservation; None when it is
        closed (the caller may reserve anew), else the page to show.

        BTCPay answers 422 when the invoice may no longer be marked (it settled or was invalidated
        meanwhile, notes §4.4): the invoice is read again and its fresh state decides. An invoice that
        already received money is never invalidated (BTCPay would keep the coins and the books would not)."""
        if res.get("money_received"):
            log.warning("pay link %s: BTCPay invoice %s is superseded but has received a payment; the customer "
                        "finishes that one", link["link_id"], res["btcpay_invoice_id"])
            return PayOutcome.redirect(res["checkout_link"], Decimal(res["amount"]), res["currency"], "part_paid")
        try:
            async with asyncio.timeout(BTCPAY_READ_TIMEOUT_S):
                btcpay = await self.links.btcpay_for(res["store_id"])
                marked = await btcpay.mark_invoice_status(res["store_id"], res["btcpay_invoice_id"], "Invalid")
        except BTCPayValidationError:
            fresh = await self._checked(link, res)
            if isinstance(fresh, PayOutcome):
                return fresh
            if fresh["state"] == "processing":
                return CONFIRMING
            if fresh["state"] == "open":
                log.error("pay link %s: BTCPay refuses to invalidate invoice %s although it is New",
                          link["link_id"], res["btcpay_invoice_id"])
                return _outage("payment server", "btcpay_refused_invalidate")
            return None  # settled or expired: closed by refresh_reservation; a settled one is the 409 guard's business
        except BTCPayAuthError as exc:
            if exc.status != 403:  # the key itself is refused: a connector problem, not a permission
                log.warning("pay link %s: BTCPay refuses the API key: %s", link["link_id"], exc.message)
                return _outage("payment server", "btcpay_unavailable")
            log.error("pay link %s: cannot invalidate superseded checkout %s: the BTCPay API key lacks %s "
                      "(grant it, e.g. `sovterm setup btcpay` with a new key); the customer is asked to come back "
                      "once it expires: %s", link["link_id"], res["btcpay_invoice_id"], INVALIDATE_PERMISSION, exc.message)
            return _outage("payment server", "btcpay_cannot_invalidate")
        except (TimeoutError, UserFacingError) as exc:
            log.warning("pay link %s: cannot invalidate invoice %s: %s", link["link_id"], res["btcpay_invoice_id"],
                        exc or "timeout")
            return _outage("payment server", "btcpay_unavailable")
        if (marked.paid_amount or 0) > 0:
            log.warning("pay link %s: BTCPay invoice %s received a payment while it was being invalidated; "
                        "mark it Settled in BTCPay or refund the customer", link["link_id"], marked.id)
        async with self.links.db.transaction() as conn:
            await conn.execute(
                "UPDATE link_reservations SET state = ?, closed_at = ? WHERE id = ? AND state IN ('open', 'processing')",
                (SUPERSEDED, self.links.now(), res["id"]))
        log.info("pay link %s: BTCPay invoice %s for %s %s invalidated (the balance changed)", link["link_id"],
                 res["btcpay_invoice_id"], res["amount"], res["currency"])
        return None

    async def _create(self, link: dict[str, Any], amount: Decimal, currency: str,
                      invoice: dict[str, Any] | None) -> PayOutcome:
        metadata: dict[str, Any] = {LINK_METADATA_KEY: link["link_id"]}
        if invoice is not None:
            metadata.update({QBO_REF_METADATA_KEY: link["qbo_invoice_id"], DOC_NUMBER_METADATA_KEY: link["qbo_doc_number"],
                             "orderId": link["qbo_doc_number"], "itemDesc": f"Invoice {link['qbo_doc_number']}"})
            customer = (invoice.get("CustomerRef") or {}).get("name")
            if customer:
                metadata["buyerName"] = customer
        else:
            metadata.update({"orderId": f"link-{link['link_id']}", "itemDesc": link["memo"] or "Payment"})
        try:
            async with asyncio.timeout(BTCPAY_CREATE_TIMEOUT_S):
                btcpay = await self.links.btcpay_for(link["store_id"])
                created = await btcpay.create_invoice(
                    link["store_id"], amount=amount, currency=currency, metadata=metadata,
                    expiration_minutes=self.links.settings().links.checkout_minutes,
                )
        except TimeoutError:
            # BTCPay may have created it anyway; that invoice simply expires unpaid
            log.warning("pay link %s: BTCPay did not answer in %.0f s", link["link_id"], BTCPAY_CREATE_TIMEOUT_S)
            return _outage("payment server", "btcpay_timeout")
        except UserFacingError as exc:
            log.warning("pay link %s: cannot create a BTCPay invoice: %s", link["link_id"], exc)
            return _outage("payment server", "btcpay_unavailable")
        if not created.checkout_link:
            log.error("pay link %s: BTCPay invoice %s has no checkout link", link["link_id"], created.id)
            return _outage("payment server", "btcpay_no_checkout")
        now = self.links.now()
        expires = created.expiration_time or now + 60 * self.links.settings().links.checkout_minutes
        try:
            await self._reserve(link, created.id, created.checkout_link, amount, currency, now, expires)
        except sqlite3.IntegrityError:
            # another process reserved this link first (the lock only serialises clicks within this one)
            log.error("pay link %s: a reservation appeared concurrently; BTCPay invoice %s left unused",
                      link["link_id"], created.id)
            res = await self.links.open_reservation(link["link_id"])
            if res is None:
                raise
            return PayOutcome.redirect(res["checkout_link"], Decimal(res["amount"]), res["currency"], "reused")
        log.info("pay link %s: BTCPay invoice %s for %s %s", link["link_id"], created.id, amount, currency)
        return PayOutcome.redirect(created.checkout_link, amount, currency, "created")

    async def _reserve(self, link: dict[str, Any], invoice_id: str, checkout: str, amount: Decimal, currency: str,
                       now: int, expires: int) -> None:
        async with self.links.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO link_reservations(link_id, store_id, btcpay_invoice_id, checkout_link, amount, currency,"
                " state, created_at, expires_at) VALUES(?,?,?,?,?,?,'open',?,?)",
                (link["link_id"], link["store_id"], invoice_id, checkout, plain(amount), currency, now, expires),
            )

    async def _end_link(self, link_id: str, state: str) -> None:
        await self.links.db.write("UPDATE pay_links SET state = ?, ended_at = ? WHERE link_id = ? AND state = 'active'",
                            (state, self.links.now(), link_id))

    async def _checked(self, link: dict[str, Any], res: dict[str, Any]) -> dict[str, Any] | PayOutcome:
        """`LinkService.refresh_reservation` for a customer who is waiting: the updated row, or the outage
        page when BTCPay does not answer in time."""
        try:
            async with asyncio.timeout(BTCPAY_READ_TIMEOUT_S):
                return await self.links.refresh_reservation(res)
        except (TimeoutError, UserFacingError) as exc:
            log.warning("pay link %s: cannot check invoice %s: %s", link["link_id"], res["btcpay_invoice_id"],
                        exc or "timeout")
            return _outage("payment server", "btcpay_unavailable")


def _paid_page(link: dict[str, Any]) -> PayOutcome:
    what = f"Invoice {link['qbo_doc_number']}" if link["kind"] == "qbo" else "This payment"
    return PayOutcome(410, "Already paid", f"{what} has been paid. Thank you!", reason="paid")
