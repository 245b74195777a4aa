"""Pure helpers for the sync, payouts, pay-links and setup screens: daemon results in, text out.

Nothing here builds widgets or touches the socket, so every rule the screens show is tested without a
terminal. Money stays exact: amounts arrive as decimal strings or integer satoshis and are only formatted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from textual.markup import escape

from sovterm.tui.state import age, duration


def _esc(value: Any) -> str:
    return escape(str(value))


# ---- sync ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncProgress:
    """The last `sync.progress` event: `rate` is documents per minute, `eta_s` may be unknown."""

    done: int
    total: int
    rate: float | None = None
    eta_s: float | None = None
    backfill: bool = False

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> SyncProgress:
        return cls(int(data.get("done") or 0), int(data.get("total") or 0), data.get("rate"), data.get("eta_s"),
                   bool(data.get("backfill")))

    @classmethod
    def from_backfill(cls, backfill: dict[str, Any] | None) -> SyncProgress | None:
        """A running backfill as `sync.status` reports it (no rate: that comes with the events)."""
        if not backfill or backfill.get("state") != "running":
            return None
        return cls(int(backfill.get("done") or 0), int(backfill.get("total") or 0), backfill=True)

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.done >= self.total

    def text(self) -> str:
        what = "Backfilling" if self.backfill else "Syncing"
        percent = f" ({self.done * 100 // self.total} %)" if self.total else ""
        parts = [f"{what} {self.done:,} of {self.total:,}{percent}"]
        if self.rate:
            parts.append(f"{self.rate:,.0f}/min")
        if self.eta_s is not None and not self.finished:
            parts.append(f"ETA {duration(self.eta_s)}")
        return " · ".join(parts)


def render_sync_status(status: dict[str, Any] | None) -> str:
    if not status:
        return "[dim]no sync status yet[/]"
    state = "[$warning b]PAUSED[/]" if status.get("paused") else "[$success]running[/]"
    line = (f"{state} · queue {status.get('queued', 0)} · running {status.get('running', 0)} · "
            f"dead {status.get('dead', 0)} · unmatched {status.get('unmatched', 0)} · held {status.get('held', 0)}")
    extra = [f"last poll {age(status.get('last_poll_age_s'))} · last posting {age(status.get('last_posting_age_s'))}"]
    if status.get("held") and status.get("held_reason"):
        extra.append(f"[$warning]held: {_esc(status['held_reason'])}[/]")
    return line + "\n" + " · ".join(extra)


def posting_row(p: dict[str, Any]) -> tuple[str, ...]:
    doc = f"{p.get('entity') or p.get('kind', '')} {p.get('qbo_id') or '—'}"
    flag = " review" if p.get("review") else ""
    return (str(p.get("txn_date") or ""), str(p.get("invoice_id", "")), doc,
            f"{p.get('amount') or ''} {p.get('currency') or ''}".strip(), f"{p.get('status', '')}{flag}")


def dead_row(d: dict[str, Any], now: float) -> tuple[str, ...]:
    since = d.get("since")
    return (str(d.get("job_id")), str(d.get("invoice_id", "")), str(d.get("attempts", "")),
            age(None if since is None else now - since), str(d.get("error") or ""))


def unmatched_row(u: dict[str, Any]) -> tuple[str, ...]:
    return (str(u.get("invoice_id", "")), f"{u.get('amount') or ''} {u.get('currency') or ''}".strip(),
            str(u.get("reason") or ""))


# ---- payouts ---------------------------------------------------------------------------------------


def sats(value: int | None) -> str:
    return "" if value is None else f"{value:,} sats"


def payout_amount(p: dict[str, Any]) -> str:
    """'0.0025 BTC (250,000 sats)' or '25.00 USD' when the satoshi amount is decided only at approval."""
    text = f"{p.get('original_amount') or '?'} {p.get('original_currency') or ''}".strip()
    if p.get("amount_sats") is not None and (p.get("original_currency") or "").upper() != "SATS":
        text += f" ({sats(p['amount_sats'])})"
    return text


def last_four(destination: str | None) -> str:
    return (destination or "")[-4:]


def short(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: max(width - 5, 1)] + "…" + text[-4:]


def approval_text(p: dict[str, Any]) -> str:
    """The four-eyes state: empty when one admin suffices."""
    if not p.get("needs_four_eyes"):
        return ""
    first = p.get("pending_approval_by")
    return f"2nd needed ({first} ok)" if first else "needs 2 admins"


def payout_status(p: dict[str, Any]) -> str:
    if p.get("state") == "AwaitingApproval":
        return approval_text(p) or "awaiting"
    return str(p.get("state", ""))


def short_amount(p: dict[str, Any]) -> str:
    """The table's amount: satoshis when known (what leaves the wallet), else the claimed amount."""
    if p.get("amount_sats") is not None:
        return sats(p["amount_sats"])
    return f"{p.get('original_amount') or '?'} {p.get('original_currency') or ''}".strip()


