"""Step 5: the QuickBooks accounts and item each followed store posts to (found by name, the missing
ones created on apply)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Static

from sovterm.tui.connection import ActionFailed
from sovterm.tui.screens.wizard.step import ADMIN, Step
from sovterm.tui.session import Session

Wanted = tuple[str | None, tuple[str, ...]]  # (company, followed stores) the proposals are read for


class AccountsStep(Step):
    KEY = "accounts"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.proposals: dict[str, dict[str, Any]] | None = None  # store id -> setup.accounts.propose
        self.proposals_for: Wanted | None = None

    def compose(self) -> ComposeResult:
        yield Static("[b]5. Accounts[/]\nThe QuickBooks accounts and item sovterm posts to. Existing "
                     "ones are found by name; the missing ones are created when you apply.", classes="intro")
        yield DataTable(id="accounts-table", cursor_type="row", show_cursor=False)
        with Horizontal(id="accounts-dimensions"):  # optional: every store's documents carry them
            yield Input(placeholder="class (optional)", id="accounts-class", classes=ADMIN, compact=True)
            yield Input(placeholder="location (optional)", id="accounts-location", classes=ADMIN, compact=True)
        yield Button("Apply (create the missing defaults)", id="accounts-apply", classes=ADMIN, variant="primary")
        yield Static(id="accounts-problem", classes="problem")

    def on_mount(self) -> None:
        self.query_one("#accounts-table", DataTable).add_columns("store", "what", "QuickBooks name", "action")

    def draw(self) -> None:
        table = self.query_one("#accounts-table", DataTable)
        table.clear()
        if not self.progress.qbo_connected:
            self.query_one("#accounts-problem", Static).update("[dim]connect QuickBooks first (step 3)[/]")
            return
        wanted = (self.progress.realm_id, tuple(self.progress.followed))
        if self.proposals_for != wanted:
            self.load_proposals(wanted)
        if self.proposals is None:
            return  # being read
        mappings = self.progress.mappings
        for store_id, proposal in self.proposals.items():
            for d in proposal.get("defaults") or []:
                action = "saved" if mappings.get(store_id) else str(d.get("action"))
                table.add_row(store_id, str(d.get("key")), str(d.get("name")), action)

    def load_proposals(self, wanted: Wanted) -> None:
        """The accounts each followed store would use in the connected company (read from QuickBooks, so
        only when the accounts step is shown)."""
        self.proposals, self.proposals_for = None, wanted
        self.query_one("#accounts-problem", Static).update("[dim]reading the company's accounts…[/]")

        async def read() -> None:
            proposals = {}
            for store_id in wanted[1]:
                proposals[store_id] = await self.session.daemon.call("setup.accounts.propose", store_id=store_id)
            if self.proposals_for == wanted:
                self.proposals = proposals
                self.problem(None)
                self.post_message(self.Redraw(self.KEY))

        async def run() -> None:
            try:
                await read()
            except ActionFailed as exc:
                self.proposals_for = None  # read again when the step is shown again
                self.problem(str(exc))

        self.run_worker(run, name="wizard-proposals", group="wizard-proposals", exclusive=True, exit_on_error=False)

    @on(Button.Pressed, "#accounts-apply")
    def _apply(self) -> None:
        stores = [str(s.get("id")) for s in self.progress.stores]
        if not stores:
            self.problem("follow a BTCPay store first (step 2)")
            return
        remaining = list(stores)
        # a class and location typed here are checked like accounts (`setup accounts --class --location`)
        overrides = {key: value for key in ("class", "location")
                     if (value := self.query_one(f"#accounts-{key}", Input).value.strip())}

        def next_store(_: Any = None) -> None:
            if not remaining:
                self.proposals_for = None  # read again: the missing defaults now exist
                self.reload()
                return
            self.ask("setup.accounts.apply", {"store_id": remaining.pop(0), "auto": True, "overrides": overrides},
                     next_store)

        next_store()
