"""Sync: live progress, recent postings with their QuickBooks ids, dead letters, unmatched payments,
postings flagged for review, BTCPay items and the QuickBooks items they post to, and whether the books
match (the last 30 days and the bitcoin held, with the wallet transactions no document explains, which an
admin can book), the bitcoin held at fair value (Holdings, `sovterm books holdings`), and the rollback of
a date range (`X`, see `screens/rollback.py`).

The counts come from the app's `sync.status` feed; the lists are fetched when the screen is shown and
again (debounced) when the daemon reports a job or an invoice changed; progress comes from
`sync.progress` events, or from the backfill state in `sync.status` until the first event arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)

from sovterm.formatting import HOLDINGS_COLUMNS, holding_cells
from sovterm.tui.actions import actions_for
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen, render_actions
from sovterm.tui.screens.rollback import RollbackConfirmScreen, RollbackRangeScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape
from sovterm.tui.views import (
    SyncProgress,
    books_text,
    dead_row,
    items_view,
    posting_row,
    render_sync_status,
    review_row,
    unexplained_rows,
    unmatched_row,
)

ACTIONS = actions_for("sync")
RELOAD_TOPICS = ("sync.job", "invoice.updated")
RELOAD_DEBOUNCE_S = 0.3
RECENT_LIMIT = 50
BOOKS_DAYS = 30  # the Books tab checks this many days up to today


class BookScreen(ModalScreen[dict[str, Any] | None]):
    """Book a wallet transaction no document explains as a Transfer to/from an account; Esc books nothing."""

    CSS_PATH = "sync.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, store_id: str, txid: str, amount: str) -> None:
        super().__init__()
        self.store_id, self.txid, self.amount = store_id, txid, amount

    def compose(self) -> ComposeResult:
        with Vertical(id="book-box", classes="dialog") as box:
            box.border_title = "Book a wallet transaction"
            yield Static(f"[b]{self.txid}[/] · {self.amount}\nno invoice payment or payout explains it", id="book-what")
            yield Label("the QuickBooks account it went to or came from (a bank, asset, liability or equity)")
            yield Input(placeholder="e.g. Checking", id="book-account", compact=True)
            yield Static(id="book-problem", classes="problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="book-cancel", variant="primary")
                yield Button("Book", id="book-apply")

    def on_mount(self) -> None:
        self.query_one("#book-cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "book-apply":
            self.dismiss(None)
            return
        account = self.query_one("#book-account", Input).value.strip()
        if not account:
            self.query_one("#book-problem", Static).update("type the account first")
            return
        self.dismiss({"txid": self.txid, "account": account, "store_id": self.store_id})


class MapItemScreen(ModalScreen[dict[str, Any] | None]):
    """Map a BTCPay item code to a QuickBooks item (`sovterm setup items map`); Esc maps nothing."""

    CSS_PATH = "sync.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, store_id: str, code: str, title: str) -> None:
        super().__init__()
        self.store_id, self.code, self.title = store_id, code, title

    def compose(self) -> ComposeResult:
        with Vertical(id="item-box", classes="dialog") as box:
            box.border_title = "Map a BTCPay item"
            yield Static(f"[b]{self.code}[/] {self.title}", id="item-what")
            yield Label("the QuickBooks item (name or id) its sales post to")
            yield Input(placeholder="e.g. Latte", id="item-qbo", compact=True)
            yield Static(id="item-problem", classes="problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="item-cancel", variant="primary")
                yield Button("Map", id="item-apply")

    def on_mount(self) -> None:
        self.query_one("#item-qbo", Input).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "item-apply":
            self.dismiss(None)
            return
        item = self.query_one("#item-qbo", Input).value.strip()
        if not item:
            self.query_one("#item-problem", Static).update("type the QuickBooks item first")
            return
        self.dismiss({"store_id": self.store_id, "code": self.code, "item": item})


class ResolveScreen(ModalScreen[dict[str, Any] | None]):
    """Decide what an unmatched payment is; the default (focus, Esc) changes nothing."""

    CSS_PATH = "sync.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__()
        self.item = item

    def compose(self) -> ComposeResult:
        inv = self.item
        with Vertical(id="resolve-box", classes="dialog") as box:
            box.border_title = "Resolve an unmatched payment"
            yield Static(
                f"BTCPay invoice [b]{inv.get('invoice_id')}[/] · {inv.get('amount')} {inv.get('currency')}\n"
                f"why: {inv.get('reason') or 'no matching QuickBooks invoice'}", id="resolve-what")
            yield Label("apply it to QuickBooks invoice number")
            yield Input(placeholder="e.g. 1002", id="resolve-invoice", compact=True)
            yield Label("or ignore it, because")
            yield Input(placeholder="e.g. test order", id="resolve-reason", compact=True)
            yield Static(id="resolve-problem", classes="problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="resolve-cancel", variant="primary")
                yield Button("Apply", id="resolve-apply")
                yield Button("As deposit", id="resolve-deposit")
                yield Button("Ignore", id="resolve-ignore")

    def on_mount(self) -> None:
        self.query_one("#resolve-cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        invoice_id = self.item.get("invoice_id")
        problem = self.query_one("#resolve-problem", Static)
        if event.button.id == "resolve-apply":
            number = self.query_one("#resolve-invoice", Input).value.strip()
            if not number:
                problem.update("type the QuickBooks invoice number first")
                return
            self.dismiss({"invoice_id": invoice_id, "qbo_invoice": number})
        elif event.button.id == "resolve-deposit":
            self.dismiss({"invoice_id": invoice_id, "as_deposit": True})
        elif event.button.id == "resolve-ignore":
            reason = self.query_one("#resolve-reason", Input).value.strip()
            if not reason:
                problem.update("say why it should be ignored (kept with the decision)")
                return
            self.dismiss({"invoice_id": invoice_id, "ignore": reason})
        else:
            self.dismiss(None)


class SyncScreen(DaemonScreen):
    CSS_PATH = "sync.tcss"
    BINDINGS = [
        *(Binding(a.key, f"run('{a.name}')", a.title) for a in ACTIONS),
        Binding("r", "retry", "Retry dead"),
        Binding("R", "retry_all", "Retry all"),
        Binding("e", "resolve", "Resolve"),
        Binding("v", "reviewed", "Reviewed"),
        Binding("b", "book", "Book tx"),
        Binding("m", "map_item", "Map item"),
        Binding("f", "reload", "Refresh"),
        Binding("X", "rollback", "Roll back"),
        Binding("1", "tab('recent')", "Recent", show=False),
        Binding("2", "tab('dead')", "Dead", show=False),
        Binding("3", "tab('unmatched')", "Unmatched", show=False),
        Binding("4", "tab('review')", "To review", show=False),
        Binding("5", "tab('books')", "Books", show=False),
        Binding("6", "tab('holdings')", "Holdings", show=False),
        Binding("7", "tab('items')", "Items", show=False),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.progress: SyncProgress | None = None
        self.dead: list[dict[str, Any]] = []
        self.unmatched: list[dict[str, Any]] = []
        self.review: list[dict[str, Any]] = []
        self.recent: list[dict[str, Any]] = []
        self.books: dict[str, Any] | None = None
        self.holdings: list[dict[str, Any]] = []
        self.items: dict[str, Any] | None = None
        self._reload_pending = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="sync-status")
        with Horizontal(id="sync-progress"):
            yield ProgressBar(id="sync-bar", show_eta=False, show_percentage=False)
            yield Static(id="sync-progress-text")
        with TabbedContent(id="sync-tabs", initial="recent"):
            with TabPane("Recent postings", id="recent"):
                yield DataTable(id="recent-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Dead letters", id="dead"):
                yield DataTable(id="dead-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Unmatched", id="unmatched"):
                yield DataTable(id="unmatched-table", cursor_type="row", zebra_stripes=True)
            with TabPane("To review", id="review"):
                yield DataTable(id="review-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Books", id="books"):
                yield Static(id="books-text")
                yield DataTable(id="books-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Holdings", id="holdings"):
                yield Static(id="holdings-text")
                yield DataTable(id="holdings-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Items", id="items"):
                yield Static(id="items-text")
                yield DataTable(id="items-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="sync-actions", classes="actions-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#recent-table", DataTable).add_columns("date", "BTCPay invoice", "QuickBooks doc", "amount",
                                                              "status")
        self.query_one("#dead-table", DataTable).add_columns("job", "BTCPay invoice", "tries", "since", "reason")
        self.query_one("#unmatched-table", DataTable).add_columns("BTCPay invoice", "amount", "reason")
        self.query_one("#review-table", DataTable).add_columns("date", "BTCPay invoice", "QuickBooks doc", "amount",
                                                              "why")
        self.query_one("#books-table", DataTable).add_columns("store", "wallet transaction nothing explains", "amount")
        self.query_one("#holdings-table", DataTable).add_columns(*HOLDINGS_COLUMNS)
        self.query_one("#items-table", DataTable).add_columns("BTCPay item", "title", "QuickBooks item", "held")
        self.show_state(self.session.state)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()  # also the first time the screen is shown

    # ---- rendering --------------------------------------------------------------------------------

    def show_state(self, state: DaemonState) -> None:
        status = state.feeds.get("sync.status")
        status = status if isinstance(status, dict) else None
        text = render_sync_status(status)
        if status is None and (why := self.may("sync.status")):
            text += f"\n[dim]{why}[/]"
        self.query_one("#sync-status", Static).update(text)
        if status is not None and (self.progress is None or self.progress.finished):
            from_status = SyncProgress.from_backfill(status.get("backfill"))
            if from_status is not None:
                self.progress = from_status
        self._show_progress()
        daemon = self.session.daemon
        self.query_one("#sync-actions", Static).update(
            render_actions(ACTIONS, {a.method: daemon.why_not(a.method) for a in ACTIONS})
            + ("" if self.may("sync.retry") is None else " · retry/resolve/reviewed need the admin role"))
        self.refresh_bindings()

    def _show_progress(self) -> None:
        box = self.query_one("#sync-progress")
        box.display = self.progress is not None
        if self.progress is None:
            return
        bar = self.query_one("#sync-bar", ProgressBar)
        bar.update(total=max(self.progress.total, 1), progress=self.progress.done)
        self.query_one("#sync-progress-text", Static).update(self.progress.text())

    def show_lists(self) -> None:
        now = self.session.clock()
        recent = self.query_one("#recent-table", DataTable)
        recent.clear()
        for p in self.recent:
            recent.add_row(*posting_row(p))
        dead = self.query_one("#dead-table", DataTable)
        dead.clear()
        for d in self.dead:
            dead.add_row(*dead_row(d, now), key=str(d.get("job_id")))
        unmatched = self.query_one("#unmatched-table", DataTable)
        unmatched.clear()
        for u in self.unmatched:
            unmatched.add_row(*unmatched_row(u), key=str(u.get("invoice_id")))
        review = self.query_one("#review-table", DataTable)
        review.clear()
        for p in self.review:
            review.add_row(*review_row(p), key=f"{p.get('invoice_id')}/{p.get('kind')}/{p.get('seq')}")
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("dead").label = f"Dead letters ({len(self.dead)})"  # type: ignore[assignment]
        tabs.get_tab("unmatched").label = f"Unmatched ({len(self.unmatched)})"  # type: ignore[assignment]
        tabs.get_tab("review").label = f"To review ({len(self.review)})"  # type: ignore[assignment]

    # ---- data ---------------------------------------------------------------------------------------

    def reload(self) -> None:
        self._reload_pending = False

        def store(name: str) -> Any:
            def done(result: Any) -> None:
                setattr(self, name, list(result or []))
                self.show_lists()

            return done

        for method, name, params in (("sync.recent", "recent", {"limit": RECENT_LIMIT}), ("sync.dead", "dead", {}),
                                     ("sync.unmatched", "unmatched", {}), ("sync.review", "review", {})):
            if self.may(method) is None:
                self.call(method, params, done=store(name), exclusive=True)

    def load_books(self) -> None:
        """The books-match report for the last `BOOKS_DAYS` days (asked only when the Books tab is shown: it
        polls BTCPay and queries QuickBooks)."""
        if (why := self.may("reconcile")) is not None:
            self.query_one("#books-text", Static).update(f"[dim]{why}[/]")
            return
        today = datetime.fromtimestamp(self.session.clock(), UTC).date()
        period = {"date_from": (today - timedelta(days=BOOKS_DAYS - 1)).isoformat(), "date_to": today.isoformat()}

        def done(report: dict[str, Any]) -> None:
            self.books = report
            self.show_books()

        self.query_one("#books-text", Static).update(books_text(None))
        self.call("reconcile", period, done=done, exclusive=True, group="books")

    def show_books(self) -> None:
        self.query_one("#books-text", Static).update(books_text(self.books))
        table = self.query_one("#books-table", DataTable)
        table.clear()
        for row in unexplained_rows(self.books):
            table.add_row(*row, key=f"{row[0]}/{row[1]}")

    def load_holdings(self) -> None:
        """The bitcoin held at fair value today (`sovterm books holdings`), asked when the tab is shown."""
        text = self.query_one("#holdings-text", Static)
        if (why := self.may("books.holdings")) is not None:
            text.update(f"[dim]{why}[/]")
            return

        def done(rows: list[dict[str, Any]]) -> None:
            self.holdings = rows
            table = self.query_one("#holdings-table", DataTable)
            table.clear()
            for h in rows:
                table.add_row(*holding_cells(h), key=h["account_id"])
            text.update(f"as of {rows[0]['as_of']}: {rows[0]['rate_source']}; `sovterm books remeasure` posts "
                        "the column 'to remeasure'" if rows else "no bitcoin account is mapped yet")

        def failed(message: str) -> None:
            text.update(f"[b]holdings unavailable[/]: {message}")

        text.update("[dim]reading the ledger…[/]")
        self.call("books.holdings", {}, done=done, failed=failed, exclusive=True, group="holdings")
    def load_items(self) -> None:
        """The store's items (`setup.items.list`; several stores: the CLI's `--store`)."""
        if (why := self.may("setup.items.list")) is not None:
            self.query_one("#items-text", Static).update(f"[dim]{why}[/]")
            return

        def done(result: dict[str, Any]) -> None:
            self.items = result
            self.show_items()

        def failed(message: str) -> None:
            self.query_one("#items-text", Static).update(f"[dim]{escape(message)}[/]")

        self.call("setup.items.list", {}, done=done, failed=failed, exclusive=True, group="items")

    def show_items(self) -> None:
        text, rows = items_view(self.items)
        self.query_one("#items-text", Static).update(text)
        table = self.query_one("#items-table", DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row, key=row[0])

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "books":
            self.load_books()
        elif event.pane.id == "holdings":
            self.load_holdings()
        elif event.pane.id == "items":
            self.load_items()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic == "sync.progress":
            self.progress = SyncProgress.from_event(event.data)
            self._show_progress()
        elif event.topic.startswith(RELOAD_TOPICS) and not self._reload_pending:
            self._reload_pending = True
            self.set_timer(RELOAD_DEBOUNCE_S, self.reload)

    # ---- actions ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "retry_all"):
            return True if self.may("sync.retry") is None else None
        if action == "resolve":
            return True if self.may("sync.resolve") is None else None
        if action == "reviewed":
            return True if self.may("sync.reviewed") is None else None
        if action == "book":
            return True if self.may("reconcile.book") is None else None
        if action == "rollback":
            return True if self.may("sync.rollback") is None else None
        if action == "map_item":
            return True if self.may("setup.items.map") is None else None
        return super().check_action(action, parameters)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_reload(self) -> None:
        self.reload()
        if self.query_one(TabbedContent).active == "books":
            self.load_books()
        elif self.query_one(TabbedContent).active == "holdings":
            self.load_holdings()
        elif self.query_one(TabbedContent).active == "items":
            self.load_items()
        self.session.refresh_now()

    def _selected(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def action_retry(self) -> None:
        self.action_tab("dead")
        job = self._selected("#dead-table")
        if job is None:
            self.notify("no dead job to retry", severity="information")
            return
        self._retry({"job_id": int(job)})

    def action_retry_all(self) -> None:
        self._retry({"all": True})

    def _retry(self, params: dict[str, Any]) -> None:
        def done(result: dict[str, Any]) -> None:
            self.notify(f"requeued {result.get('retried', 0)} dead job(s)", title="Retry")
            self.reload()
            self.session.refresh_now()

        self.call("sync.retry", params, done=done)

    def action_resolve(self) -> None:
        self.action_tab("unmatched")
        invoice_id = self._selected("#unmatched-table")
        item = next((u for u in self.unmatched if u.get("invoice_id") == invoice_id), None)
        if item is None:
            self.notify("no unmatched payment to resolve", severity="information")
            return

        def decided(params: dict[str, Any] | None) -> None:
            if params is None:
                return

            def done(result: dict[str, Any]) -> None:
                self.notify(f"invoice {result.get('invoice_id')} resolved: {result.get('resolution')}", title="Resolve")
                self.reload()
                self.session.refresh_now()

            self.call("sync.resolve", params, done=done)

        self.app.push_screen(ResolveScreen(item), decided)

    def action_reviewed(self) -> None:
        self.action_tab("review")
        key = self._selected("#review-table")
        if key is None:
            self.notify("nothing to review", severity="information")
            return
        invoice_id = key.split("/", 1)[0]

        def done(result: dict[str, Any]) -> None:
            self.notify(f"invoice {invoice_id}: {result.get('reviewed', 0)} posting(s) marked reviewed", title="Review")
            self.reload()
            self.session.refresh_now()

        self.call("sync.reviewed", {"invoice_id": invoice_id}, done=done)

    def action_book(self) -> None:
        self.action_tab("books")
        key = self._selected("#books-table")
        if key is None:
            self.notify("no unexplained wallet transaction to book", severity="information")
            return
        store_id, txid = key.split("/", 1)
        amount = next((r[2] for r in unexplained_rows(self.books) if r[1] == txid), "")

        def decided(params: dict[str, Any] | None) -> None:
            if params is None:
                return

            def done(result: dict[str, Any]) -> None:
                self.notify(f"wallet transaction {txid} booked to {result.get('account')}: the Transfer is queued",
                            title="Book")
                self.load_books()

            self.call("reconcile.book", params, done=done)

        self.app.push_screen(BookScreen(store_id, txid, amount), decided)

    def action_rollback(self) -> None:
        """Range → dry run → the list with type-to-confirm → the rollback (`sovterm sync rollback`)."""
        today = datetime.fromtimestamp(self.session.clock(), UTC).date()

        def confirmed(params: dict[str, Any] | None) -> None:
            if params is None:
                return

            def done(result: dict[str, Any]) -> None:
                refused = [d for d in result.get("documents") or [] if d.get("action") == "refused"]
                self.notify(f"rollback #{result.get('id')}: {result.get('done', 0)} document(s) taken back; the "
                            "sync posts them again" + (f"; {len(refused)} refused by QuickBooks and kept (see "
                                                       "`sovterm sync rollback`)" if refused else ""),
                            title="Rollback", severity="warning")
                self.reload()
                self.session.refresh_now()

            self.call("sync.rollback", params, done=done)

        def previewed(preview: dict[str, Any]) -> None:
            self.app.push_screen(RollbackConfirmScreen(preview), confirmed)

        def ranged(params: dict[str, Any] | None) -> None:
            if params is not None:
                self.call("sync.rollback", params, done=previewed)

        self.app.push_screen(RollbackRangeScreen(today), ranged)

    def action_map_item(self) -> None:
        self.action_tab("items")
        code = self._selected("#items-table")
        if code is None or self.items is None:
            self.notify("no BTCPay item to map yet", severity="information")
            return
        title = next((i.get("title") or "" for i in self.items["items"] if i["code"] == code), "")

        def decided(params: dict[str, Any] | None) -> None:
            if params is None:
                return

            def done(result: dict[str, Any]) -> None:
                self.notify(f"{code} → {result.get('qbo_name')}; {result.get('released')} held posting(s) released",
                            title="Items")
                self.load_items()

            self.call("setup.items.map", params, done=done)

        self.app.push_screen(MapItemScreen(self.items["store_id"], code, title), decided)
