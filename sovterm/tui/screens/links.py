"""Pay links: create one for a QuickBooks invoice (by number) or a fixed amount, show it with its QR code,
list every link with its state, expire one.

The create dialog searches the open QuickBooks invoices by number or customer as the operator types
(`qbo.invoices.search`, debounced) and lists them, each with its active pay link if it has one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from sovterm.qr import text as qr_text
from sovterm.tui.connection import ActionFailed, Daemon
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen, call_in_worker
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape
from sovterm.tui.views import invoice_choice, invoice_option, link_request, link_row, link_what

RELOAD_TOPICS = ("link.", "invoice.")
SEARCH_DELAY_S = 0.3  # typing pauses this long before the daemon (and QuickBooks) is asked
SEARCH_LIMIT = 50


class LinkShowScreen(ModalScreen[None]):
    """The link as text (to copy) and as a QR code (to scan from the terminal)."""

    CSS_PATH = "links.tcss"
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("q", "dismiss", "Close", show=False)]

    def __init__(self, link: dict[str, Any]) -> None:
        super().__init__()
        self.link = link

    def compose(self) -> ComposeResult:
        url = self.link.get("url")
        with VerticalScroll(id="link-box", classes="dialog") as box:
            box.border_title = f"Pay link {self.link.get('link_id')} (Esc to close)"
            extra = ""
            if self.link.get("balance"):
                extra += f" · balance {escape(str(self.link['balance']))}"
            if self.link.get("memo_written"):
                extra += f"\n[dim]{escape(str(self.link['memo_written']))}[/]"
            yield Static(f"{escape(link_what(self.link))} · {escape(str(self.link.get('state', '')))}{extra}",
                         id="link-what")
            if url:
                yield Static(escape(url), id="link-url")
                yield Static(qr_text(url), id="link-qr", markup=False)
            else:
                yield Static("[dim]no URL: the link has ended or its signing key was retired[/]", id="link-url")


class LinkCreateScreen(ModalScreen[dict[str, Any] | None]):
    """Find an open QuickBooks invoice (by number or customer) or give an amount, call `links.create`, show
    the daemon's refusal inline."""

    CSS_PATH = "links.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("down", "to_results", show=False)]

    def __init__(self, daemon: Daemon) -> None:
        super().__init__()
        self.daemon = daemon
        self.found: list[dict[str, Any]] | None = None  # the open invoices matching `found_for`
        self.found_for: str | None = None
        self.picked: dict[str, Any] | None = None
        self.search_delay_s = SEARCH_DELAY_S

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="create-box", classes="dialog") as box:
            box.border_title = "New pay link"
            yield Label("QuickBooks invoice: type its number or the customer, then pick it below")
            yield Input(placeholder="e.g. 1001 or Acme", id="create-invoice", compact=True)
            yield OptionList(id="create-open")
            yield Static(id="create-found", classes="hint")
            yield Label("or a fixed amount")
            with Horizontal(id="create-amount-row"):
                yield Input(placeholder="amount, e.g. 25.00", id="create-amount", compact=True)
                yield Input(placeholder="currency", id="create-currency", compact=True, value="")
            yield Input(placeholder="memo shown to the payer (optional)", id="create-memo", compact=True)
            yield Static(id="create-problem", classes="problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="create-cancel", variant="primary")
                yield Button("Create", id="create-ok", variant="success")

    def on_mount(self) -> None:
        self.query_one("#create-invoice", Input).focus()
        self.query_one("#create-open", OptionList).display = False
        self.search("", delay=0.0)  # every open invoice, soonest due first

    # ---- search as you type ----------------------------------------------------------------------

    @on(Input.Changed, "#create-invoice")
    def _typed(self, event: Input.Changed) -> None:
        if self.picked is not None and event.value == str(self.picked.get("doc_number")):
            return  # the pick filled the field
        self.picked = None
        self.search(event.value.strip())

    def search(self, query: str, *, delay: float | None = None) -> None:
        """Ask once typing pauses; a newer keystroke cancels the pending search (and drops its answer)."""
        daemon = self.daemon
        if daemon.why_not("qbo.invoices.search") is not None:
            return
        self.found, self.found_for = None, query

        async def run() -> None:
            await asyncio.sleep(self.search_delay_s if delay is None else delay)
            self.query_one("#create-found", Static).update("[dim]searching QuickBooks…[/]")
            try:
                found = await daemon.call("qbo.invoices.search", query=query or None, limit=SEARCH_LIMIT)
            except ActionFailed as exc:
                self.query_one("#create-found", Static).update(f"[$error]cannot search: {escape(str(exc))}[/]")
                return
            self.show_found(query, list(found or []))

        self.run_worker(run, name="invoice-search", group="invoice-search", exclusive=True, exit_on_error=False)

    def show_found(self, query: str, found: list[dict[str, Any]]) -> None:
        self.found, self.found_for = found, query
        options = self.query_one("#create-open", OptionList)
        options.clear_options()
        options.add_options([Option(invoice_option(i), id=str(i.get("id"))) for i in found])
        options.display = bool(found)
        more = " (the first ones; type more to narrow)" if len(found) >= SEARCH_LIMIT else ""
        where = f" matching {escape(repr(query))}" if query else ""
        self.query_one("#create-found", Static).update(
            f"{len(found)} open invoice(s){where}{more}" if found else f"[dim]no open invoice{where}[/]")

    def action_to_results(self) -> None:
        options = self.query_one("#create-open", OptionList)
        if self.focused is self.query_one("#create-invoice", Input) and options.display:
            options.focus()
            if options.highlighted is None:
                options.highlighted = 0

    @on(OptionList.OptionSelected, "#create-open")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        invoice = next((i for i in self.found or [] if str(i.get("id")) == event.option.id), None)
        if invoice is None:
            return
        if not invoice.get("doc_number"):  # links.create finds invoices by number
            self.problem("this invoice has no number in QuickBooks: give it one there to make a link for it")
            return
        self.picked = invoice
        self.query_one("#create-problem", Static).update("")
        self.query_one("#create-invoice", Input).value = str(invoice.get("doc_number"))
        text = (f"picked invoice {escape(str(invoice.get('doc_number')))} of "
                f"{escape(str(invoice.get('customer') or '—'))}, balance {escape(str(invoice.get('balance')))} "
                f"{escape(str(invoice.get('currency') or ''))}")
        if invoice.get("link_id"):
            text += (f"\n[$warning]it already has pay link {escape(str(invoice['link_id']))}[/]: Create makes a "
                     "second one")
        self.query_one("#create-found", Static).update(text)
        self.query_one("#create-ok", Button).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.create()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create-ok":
            self.create()
        else:
            self.dismiss(None)

    def problem(self, text: str) -> None:
        self.query_one("#create-problem", Static).update(f"[$error]{escape(text)}[/]")

    def create(self) -> None:
        value = {name: self.query_one(f"#create-{name}", Input).value for name in ("invoice", "amount", "currency", "memo")}
        request = link_request(value["invoice"], value["amount"], value["currency"], value["memo"])
        if request.params is not None and "qbo_invoice" in request.params and self.picked is None:
            text = value["invoice"].strip()
            found = self.found if self.found_for == text else None
            request = invoice_choice(text, found, complete=len(found or []) < SEARCH_LIMIT) or request
        if request.params is None:
            self.problem(request.problem or "")
            return
        self.query_one("#create-problem", Static).update("[dim]creating…[/]")
        call_in_worker(self, self.daemon, "links.create", request.params, done=self.dismiss, failed=self.problem,
                       exclusive=True)


class LinksScreen(DaemonScreen):
    CSS_PATH = "links.tcss"
    BINDINGS = [
        Binding("n", "create", "New link"),
        Binding("enter", "show", "Show + QR"),
        Binding("x", "expire", "Expire"),
        Binding("f", "reload", "Refresh"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.links: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="links-title")
        yield DataTable(id="links-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="links-actions", classes="actions-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("link", "for", "state", "expires in", "being paid")
        self.show_state(self.session.state)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()  # also the first time the screen is shown

    def show_state(self, state: DaemonState) -> None:
        why = self.may("links.create")
        self.query_one("#links-actions", Static).update(
            "[b]n[/] new link · [b]enter[/] show link and QR · [b]x[/] expire · [b]f[/] refresh" if why is None
            else f"[b]enter[/] show link and QR · [dim]n new · x expire[/] — disabled: {escape(why)}")
        self.refresh_bindings()

    def reload(self) -> None:
        def done(result: Any) -> None:
            self.links = list(result or [])
            self.show_list()

        if self.may("links.list") is None:
            self.call("links.list", done=done, exclusive=True)

    def show_list(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_id()
        table.clear()
        now = self.session.clock()
        for link in self.links:
            table.add_row(*link_row(link, now), key=str(link.get("link_id")))
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        active = sum(1 for link in self.links if link.get("state") == "active")
        self.query_one("#links-title", Static).update(f"[b]{active}[/] active of {len(self.links)} pay link(s)")

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith(RELOAD_TOPICS):
            self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "create":
            return True if self.may("links.create") is None else None
        if action == "expire":
            return True if self.may("links.expire") is None else None
        return super().check_action(action, parameters)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_show()

    def action_create(self) -> None:
        def created(link: dict[str, Any] | None) -> None:
            if link is None:
                return
            self.reload()
            self.app.push_screen(LinkShowScreen(link))

        self.app.push_screen(LinkCreateScreen(self.session.daemon), created)

    def action_show(self) -> None:
        link_id = self.selected_id()
        if link_id is None:
            return
        self.call("links.get", {"link_id": link_id}, done=lambda link: self.app.push_screen(LinkShowScreen(link)))

    def action_expire(self) -> None:
        link_id = self.selected_id()
        if link_id is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("links.expire", {"link_id": link_id},
                          done=lambda r: (self.notify(f"link {link_id} is {r.get('state')}", title="Pay links"),
                                          self.reload()))

        self.app.push_screen(ConfirmScreen(f"Expire pay link {link_id}?\nIts URL stops working at once."), answered)