def payout_row(p: dict[str, Any], now: float) -> tuple[str, ...]:
    created = p.get("created_at")
    return (short(p.get("payout_id"), 9), short_amount(p), short(p.get("destination"), 13),
            short(str(p.get("pull_payment_name") or p.get("pull_payment_id") or "—"), 11),
            "" if created is None else duration(max(now - created, 0)), payout_status(p))


def audit_line(entry: dict[str, Any]) -> str:
    return f"audit #{entry.get('id')}: {entry.get('actor')} {entry.get('action')} {entry.get('subject')} → {entry.get('outcome')}"


# ---- pay links -------------------------------------------------------------------------------------


def link_what(link: dict[str, Any]) -> str:
    if link.get("kind") == "qbo":
        return f"QuickBooks invoice {link.get('qbo_doc_number') or link.get('qbo_invoice_id')}"
    memo = f" · {link['memo']}" if link.get("memo") else ""
    return f"{link.get('amount')} {link.get('currency')}{memo}"


def link_row(link: dict[str, Any], now: float) -> tuple[str, ...]:
    res = link.get("reservation")
    paying = f"{res['state']} {res['btcpay_invoice_id']}" if res else ""
    expires = link.get("expires_at")
    left = "" if expires is None or link.get("state") != "active" else duration(max(expires - now, 0))
    return (str(link.get("link_id", "")), link_what(link), str(link.get("state", "")), left, paying)


@dataclass(frozen=True)
class LinkRequest:
    """What the create dialog sends to `links.create`, or why it cannot yet."""

    params: dict[str, Any] | None
    problem: str | None = None


def link_request(doc_number: str, amount: str, currency: str, memo: str) -> LinkRequest:
    doc_number, amount, currency, memo = doc_number.strip(), amount.strip(), currency.strip(), memo.strip()
    if doc_number and amount:
        return LinkRequest(None, "give an invoice number or an amount, not both")
    if doc_number:
        return LinkRequest({"qbo_invoice": doc_number})
    if not amount:
        return LinkRequest(None, "give a QuickBooks invoice number, or an amount and currency")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return LinkRequest(None, f"{amount!r} is not an amount (write it like 25.00)")
    if not value.is_finite() or value <= 0:
        return LinkRequest(None, "the amount must be positive")
    if not currency:
        return LinkRequest(None, "a fixed-amount link needs a currency (e.g. USD)")
    params: dict[str, Any] = {"amount": str(value), "currency": currency.upper()}
    if memo:
        params["memo"] = memo
    return LinkRequest(params)


# ---- setup wizard ----------------------------------------------------------------------------------

STEPS: tuple[tuple[str, str], ...] = (
    ("btcpay", "BTCPay"),
    ("stores", "Stores"),
    ("qbo", "QuickBooks"),
    ("mode", "Mode"),
    ("accounts", "Accounts"),
    ("backfill", "Backfill"),
    ("summary", "Summary"),
)
STEP_NAMES = tuple(s for s, _ in STEPS)

MODE_HELP = {
    "deposit": (
        "[b]Deposit mode[/] (default): every settled BTCPay invoice becomes a sale in QuickBooks, paid "
        "into your bitcoin asset account. Use it when QuickBooks does not hold an invoice for each order "
        "(a shop, a point of sale, donations).\n"
        "[b]Example[/] (price 100.00 USD, paid 0.002 BTC at 50,000 USD/BTC on 2026-01-01):\n"
        "  SalesReceipt 100.00 USD into the bitcoin asset account, item = your sales item,\n"
        "  memo 'BTCPay invoice … 0.00200000 BTC at 50000 USD/BTC, paid on-chain'.\n"
        "  With 'record as Deposit': a Deposit of 100.00 into the asset account, line from the income account.\n"
        "  Paid 99.40 (within 1 %): still 100.00. Overpaid 110.00: 110.00, flagged for review."
    ),
    "invoicing": (
        "[b]Invoicing mode[/]: you bill customers with QuickBooks invoices and they pay in bitcoin (pay "
        "links do this). The payment is applied to the matching QuickBooks invoice, found by the pay link "
        "or by the BTCPay order id = the invoice number.\n"
        "[b]Example[/] (same payment, order id 1001):\n"
        "  Payment 100.00 USD linked to QuickBooks invoice 1001 → its balance drops to 0.\n"
        "  Paid 100.00 against invoice 1002 of 125.00: Payment 100.00, the invoice stays open with 25.00.\n"
        "  No invoice matches: nothing is written; it waits in the Sync screen's Unmatched list for you."
    ),
}


