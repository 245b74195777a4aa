"""A fixed daemon for deterministic TUI tests and snapshots: no socket, no clocks, no pids."""

from __future__ import annotations

import asyncio
import copy
import errno
from pathlib import Path
from typing import Any

from sovterm.alerts import AlertTracker, SyncRead, conditions
from sovterm.control.client import explain_connect_error
from sovterm.events import EventBus
from sovterm.tui.app import SovtermApp
from sovterm.tui.connection import Connection
from sovterm.tui.messages import Connected, Disconnected, FeedUpdated, LogLines
from sovterm.tui.state import Capabilities

SOCKET = Path("/run/sovterm/control.sock")

METHODS = [
    {"name": "audit.list", "role": "viewer"},
    {"name": "daemon.reload", "role": "admin"},
    {"name": "events.subscribe", "role": "viewer"},
    {"name": "logs.tail", "role": "viewer"},
    {"name": "methods.list", "role": "viewer"},
    {"name": "secrets.rotate", "role": "admin"},
    {"name": "status", "role": "viewer"},
]
FEED_METHODS = [{"name": "sync.status", "role": "viewer"}, {"name": "sync.totals", "role": "viewer"}]
# The parts' methods (sync, payouts, links, setup), as the daemon lists them.
PART_METHODS = [
    {"name": name, "role": role} for name, role in [
        ("sync.recent", "viewer"), ("sync.dead", "viewer"), ("sync.unmatched", "viewer"), ("sync.retry", "admin"),
        ("sync.resolve", "admin"), ("sync.review", "viewer"), ("sync.reviewed", "admin"), ("sync.now", "admin"), ("sync.pause", "admin"), ("sync.resume", "admin"),
        ("sync.backfill", "admin"), ("reconcile", "viewer"), ("reconcile.book", "admin"), ("payouts.list", "viewer"), ("payouts.refresh", "viewer"),
        ("payouts.approve", "admin"), ("payouts.cancel", "admin"), ("payouts.mark_paid", "admin"),
        ("links.list", "viewer"), ("links.get", "viewer"), ("links.create", "admin"), ("links.expire", "admin"),
        ("links.bulk_create", "admin"), ("btcpay.status", "viewer"), ("qbo.status", "viewer"),
        ("setup.btcpay.connect", "admin"), ("setup.btcpay.select_stores", "admin"), ("btcpay.disconnect", "admin"),
        ("qbo.disconnect", "admin"), ("setup.qbo.start", "admin"), ("setup.qbo.complete", "admin"),
        ("setup.qbo.wait", "viewer"), ("setup.mode", "admin"), ("setup.accounts.propose", "viewer"),
        ("setup.accounts.apply", "admin"), ("qbo.auto_sync", "admin"), ("setup.state", "viewer"),
        ("btcpay.stores", "viewer"), ("qbo.invoices.search", "viewer"),
    ]
]
NOW = 1_782_907_200.0  # 2026-07-01 12:00 UTC: the clock the fixed app shows ages against

STATUS: dict[str, Any] = {
    "version": "0.1.0",
    "pid": 4242,
    "uptime_s": 3725.0,
    "data_dir": "/var/lib/sovterm",
    "config": "/etc/sovterm/sovterm.toml",
    "listener": "https://shop.example.com",
    "schema_version": 3,
    "ready": False,
    "checks": {
        "database": "writable",
        "loops": {
            "reaper": {"interval_s": 300, "last_run_age_s": 42.0, "last_ok": True, "last_error": None,
                       "runs": 12, "paused": False, "fresh": True},
            "sync": {"interval_s": 30, "last_run_age_s": 400.0, "last_ok": True, "last_error": None,
                     "runs": 80, "paused": False, "fresh": False},
        },
        "stale_loops": ["sync"],
        "disk_free_mb": 20480,
        "connectors": {
            "btcpay": {"state": "connected", "detail": "store Main", "since": 0, "ready": True},
            "qbo": {"state": "auth_needed", "detail": "token expired", "since": 0, "ready": False},
        },
    },
    "last_runs": {},
}


