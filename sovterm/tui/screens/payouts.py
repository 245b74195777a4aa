"""Payouts: BTCPay payouts awaiting approval, approved or cancelled through a deliberate confirmation.

Approving sends bitcoin, so the dialog shows the amount and the whole destination, starts on Reject, and
enables Approve only after the operator has typed the destination's last four characters (reading it is
the point). After the daemon answers, the list is re-read and the audit entry it wrote is shown.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape
from sovterm.tui.views import approval_text, audit_line, last_four, payout_amount, payout_row

RELOAD_TOPICS = ("payout.", "btcpay.")
AWAITING = "AwaitingApproval"
VERBS = {
    "approve": ("Approve payout", "Approve", "payouts.approve", "Reject"),
    "cancel": ("Cancel payout", "Cancel payout", "payouts.cancel", "Keep it"),
}


class PayoutDecisionScreen(ModalScreen[bool]):
    """Approve or cancel one payout. True only from the enabled confirm button; Esc and Enter on the initial
    focus are *no* (no letter key answers: the operator types into the field here)."""

    CSS_PATH = "payouts.tcss"
    BINDINGS = [Binding("escape", "dismiss(False)", "Reject")]

    def __init__(self, payout: dict[str, Any], verb: str = "approve") -> None:
        super().__init__()
        self.payout, self.verb = payout, verb

    def compose(self) -> ComposeResult:
        title, confirm, _, safe = VERBS[self.verb]
        p = self.payout
        four = approval_text(p)
        with Vertical(id="payout-box", classes="dialog") as box:
            box.border_title = title
            yield Static(
                f"payout [b]{escape(str(p.get('payout_id')))}[/] · store {escape(str(p.get('store_id')))}\n"
                f"amount        [b]{escape(payout_amount(p))}[/]\n"
                f"method        {escape(str(p.get('payment_method') or '?'))}\n"
                f"pull payment  {escape(str(p.get('pull_payment_name') or p.get('pull_payment_id') or '—'))}"
                + (f"\nfour eyes     [$warning]{escape(four)}[/]" if four else ""),
                id="payout-facts")
            yield Label("destination")
            yield Static(escape(str(p.get("destination") or "")), id="payout-destination", markup=True)
            yield Label("type the destination's last four characters to enable the button")
            yield Input(id="payout-last4", max_length=4, compact=True, placeholder="····")
            with Horizontal(classes="dialog-buttons"):
                yield Button(safe, id="payout-reject", variant="primary")
                yield Button(confirm, id="payout-confirm", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#payout-reject", Button).focus()

    @on(Input.Changed, "#payout-last4")
    def _typed(self, event: Input.Changed) -> None:
        expected = last_four(self.payout.get("destination"))
        self.query_one("#payout-confirm", Button).disabled = not expected or event.value != expected

    @on(Input.Submitted, "#payout-last4")
    def _submitted(self) -> None:
        confirm = self.query_one("#payout-confirm", Button)
        if not confirm.disabled:
            confirm.focus()  # Enter moves to the button; a second, deliberate Enter confirms

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "payout-confirm" and not event.button.disabled)


class PayoutsScreen(DaemonScreen):
    CSS_PATH = "payouts.tcss"
    BINDINGS = [
        Binding("a", "decide('approve')", "Approve"),
        Binding("x", "decide('cancel')", "Cancel payout"),
        Binding("m", "mark_paid", "Mark paid"),
        Binding("v", "toggle_all", "All/awaiting"),
        Binding("f", "refresh", "Refresh"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.payouts: list[dict[str, Any]] = []
        self.show_all = False
        self.last_result = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="payouts-title")
        yield DataTable(id="payouts-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="payouts-result")
        yield Static(id="payouts-actions", classes="actions-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("payout", "amount", "destination", "pull payment", "age", "status")
        self.show_state(self.session.state)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()  # also the first time the screen is shown

    def show_state(self, state: DaemonState) -> None:
        why = self.may("payouts.approve")
        self.query_one("#payouts-actions", Static).update(
            "[b]a[/] approve · [b]x[/] cancel · [b]m[/] mark paid · [b]v[/] all/awaiting · [b]f[/] refresh from BTCPay"
            if why is None else f"[dim]a approve · x cancel · m mark paid[/] — disabled: {escape(why)}")
        self.refresh_bindings()

    def reload(self) -> None:
        def done(result: Any) -> None:
            self.payouts = list(result or [])
            self.show_list()

        if self.may("payouts.list") is None:
            self.call("payouts.list", {"include_final": self.show_all}, done=done, exclusive=True)

    def show_list(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_id()
        table.clear()
        rows = self.payouts if self.show_all else [p for p in self.payouts if p.get("state") == AWAITING]
        now = self.session.clock()
        for p in rows:
            table.add_row(*payout_row(p, now), key=str(p.get("payout_id")))
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        waiting = sum(1 for p in self.payouts if p.get("state") == AWAITING)
        self.query_one("#payouts-title", Static).update(
            f"[b]{waiting}[/] payout(s) awaiting approval"
            + (" · showing every open payout" if self.show_all else " · v shows the others too"))

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def selected(self) -> dict[str, Any] | None:
        pid = self.selected_id()
        return next((p for p in self.payouts if p.get("payout_id") == pid), None)

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith(RELOAD_TOPICS):
            self.reload()

    # ---- actions ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "decide":
            return True if self.may(VERBS[str(parameters[0])][2]) is None else None
        if action == "mark_paid":
            return True if self.may("payouts.mark_paid") is None else None
        return super().check_action(action, parameters)

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.reload()

    def action_refresh(self) -> None:
        def done(result: dict[str, Any]) -> None:
            self.notify(f"re-read {result.get('stores', 0)} store(s): {result.get('new', 0)} new, "
                        f"{result.get('changed', 0)} changed", title="Payouts")
            self.reload()

        self.call("payouts.refresh", done=done)

    def action_decide(self, verb: str) -> None:
        method = VERBS[verb][2]
        reason = self.may(method)
        if reason is not None:  # the binding is disabled too; this covers the palette and direct calls
            self.notify(f"{VERBS[verb][0]} is disabled: {reason}", severity="warning")
            return
        payout = self.selected()
        if payout is None:
            self.notify("no payout selected", severity="information")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(method, payout)

        self.app.push_screen(PayoutDecisionScreen(payout, verb), answered)

    def action_mark_paid(self) -> None:
        payout = self.selected()
        if payout is not None and self.may("payouts.mark_paid") is None:
            self._act("payouts.mark_paid", payout)

    def _act(self, method: str, payout: dict[str, Any]) -> None:
        payout_id = str(payout.get("payout_id"))

        def done(result: dict[str, Any]) -> None:
            outcome = result.get("message") or f"payout {payout_id}: {result.get('result')}"
            self.notify(outcome, title="Payouts", severity="warning" if result.get("result") == "pending" else "information")
            self.show_result(outcome)
            self.reload()
            self.show_audit(payout_id)

        def failed(message: str) -> None:
            self.notify(message, title="Payouts", severity="error")
            self.show_result(f"[$error]refused:[/] {escape(message)}")
            self.reload()
            self.show_audit(payout_id)

        self.call(method, {"payout_id": payout_id}, done=done, failed=failed)

    def show_result(self, text: str) -> None:
        self.last_result = text
        self.query_one("#payouts-result", Static).update(text)

    def show_audit(self, payout_id: str) -> None:
        """The audit entry the action wrote, so the operator sees it was recorded and by whom."""

        def done(entries: Any) -> None:
            mine = [e for e in entries or [] if e.get("subject") == payout_id]
            if mine:
                self.show_result(f"{self.last_result}\n[dim]{escape(audit_line(mine[0]))}[/]")

        if self.may("audit.list") is None:
            self.call("audit.list", {"limit": 20}, done=done, group="audit")
