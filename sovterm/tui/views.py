"""Pure helpers for the sync, payouts, pay-links and setup screens: daemon results in, text out.

Nothing here builds widgets or touches the socket, so every rule the screens show is tested without a
terminal. Money stays exact: amounts arrive as decimal strings or integer satoshis and are only formatted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sovterm.formatting import age, duration, sats_text, signed_sats_text
from sovterm.tui.text import escape


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


def review_row(p: dict[str, Any]) -> tuple[str, ...]:
    """A posting on the review list: the recent-postings columns, with why in place of the status."""
    return (*posting_row(p)[:4], str(p.get("review") or ""))


def books_text(report: dict[str, Any] | None) -> str:
    """The books-match report in short: the verdict, the day totals per currency, and per store the bitcoin
    the ledger says it holds against the wallet (the unexplained transactions go in their own table)."""
    if report is None:
        return "[dim]checking the books…[/]"
    verdict = "[green]BOOKS MATCH[/]" if report.get("ok") else "[red]BOOKS DIFFER[/]"
    differences = len(report.get("differences") or [])
    lines = [f"{verdict} · {_esc(report.get('from'))} to {_esc(report.get('to'))} · {differences} document difference(s)"]
    totals: dict[str, list[Decimal]] = {}
    for d in report.get("days") or []:
        t = totals.setdefault(str(d.get("currency")), [Decimal(0)] * 4)
        for i, key in enumerate(("btcpay_sales", "qbo_sales", "btcpay_transfers", "qbo_transfers")):
            t[i] += Decimal(str(d.get(key, "0")))
    for currency, (b_sales, q_sales, b_out, q_out) in sorted(totals.items()):
        lines.append(f"{_esc(currency)}: sales BTCPay {b_sales} / QuickBooks {q_sales} · transfers BTCPay {b_out} / "
                     f"QuickBooks {q_out}")
    for w in report.get("wallets") or []:
        state = ("[red]differs[/]" if not w.get("ok") else "[yellow]not checked[/]" if w.get("difference") is None
                 else "[green]matches[/]")
        confirming = f" + {sats_text(w['confirming'])} confirming" if w.get("confirming") else ""
        lines.append(f"store {_esc(w.get('store_id'))}: ledger {sats_text(w.get('ledger'))}{confirming} · wallet "
                     f"{sats_text(w.get('wallet'))} {state}"
                     + (f" ({signed_sats_text(w['difference'])})" if w.get("difference") else ""))
        lines += [f"  [dim]{_esc(n)}[/]" for n in w.get("notes") or []]
    return "\n".join(lines)


def unexplained_rows(report: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(store, txid, sats) of every wallet transaction no document explains."""
    return [(str(w.get("store_id")), str(t.get("txid")), signed_sats_text(int(t.get("sats") or 0)))
            for w in (report or {}).get("wallets") or [] for t in w.get("unexplained") or []]


# ---- payouts ---------------------------------------------------------------------------------------


def payout_amount(p: dict[str, Any]) -> str:
    """'0.0025 BTC (250,000 sats)' or '25.00 USD' when the satoshi amount is decided only at approval."""
    text = f"{p.get('original_amount') or '?'} {p.get('original_currency') or ''}".strip()
    if p.get("amount_sats") is not None and (p.get("original_currency") or "").upper() != "SATS":
        text += f" ({sats_text(p['amount_sats'])})"
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
        return sats_text(p["amount_sats"])
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


def invoice_option(inv: dict[str, Any]) -> str:
    """One open QuickBooks invoice in the create dialog's list (markup; names escaped)."""
    due = f" · due {_esc(inv['due_date'])}" if inv.get("due_date") else ""
    linked = f" · [$warning]has link {_esc(inv['link_id'])}[/]" if inv.get("link_id") else ""
    return (f"[b]{_esc(inv.get('doc_number') or inv.get('id'))}[/] {_esc(inv.get('customer') or '—')} · "
            f"{_esc(inv.get('balance'))} {_esc(inv.get('currency') or '')}".rstrip() + due + linked)