@dataclass
class WizardProgress:
    """Which steps are done, read back from the daemon so the wizard resumes where it was left.

    The daemon keeps the wizard's progress in its kv (`setup:btcpay`, `setup:qbo`, `setup:accounts`,
    `sync:mode:*`, `setup:backfill_since`), but only some of it is readable over the socket: BTCPay via
    `btcpay.status`, QuickBooks via `qbo.status`, the mapping via `setup.accounts.propose`, the backfill via
    `sync.status`. The mode has no reader yet; it counts as chosen once a later step is done.
    """

    btcpay: dict[str, Any] | None = None
    qbo: dict[str, Any] | None = None
    mappings: dict[str, bool] | None = None  # selected store -> has a saved mapping
    backfill: dict[str, Any] | None = None
    mode_saved: bool = False
    backfill_skipped: bool = False

    @property
    def btcpay_connected(self) -> bool:
        b = self.btcpay or {}
        return b.get("state") not in (None, "not_configured") or bool((b.get("setup") or {}).get("step"))

    @property
    def stores(self) -> list[dict[str, Any]]:
        return list((self.btcpay or {}).get("stores") or [])

    @property
    def stores_selected(self) -> bool:
        setup = (self.btcpay or {}).get("setup") or {}
        return bool(setup.get("done")) and bool(self.stores or setup.get("stores"))

    @property
    def qbo_connected(self) -> bool:
        return bool((self.qbo or {}).get("connected"))

    @property
    def accounts_done(self) -> bool:
        return bool(self.mappings) and all(self.mappings.values())  # type: ignore[union-attr]

    @property
    def backfill_done(self) -> bool:
        return self.backfill_skipped or (self.backfill or {}).get("state", "none") not in ("none", None)

    def done(self, step: str) -> bool:
        return {
            "btcpay": self.btcpay_connected,
            "stores": self.stores_selected,
            "qbo": self.qbo_connected,
            "mode": self.mode_saved or self.accounts_done or self.backfill_done,
            "accounts": self.accounts_done,
            "backfill": self.backfill_done,
            "summary": False,
        }[step]

    def resume_step(self) -> str:
        """The first step not done yet."""
        return next((s for s in STEP_NAMES if not self.done(s)), "summary")


def missing_permissions_text(report: dict[str, Any]) -> str:
    """The permission report of `setup.btcpay.connect`: per store, ready or what is missing and for what."""
    lines = [f"Connected to BTCPay {_esc(report.get('server_version', '?'))} at {_esc(report.get('url', '?'))} "
             f"with key '{_esc(report.get('key_label') or '?')}'; features: {', '.join(report.get('features') or [])}"]
    stores = report.get("stores") or []
    if not stores:
        lines.append("[$warning]the key sees no store[/]: grant it at least btcpay.store.canviewstoresettings")
    for s in stores:
        if s.get("ready"):
            lines.append(f"[$success]✓[/] {_esc(s.get('name'))} ({_esc(s.get('id'))}): all permissions granted")
            continue
        lines.append(f"[$error]✗[/] {_esc(s.get('name'))} ({_esc(s.get('id'))}) lacks:")
        for m in s.get("missing") or []:
            lines.append(f"    {_esc(m.get('grant') or m.get('permission'))}  [dim]for {', '.join(m.get('features') or [])}[/]")
    return "\n".join(lines)


def check_date(text: str) -> str | None:
    """None when `text` is a YYYY-MM-DD date not in the future, else why not."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return f"{text.strip() or 'nothing'} is not a date; use YYYY-MM-DD, e.g. 2026-01-01"
    if day > date.today():
        return "the start date is in the future"
    return None


def summary_text(progress: WizardProgress, mode: str | None) -> str:
    b, q = progress.btcpay or {}, progress.qbo or {}

    def mark(ok: bool) -> str:
        return "[$success]✓[/]" if ok else "[$error]✗[/]"

    stores = ", ".join(f"{_esc(s.get('name'))} ({_esc(s.get('id'))})" for s in progress.stores) or "none"
    company = q.get("company_name") or q.get("realm_id") or "—"
    env = " [$warning](sandbox)[/]" if q.get("sandbox") else ""
    bf = progress.backfill or {}
    backfill = ("skipped" if progress.backfill_skipped and bf.get("state", "none") == "none"
                else f"{bf.get('state')} since {bf.get('since')} ({bf.get('done', 0)} of {bf.get('total', 0)})"
                if bf.get("state", "none") != "none" else "not started")
    return "\n".join([
        f"{mark(progress.btcpay_connected)} BTCPay: {_esc(b.get('url') or 'not connected')}",
        f"{mark(progress.stores_selected)} stores followed: {stores}",
        f"{mark(progress.qbo_connected)} QuickBooks: {_esc(company)}{env}"
        + (f" · [$warning]{_esc(q['sync_blocked'])}[/]" if q.get("connected") and q.get("sync_blocked") else ""),
        f"{mark(progress.done('mode'))} mode: {mode or 'as saved before (no reader for it yet)'}",
        f"{mark(progress.accounts_done)} account mapping: "
        + (", ".join(f"{_esc(k)} {'saved' if v else 'missing'}" for k, v in (progress.mappings or {}).items()) or "—"),
        f"{mark(progress.backfill_done)} backfill: {backfill}",
    ])