def daemon_alerts(status: dict[str, Any], sync: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What the daemon's alert rules make of this state (the TUI only renders them)."""
    found = conditions(status["ready"], status["checks"], SyncRead(sync))
    return [a.model_dump(mode="json") for a in AlertTracker(clock=lambda: NOW - 600).observe(found, EventBus())]


STATUS["alerts"] = daemon_alerts(STATUS)


FEEDS = {
    "sync.status": {"queued": 3, "running": 1, "dead": 1, "held": 0, "done": 512, "unmatched": 1, "review": 0,
                    "paused": False, "last_poll_age_s": 12.0, "last_posting_age_s": 95.0, "held_reason": None,
                    "backfill": {"since": "2026-05-01", "state": "running", "done": 120, "total": 480,
                                 "started_at": int(NOW) - 300, "finished_at": None}},
    "sync.totals": {"currency": "USD", "today": "120.50", "d7": "2310.00", "d30": "9120.75",
                    "daily": ["100", "0", "250.5", "80", "310", "120.50", "400", "90"],
                    "sats_today": 201_250, "sats_d7": 3_850_000, "sats_d30": 15_201_250},
}

DESTINATION = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
PAYOUTS = [
    {"store_id": "S1", "payout_id": "PAY1aaaaaaaa", "state": "AwaitingApproval", "revision": 1,
     "original_amount": "0.0025", "original_currency": "BTC", "payout_amount": None, "payout_currency": "BTC",
     "amount_sats": 250_000, "payment_method": "BTC-CHAIN", "destination": DESTINATION,
     "pull_payment_id": "PP1", "pull_payment_name": "Refund #1042", "metadata": {}, "created_at": int(NOW) - 5400,
     "completed_at": None, "updated_at": int(NOW), "pending_approval_by": None, "needs_four_eyes": False},
    {"store_id": "S1", "payout_id": "PAY2bbbbbbbb", "state": "AwaitingApproval", "revision": 3,
     "original_amount": "0.5", "original_currency": "BTC", "payout_amount": None, "payout_currency": "BTC",
     "amount_sats": 50_000_000, "payment_method": "BTC-CHAIN", "destination": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
     "pull_payment_id": "PP2", "pull_payment_name": "Supplier June", "metadata": {}, "created_at": int(NOW) - 90_000,
     "completed_at": None, "updated_at": int(NOW), "pending_approval_by": "bob", "needs_four_eyes": True},
    {"store_id": "S1", "payout_id": "PAY3cccccccc", "state": "AwaitingPayment", "revision": 2,
     "original_amount": "25.00", "original_currency": "USD", "payout_amount": "0.0005", "payout_currency": "BTC",
     "amount_sats": None, "payment_method": "BTC-LN", "destination": "lnbc1...xyz", "pull_payment_id": None,
     "pull_payment_name": None, "metadata": {}, "created_at": int(NOW) - 600, "completed_at": None,
     "updated_at": int(NOW), "pending_approval_by": None, "needs_four_eyes": False},
]
RECENT = [
    {"store_id": "S1", "invoice_id": f"INV{n}", "kind": "sale", "seq": 0, "entity": entity, "amount": amount,
     "currency": "USD", "status": "posted", "qbo_id": qbo_id, "txn_date": "2026-06-30", "review": review,
     "void_reason": None, "posted_at": int(NOW) - 60 * n}
    for n, (entity, amount, qbo_id, review) in enumerate([
        ("SalesReceipt", "100.00", "1842", None), ("Payment", "125.00", "1843", None),
        ("SalesReceipt", "110.00", "1844", "customer overpaid 10.00 USD")], start=1)
]
DEAD = [{"job_id": 17, "store_id": "S1", "invoice_id": "INVdead", "attempts": 8,
         "error": "QuickBooks refused: Account is inactive (6000)", "since": int(NOW) - 7200}]
REVIEW = [{k: RECENT[2][k] for k in ("store_id", "invoice_id", "kind", "seq", "entity", "amount", "currency", "qbo_id",
                                      "txn_date", "review")}]
UNMATCHED = [{"store_id": "S1", "invoice_id": "INVnope", "reason": "orderId 'nope' matches no QuickBooks invoice",
              "amount": "42.00", "currency": "USD", "since": int(NOW) - 3600}]
LINKS = [
    {"link_id": "a1b2c3d4e5f60718", "kind": "qbo", "store_id": "S1", "qbo_invoice_id": "130", "qbo_doc_number": "1001",
     "amount": None, "currency": None, "memo": None, "kid": "k1k1k1k1", "state": "active", "created_at": int(NOW) - 86400,
     "created_by": "alice", "expires_at": int(NOW) + 29 * 86400, "ended_at": None,
     "reservation": {"btcpay_invoice_id": "BTCinv1", "state": "open", "expires_at": int(NOW) + 900,
                     "amount": "100.00", "currency": "USD"},
     "url": "https://shop.example.com/pay/eyJsIjoiYTFiMmMzZDRlNWY2MDcxOCJ9.sig"},
    {"link_id": "0f1e2d3c4b5a6978", "kind": "fixed", "store_id": "S1", "qbo_invoice_id": None, "qbo_doc_number": None,
     "amount": "25.00", "currency": "USD", "memo": "Gift card", "kid": "k1k1k1k1", "state": "paid",
     "created_at": int(NOW) - 3 * 86400, "created_by": "alice", "expires_at": int(NOW) + 86400, "ended_at": int(NOW),
     "reservation": None, "url": None},
]
OPEN_INVOICES = [
    {"id": "130", "doc_number": "1001", "customer": "Acme Ltd", "balance": "100.00", "currency": "USD",
     "txn_date": "2026-06-01", "due_date": "2026-07-01", "link_id": "a1b2c3d4e5f60718"},
    {"id": "131", "doc_number": "1002", "customer": "Acme Ltd", "balance": "125.00", "currency": "USD",
     "txn_date": "2026-06-10", "due_date": "2026-07-10", "link_id": None},
    {"id": "132", "doc_number": "1003", "customer": "Brewers [Co-op]", "balance": "150.00", "currency": "USD",
     "txn_date": "2026-06-20", "due_date": "2026-07-20", "link_id": None},
]
SETUP_STATE = {  # BTCPay, its store and QuickBooks done, the mode saved; no account mapping yet
    "btcpay": {"done": True, "step": "done", "at": int(NOW) - 7200, "stores": ["S1"]},
    "qbo": {"step": "connected", "realm_id": "9341", "environment": "sandbox", "at": int(NOW) - 3600},
    "modes": {"default": {"mode": "invoicing", "deposit_as": "salesreceipt"}},
}
BTCPAY_STORES = {
    "url": "https://btcpay.example.com", "features": ["sync", "webhooks", "payouts"], "selected": ["S1"],
    "stores": [{"id": "S1", "name": "Main", "missing": [], "ready": True},
               {"id": "S2", "name": "Side shop", "ready": False, "missing": [
                   {"permission": "btcpay.store.canmanagepullpayments", "features": ["payouts"],
                    "grant": "btcpay.store.canmanagepullpayments:S2"}]}],
}
AUDIT = [{"id": 41, "at": int(NOW) - 100, "actor": "alice", "action": "link.create", "subject": "a1b2c3d4e5f60718",
          "detail": "{}", "outcome": "created"}]

LOG_LINES = [
    {"seq": i, "ts": f"2026-07-01T12:00:{i:02d}.000Z", "level": lvl, "component": comp, "msg": msg}
    for i, (lvl, comp, msg) in enumerate([
        ("INFO", "daemon", "sovterm 0.1.0 ready"),
        ("DEBUG", "control", "client attached: alice"),
        ("WARNING", "qbo", "token expired"),
        ("ERROR", "sync", "posting failed"),
    ], start=1)
]


class FakeClient:
    """Stands in for ControlClient behind the Daemon facade; records every call. A result may be a function
    of the params; an exception result is raised (a `CallFailed` becomes the UI's inline error)."""

    def __init__(self, results: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results = results or {}

    async def call(self, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        result = self.results.get(method, {})
        if callable(result):
            result = result(**params)
        if isinstance(result, Exception):
            raise result
        return copy.deepcopy(result)

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]


def search_invoices(query: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """As the daemon matches: the number or the customer contains the query, case-insensitively."""
    needle = (query or "").strip().lower()
    return [i for i in OPEN_INVOICES if needle in i["doc_number"].lower() or needle in i["customer"].lower()][:limit]


#: A books-match report: the documents match, the wallet holds 20,500 sats less than the ledger says.
BOOKS = {
    "ok": False, "differences": [],
    "days": [{"date": "2026-03-01", "currency": "USD", "btcpay_count": 2, "btcpay_sales": "97.50",
              "btcpay_refunds": "0", "btcpay_transfers": "39.93", "qbo_count": 6, "qbo_sales": "97.50",
              "qbo_refunds": "0", "qbo_transfers": "39.93"},
             {"date": "2026-03-01", "currency": "EUR", "btcpay_count": 1, "btcpay_sales": "80.00",
              "btcpay_refunds": "0", "btcpay_transfers": "0", "qbo_count": 1, "qbo_sales": "80.00",
              "qbo_refunds": "0", "qbo_transfers": "0"}],
    "wallets": [{"store_id": "S1", "ok": False, "received": 149_000, "fees_collected": 1_000, "paid_out": 60_000,
                 "fees_paid": 1_430, "booked": 0, "ledger": 88_570, "confirming": 0, "wallet_onchain": 28_090,
                 "wallet_lightning": 39_980, "wallet": 68_070, "difference": -20_500, "notes": [],
                 "unexplained": [{"txid": "ab" * 32, "sats": -20_500, "timestamp": 1_772_000_000,
                                  "confirmations": 1}]}],
}


def part_results() -> dict[str, Any]:
    """What the parts' methods answer in the fixed daemon; approving writes an audit entry as the daemon does."""
    audit = list(AUDIT)

    def decide(result: str, action: str) -> Any:
        def answer(payout_id: str) -> dict[str, Any]:
            audit.insert(0, {"id": audit[0]["id"] + 1, "at": int(NOW), "actor": "alice", "action": action,
                             "subject": payout_id, "detail": "{}", "outcome": result})
            payout = next(p for p in PAYOUTS if p["payout_id"] == payout_id)
            return {**payout, "result": result}
        return answer

    return {
        "btcpay.status": {"url": "https://btcpay.example.com", "features": ["sync", "webhooks", "payouts"],
                          "key_label": "sovterm", "state": "connected", "detail": "",
                          "setup": {"done": True, "step": "done", "stores": ["S1"]},
                          "stores": [{"id": "S1", "name": "Main"}]},
        "qbo.status": {"configured": True, "connected": True, "realm_id": "9341", "company_name": "Sandbox Co",
                       "sandbox": True, "auto_sync": False, "token_state": "connected", "days_left": 99,
                       "sync_blocked": "automatic posting is off for sandbox companies"},
        "setup.accounts.propose": lambda store_id: {
            "store_id": store_id, "realm_id": "9341", "sandbox": True, "current": None,
            "defaults": [{"key": "deposit_account_id", "entity": "Account", "name": "Bitcoin", "existing_id": None,
                          "action": "create"}]},
        "sync.recent": RECENT, "sync.dead": DEAD, "sync.unmatched": UNMATCHED, "sync.retry": {"retried": 1},
        "sync.resolve": lambda invoice_id, **kw: {"invoice_id": invoice_id, "store_id": "S1", "resolution": kw},
        "sync.review": lambda limit=50: REVIEW[:limit], "sync.reviewed": lambda invoice_id, **kw: {"reviewed": 1},
        "sync.status": FEEDS["sync.status"], "sync.totals": FEEDS["sync.totals"],
        "reconcile": lambda date_from, date_to: {**BOOKS, "from": date_from, "to": date_to},
        "reconcile.book": lambda txid, account, store_id: {"store_id": store_id, "txid": txid, "sats": -20_500,
                                                          "account": account, "account_id": "35", "direction": "out"},
        "payouts.list": lambda include_final: PAYOUTS if include_final else PAYOUTS[:2],
        "payouts.approve": decide("approved", "payout.approve"),
        "payouts.cancel": decide("cancelled", "payout.cancel"),
        "audit.list": lambda limit: audit[:limit],
        "links.list": LINKS,
        "links.get": lambda link_id: next(link for link in LINKS if link["link_id"] == link_id),
        "qbo.invoices.search": search_invoices,
        "setup.state": SETUP_STATE, "btcpay.stores": BTCPAY_STORES,
        "links.create": lambda **kw: {**LINKS[0], "link_id": "ffeeddccbbaa9988", "qbo_doc_number":
                                      kw.get("qbo_invoice", "1001"), "reservation": None, "balance": "125.00"},
    }


class FixedConnection(Connection):
    """Posts what a real connection would after connecting (or failing), then stays quiet."""

    def __init__(self, post: Any, *, role: str = "admin", up: bool = True, feeds: bool = False,
                 parts: bool = False) -> None:
        super().__init__(SOCKET, post)
        self.role, self.up, self.with_feeds, self.with_parts = role, up, feeds, parts
        self.client = FakeClient({
            "daemon.reload": {"applied": [], "restart_needed": []},
            "secrets.rotate": {"reencrypted": 2, "key_file": "/var/lib/sovterm/sovterm.key"},
            **(part_results() if parts else {}),
        })

    async def run(self) -> None:
        if not self.up:
            exc = explain_connect_error(SOCKET, OSError(errno.ENOENT, "No such file or directory"))
            self._post(Disconnected(exc.message, exc.fix, 3, 1.0))
            await asyncio.Event().wait()
        hello = {"version": "0.1.0", "protocol": 1, "role": self.role, "user": "alice"}
        caps = Capabilities.from_daemon(hello, METHODS + (FEED_METHODS if self.with_feeds else [])
                                        + (PART_METHODS if self.with_parts else []))
        self.daemon.attach(self.client, caps)  # type: ignore[arg-type]
        sync = FEEDS["sync.status"] if self.with_feeds else None  # the daemon has a sync part: its alerts too
        self._post(Connected(hello, caps, {**STATUS, "alerts": daemon_alerts(STATUS, sync)}))
        self._post(LogLines(list(LOG_LINES), replace=True))
        if self.with_feeds:
            for method, result in FEEDS.items():
                self._post(FeedUpdated(method, result))
        await asyncio.Event().wait()


def fixed_app(*, role: str = "admin", up: bool = True, feeds: bool = False, parts: bool = False) -> SovtermApp:
    """The app on the fixed daemon; `parts` adds the sync, payouts, links and setup methods (and feeds)."""
    app = SovtermApp(SOCKET, connection_factory=lambda post: FixedConnection(
        post, role=role, up=up, feeds=feeds or parts, parts=parts))
    app.session.clock = lambda: NOW
    return app