def invoice_choice(text: str, found: list[dict[str, Any]] | None, complete: bool) -> LinkRequest | None:
    """What the invoice field means when nothing was picked: None to send it as typed (a number), else the
    invoice it stands for or why it is ambiguous. `found` is the search result for exactly `text`
    (None while a search is pending); `complete` says the list was not cut at the search limit."""
    text = text.strip()
    if not text or found is None or any(str(i.get("doc_number")) == text for i in found):
        return None
    if len(found) == 1:
        return LinkRequest({"qbo_invoice": str(found[0].get("doc_number"))})
    if not complete:
        return None
    if not found:
        return LinkRequest(None, f"no open QuickBooks invoice has the number or customer {text!r}")
    return LinkRequest(None, f"{len(found)} open invoices match {text!r}: pick one in the list (↓, then Enter)")


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
    "summary": (
        "[b]Daily summary mode[/]: one document per currency and day (in the store's time zone) instead of "
        "one per invoice, posted once the day has closed (an hour after local midnight). For busy stores: "
        "100,000 invoices a year become a few hundred documents.\n"
        "[b]Example[/] (2026-01-01: 100.00 on-chain, 25.00 and 12.50 over Lightning, a 30.00 refund):\n"
        "  Deposit 107.50 into the bitcoin asset account: on-chain sales 100.00, Lightning sales 37.50,\n"
        "  refunds -30.00. A payment of a closed day seen late: an adjustment document, never an edit.\n"
        "  Invoices of days before the first summarised day keep one document each."
    ),
}


@dataclass
class WizardProgress:
    """Which steps are done, read back from the daemon so the wizard resumes where it was left.

    `setup` is `setup.state`: each part's own record of its setup step (`btcpay`, `qbo`, `accounts`,
    `backfill_since`) and the saved `modes`. The status methods only add what the steps show (addresses,
    company name, live backfill progress). A skipped backfill is the operator's choice in this session: the
    daemon keeps no record of it.
    """

    setup: dict[str, Any] | None = None
    btcpay: dict[str, Any] | None = None  # btcpay.status
    qbo: dict[str, Any] | None = None  # qbo.status
    backfill: dict[str, Any] | None = None  # sync.status's backfill
    backfill_skipped: bool = False

    def _part(self, name: str) -> dict[str, Any]:
        value = (self.setup or {}).get(name)
        return value if isinstance(value, dict) else {}

    @property
    def btcpay_connected(self) -> bool:
        return bool(self._part("btcpay"))  # written by a successful connect, removed by disconnect

    @property
    def followed(self) -> list[str]:
        """The store ids the stores step chose."""
        b = self._part("btcpay")
        return [str(s) for s in b.get("stores") or []] if b.get("done") else []

    @property
    def stores(self) -> list[dict[str, Any]]:
        """The followed stores, named when `btcpay.status` knows them."""
        names = {str(s.get("id")): s for s in (self.btcpay or {}).get("stores") or []}
        return [{"id": i, "name": names.get(i, {}).get("name") or i} for i in self.followed]

    @property
    def stores_selected(self) -> bool:
        return bool(self.followed)

    @property
    def qbo_connected(self) -> bool:
        return self._part("qbo").get("step") == "connected"

    @property
    def realm_id(self) -> str | None:
        return self._part("qbo").get("realm_id") if self.qbo_connected else None

    @property
    def mappings(self) -> dict[str, bool]:
        """Followed store -> has a mapping saved for the connected company (one for another company
        does not count: its accounts are not in this one)."""
        saved = self._part("accounts")
        return {s: isinstance(saved.get(s), dict) and saved[s].get("realm_id") == self.realm_id
                for s in self.followed}

    @property
    def accounts_done(self) -> bool:
        mappings = self.mappings
        return self.qbo_connected and bool(mappings) and all(mappings.values())

    @property
    def saved_mode(self) -> dict[str, Any] | None:
        """The mode saved as the default (what the wizard sets), else the first saved per store."""
        modes = (self.setup or {}).get("modes") or {}
        if not isinstance(modes, dict) or not modes:
            return None
        value = modes.get("default") or next(iter(modes.values()))
        return value if isinstance(value, dict) else None

    @property
    def backfill_done(self) -> bool:
        started = (self.backfill or {}).get("state", "none") not in ("none", None)
        return self.backfill_skipped or started or bool((self.setup or {}).get("backfill_since"))

    def done(self, step: str) -> bool:
        return {
            "btcpay": self.btcpay_connected,
            "stores": self.stores_selected,
            "qbo": self.qbo_connected,
            "mode": self.saved_mode is not None,
            "accounts": self.accounts_done,
            "backfill": self.backfill_done,
            "summary": False,
        }[step]

    def resume_step(self) -> str:
        """The first step not done yet."""
        return next((s for s in STEP_NAMES if not self.done(s)), "summary")


def mode_text(mode: dict[str, Any] | None) -> str:
    if not mode:
        return "not saved yet"
    text = str(mode.get("mode"))
    if mode.get("mode") == "deposit":
        text += f" (payments recorded as {'a Deposit' if mode.get('deposit_as') == 'deposit' else 'a SalesReceipt'})"
    if mode.get("mode") == "summary":
        text += f" (one document a day from {mode.get('summary_from')}, {mode.get('timezone') or 'UTC'})"
    return text


def missing_permissions_text(report: dict[str, Any]) -> str:
    """The permission report of `setup.btcpay.connect` or `btcpay.stores` (the stored key, which reports no
    server version or key label): per store, ready or what is missing and for what."""
    version = f" {_esc(report['server_version'])}" if report.get("server_version") else ""
    key = f" with key '{_esc(report['key_label'])}'" if report.get("key_label") else ""
    lines = [f"Connected to BTCPay{version} at {_esc(report.get('url', '?'))}{key}; "
             f"features: {', '.join(report.get('features') or [])}"]
    stores = report.get("stores") or []
    if not stores:
        lines.append("[$warning]the key sees no store[/]: grant it at least btcpay.store.canviewstoresettings")
    for s in stores:
        own = " [dim](its own key)[/]" if s.get("api_key") == "own" else ""
        if s.get("ready"):
            lines.append(f"[$success]✓[/] {_esc(s.get('name'))} ({_esc(s.get('id'))}){own}: all permissions granted")
        elif s.get("problem"):
            lines.append(f"[$error]✗[/] {_esc(s.get('name'))} ({_esc(s.get('id'))}){own}: {_esc(s['problem'])}")
            continue
        else:
            lines.append(f"[$error]✗[/] {_esc(s.get('name'))} ({_esc(s.get('id'))}) lacks:")
        for m in s.get("missing") or []:
            lines.append(f"    {_esc(m.get('grant') or m.get('permission'))}  [dim]for {', '.join(m.get('features') or [])}[/]")
        # optional features (pay links): the store is usable, the operator is told what will not work
        for w in s.get("warnings") or []:
            lines.append(f"    [$warning]![/] {_esc(w.get('grant'))}  [dim]missing: {_esc(w.get('consequence'))}[/]")
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


def summary_text(progress: WizardProgress) -> str:
    b, q = progress.btcpay or {}, progress.qbo or {}

    def mark(ok: bool) -> str:
        return "[$success]✓[/]" if ok else "[$error]✗[/]"

    stores = ", ".join(f"{_esc(s.get('name'))} ({_esc(s.get('id'))})" for s in progress.stores) or "none"
    company = q.get("company_name") or q.get("realm_id") or "—"
    env = " [$warning](sandbox)[/]" if q.get("sandbox") else ""
    bf = progress.backfill or {}
    since = (progress.setup or {}).get("backfill_since")
    if bf.get("state", "none") != "none":
        backfill = f"{bf.get('state')} since {bf.get('since')} ({bf.get('done', 0)} of {bf.get('total', 0)})"
        if bf.get("waiting"):
            backfill += f", {bf['waiting']} waiting for BTCPay to confirm a payment"
    elif since:
        backfill = f"from {_esc(since)}, not started yet"
    else:
        backfill = "skipped" if progress.backfill_skipped else "not started"
    return "\n".join([
        f"{mark(progress.btcpay_connected)} BTCPay: {_esc(b.get('url') or 'not connected')}",
        f"{mark(progress.stores_selected)} stores followed: {stores}",
        f"{mark(progress.qbo_connected)} QuickBooks: {_esc(company)}{env}"
        + (f" · [$warning]{_esc(q['sync_blocked'])}[/]" if q.get("connected") and q.get("sync_blocked") else ""),
        f"{mark(progress.done('mode'))} mode: {_esc(mode_text(progress.saved_mode))}",
        f"{mark(progress.accounts_done)} account mapping: "
        + (", ".join(f"{_esc(k)} {'saved' if v else 'missing'}" for k, v in progress.mappings.items()) or "—"),
        f"{mark(progress.backfill_done)} backfill: {backfill}",
    ])


def items_view(items: dict[str, Any] | None) -> tuple[str, list[tuple[str, str, str, str]]]:
    """The Items tab: the store's unknown-item policy and sales-tax setting, and a row per BTCPay item."""
    if items is None:
        return "[dim]loading…[/]", []
    tax = items["tax"]
    text = (f"store {items['store_id']} · unknown items: [b]{items['policy']}[/] · sales tax: [b]{tax['kind']}[/]"
            + (f" ({tax['names'].get('tax_code', tax['tax_code_id'])})" if tax.get("tax_code_id") else ""))
    if items.get("held"):
        text += f"\n[b]{items['held']} posting(s) held[/]: select the item and press m to map it"
    rows = []
    for i in items["items"]:
        target = (f"{i['qbo_name']} (#{i['qbo_item_id']})" if i["qbo_item_id"] else
                  "store's sales item" if i["how"] == "default" else "NOT MAPPED")
        rows.append((i["code"], i.get("title") or "", target, str(i["waiting"] or "")))
    return text, rows
