"""The setup wizard: BTCPay, stores, QuickBooks, mode, accounts, backfill, summary.

Every step is a daemon call whose result is kept by the daemon, so leaving the wizard (or losing the SSH
session) loses nothing: on entry the wizard reads the progress back (`setup.state`) and opens the first
step not done, with the saved mode chosen and the stores the stored key sees (`btcpay.stores`).
Next is enabled only once the current step is done (validated by the daemon; its refusals are shown in
the step). Viewers may look at every step; the controls that change anything are disabled.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from functools import partial
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    Button,
    ContentSwitcher,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    SelectionList,
    Static,
)
from textual.widgets.option_list import Option

from sovterm.tui.connection import ActionFailed
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.qr import qr_text
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape
from sovterm.tui.views import (
    MODE_HELP,
    STEP_NAMES,
    STEPS,
    WizardProgress,
    check_date,
    missing_permissions_text,
    mode_text,
    summary_text,
)

STEP_TITLES = dict(STEPS)
RELOAD_TOPICS = ("qbo.", "connector.")
ADMIN = "admin"  # class of the controls that change something (disabled for viewers)
BACKFILL_DEFAULT_DAYS = 30


class WizardScreen(DaemonScreen):
    BINDINGS = [
        Binding("ctrl+n", "next", "Next step"),
        Binding("ctrl+g", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.progress = WizardProgress()
        self.step = "btcpay"
        self.loaded = False
        self.report: dict[str, Any] | None = None  # the last permission report (lists every visible store)
        self.report_problem: str | None = None  # why `btcpay.stores` could not be read
        self.proposals: dict[str, dict[str, Any]] | None = None  # store id -> setup.accounts.propose
        self.proposals_for: tuple[str | None, tuple[str, ...]] | None = None  # (company, stores) they were read for
        self.shown_mode: dict[str, Any] | None = None  # the saved mode last put into the radio buttons
        self.qbo_started: dict[str, Any] | None = None
        self.pending_step: str | None = None  # asked for before the progress was read (palette "Reconnect ...")

    # ---- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="wizard-banner")
        with Horizontal(id="wizard"):
            yield OptionList(*[Option(title, id=name) for name, title in STEPS], id="wizard-steps")
            with ContentSwitcher(id="wizard-body", initial="step-btcpay"):
                with VerticalScroll(id="step-btcpay", classes="step"):
                    yield Static("[b]1. BTCPay Server[/]\nIn BTCPay: Account › Manage account › API keys › "
                                 "Generate key, for the store(s) to follow. sovterm checks which permissions "
                                 "the key has and names any that are missing.", classes="intro")
                    yield Label("BTCPay address")
                    yield Input(placeholder="https://btcpay.example.com", id="btcpay-url", classes=ADMIN,
                                compact=True)
                    yield Static(id="btcpay-proposed", classes="hint")
                    yield Label("API key")
                    yield Input(password=True, id="btcpay-key", classes=ADMIN, compact=True,
                                placeholder="paste the key (kept encrypted by the daemon)")
                    yield Button("Connect", id="btcpay-connect", classes=ADMIN, variant="primary")
                    yield Static(id="btcpay-problem", classes="problem")
                    yield Static(id="btcpay-report")
                    yield Button("Disconnect BTCPay", id="btcpay-disconnect", classes=ADMIN, variant="error")
                with VerticalScroll(id="step-stores", classes="step"):
                    yield Static("[b]2. Stores[/]\nChoose the stores whose payments go to QuickBooks. sovterm "
                                 "registers its webhook at each.", classes="intro")
                    yield SelectionList[str](id="stores-list", classes=ADMIN)
                    yield Static(id="stores-hint", classes="hint")
                    yield Button("Follow the selected stores", id="stores-select", classes=ADMIN, variant="primary")
                    yield Static(id="stores-problem", classes="problem")
                with VerticalScroll(id="step-qbo", classes="step"):
                    yield Static("[b]3. QuickBooks Online[/]", classes="intro")
                    yield Static(id="qbo-state")
                    yield Button("Connect a QuickBooks company", id="qbo-start", classes=ADMIN, variant="primary")
                    yield Static(id="qbo-problem", classes="problem")
                    yield Static(id="qbo-waiting")
                    yield Static(id="qbo-url")
                    yield Static(id="qbo-qr", markup=False)
                    yield Label("No public address? Paste the address your browser ended on:")
                    yield Input(placeholder="https://…/oauth/qbo/callback?code=…&state=…&realmId=…",
                                id="qbo-redirected", classes=ADMIN, compact=True)
                    yield Button("Complete", id="qbo-complete", classes=ADMIN)
                    yield Static(id="qbo-guide", classes="hint")
                    yield Button("Disconnect QuickBooks", id="qbo-disconnect", classes=ADMIN, variant="error")
                with VerticalScroll(id="step-mode", classes="step"):
                    yield Static("[b]4. How payments are booked[/]", classes="intro")
                    with RadioSet(id="mode-set", classes=ADMIN):
                        yield RadioButton("Deposit mode: each payment is a sale", id="mode-deposit", value=True)
                        yield RadioButton("Invoicing mode: payments settle QuickBooks invoices", id="mode-invoicing")
                    yield Static(id="mode-saved")
                    yield Static(id="mode-help")
                    with RadioSet(id="deposit-as", classes=ADMIN):
                        yield RadioButton("record a deposit-mode payment as a SalesReceipt", id="as-salesreceipt",
                                          value=True)
                        yield RadioButton("record it as a Deposit", id="as-deposit")
                    yield Button("Save mode", id="mode-save", classes=ADMIN, variant="primary")
                    yield Static(id="mode-problem", classes="problem")
                with VerticalScroll(id="step-accounts", classes="step"):
                    yield Static("[b]5. Accounts[/]\nThe QuickBooks accounts and item sovterm posts to. Existing "
                                 "ones are found by name; the missing ones are created when you apply.",
                                 classes="intro")
                    yield DataTable(id="accounts-table", cursor_type="row", show_cursor=False)
                    yield Button("Apply (create the missing defaults)", id="accounts-apply", classes=ADMIN,
                                 variant="primary")
                    yield Static(id="accounts-problem", classes="problem")
                with VerticalScroll(id="step-backfill", classes="step"):
                    yield Static("[b]6. History[/]\nPost the invoices settled since this date (each exactly "
                                 "once; nothing already in QuickBooks is posted again). Skip to start from now.",
                                 classes="intro")
                    yield Label("start date (YYYY-MM-DD)")
                    yield Input(value=(date.today() - timedelta(days=BACKFILL_DEFAULT_DAYS)).isoformat(),
                                id="backfill-since", classes=ADMIN, compact=True)
                    with Horizontal(classes="row"):
                        yield Button("Start backfill", id="backfill-start", classes=ADMIN, variant="primary")
                        yield Button("Skip", id="backfill-skip", classes=ADMIN)
                    yield Static(id="backfill-problem", classes="problem")
                    yield Static(id="backfill-state")
                with VerticalScroll(id="step-summary", classes="step"):
                    yield Static("[b]7. Summary[/]", classes="intro")
                    yield Static(id="summary-text")
                    yield Button("Start posting to this sandbox company", id="summary-auto-sync", classes=ADMIN,
                                 variant="warning")
                    yield Static(id="summary-problem", classes="problem")
                    yield Button("Done: go to the dashboard", id="summary-done", variant="success")
        with Horizontal(id="wizard-nav"):
            yield Button("‹ Back", id="nav-back", compact=True)
            yield Static(id="wizard-where")
            yield Button("Next ›", id="nav-next", compact=True, variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#accounts-table", DataTable).add_columns("store", "what", "QuickBooks name", "action")
        self.query_one("#mode-help", Static).update(MODE_HELP["deposit"])
        self.show_state(self.sovterm.state)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.load_progress(resume=not self.loaded)  # the first time: open the first step not done

    @property
    def read_only(self) -> str | None:
        return self.may("setup.btcpay.connect")

    def show_state(self, state: DaemonState) -> None:
        why = self.read_only
        banner = self.query_one("#wizard-banner", Static)
        banner.update("" if why is None else f"[$warning]read-only[/]: {escape(why)}")
        banner.display = why is not None
        for widget in self.query(f".{ADMIN}"):
            widget.disabled = why is not None
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith(RELOAD_TOPICS):
            self.load_progress(resume=False)

    # ---- progress from the daemon --------------------------------------------------------------------

    def load_progress(self, *, resume: bool) -> None:
        self.run_worker(partial(self._fetch_progress, resume), name="wizard-progress", group="wizard-progress",
                        exclusive=True, exit_on_error=False)

    async def _fetch_progress(self, resume: bool) -> None:
        daemon = self.sovterm.daemon

        async def ask(method: str) -> Any:
            if daemon.why_not(method) is not None:
                return None
            try:
                return await daemon.call(method)
            except ActionFailed as exc:
                if method == "setup.state":  # without it every step looks undone: say why
                    self.notify(f"cannot read where setup stands: {exc}", severity="error")
                return None

        new = WizardProgress(backfill_skipped=self.progress.backfill_skipped)
        # the progress itself; then what the steps show (address, key label, store and company names, backfill)
        new.setup, new.btcpay, new.qbo, sync = await asyncio.gather(
            ask("setup.state"), ask("btcpay.status"), ask("qbo.status"), ask("sync.status"))
        new.backfill = (sync or {}).get("backfill")
        if not new.btcpay_connected:
            self.report, self.report_problem = None, None
        self.progress = new
        self.loaded = True
        self.show_saved_mode()
        if self.pending_step is not None:
            step, self.pending_step = self.pending_step, None
            self.goto(step)
        elif resume:
            self.goto(new.resume_step())
        else:
            self.render_step()

    def open_at(self, step: str) -> None:
        """Show `step` (reconnecting one side later), once the progress is known."""
        if self.loaded:
            self.goto(step)
        else:
            self.pending_step = step

    # ---- navigation --------------------------------------------------------------------------------

    def goto(self, step: str) -> None:
        self.step = step
        if step in ("btcpay", "stores") and self.report is None and self.progress.btcpay_connected:
            self.load_stores_report()
        self.query_one(ContentSwitcher).current = f"step-{step}"
        self.query_one("#wizard-steps", OptionList).highlighted = STEP_NAMES.index(step)
        self.render_step()

    def render_step(self) -> None:
        p = self.progress
        steps = self.query_one("#wizard-steps", OptionList)
        for i, (name, title) in enumerate(STEPS):
            mark = "✓" if p.done(name) else ("▶" if name == self.step else " ")
            steps.replace_option_prompt_at_index(i, f"{mark} {title}")
        index = STEP_NAMES.index(self.step)
        self.query_one("#wizard-where", Static).update(
            f"step {index + 1} of {len(STEPS)}" + ("" if p.done(self.step) or self.step == "summary"
                                                  or self.read_only else " · finish this step to go on"))
        self.query_one("#nav-back", Button).disabled = index == 0
        self.query_one("#nav-next", Button).disabled = not self.can_leave()
        getattr(self, f"_render_{self.step}")()
        self.refresh_bindings()

    def can_leave(self) -> bool:
        if self.step == "summary":
            return False
        return self.read_only is not None or self.progress.done(self.step)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return True if self.can_leave() else None
        if action == "back":
            return True if self.step != STEP_NAMES[0] else None
        return super().check_action(action, parameters)

    def action_next(self) -> None:
        if self.can_leave():
            self.goto(STEP_NAMES[STEP_NAMES.index(self.step) + 1])

    def action_back(self) -> None:
        index = STEP_NAMES.index(self.step)
        if index > 0:
            self.goto(STEP_NAMES[index - 1])

    @on(OptionList.OptionSelected, "#wizard-steps")
    def _step_chosen(self, event: OptionList.OptionSelected) -> None:
        target = str(event.option.id)
        index = STEP_NAMES.index(target)
        # jump back freely; forward only over steps that are done (viewers: anywhere)
        if self.read_only is None and any(not self.progress.done(s) for s in STEP_NAMES[:index]):
            self.notify("finish the earlier steps first", severity="warning")
            return
        self.goto(target)

    def problem(self, step: str, message: str | None) -> None:
        self.query_one(f"#{step}-problem", Static).update("" if not message else f"[$error]{escape(message)}[/]")

    def step_call(self, step: str, method: str, params: dict[str, Any], done: Any) -> None:
        """A daemon call made by a step: its refusal is shown in the step, never as a crash."""
        self.problem(step, None)
        self.query_one(f"#{step}-problem", Static).update("[dim]asking the daemon…[/]")

        def ok(result: Any) -> None:
            self.problem(step, None)
            done(result)

        self.call(method, params, done=ok, failed=lambda message: self.problem(step, message), group=f"step:{step}",
                  exclusive=True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        handler = getattr(self, "_press_" + str(event.button.id).replace("-", "_"), None)
        if handler is not None:
            handler()

    def _press_nav_next(self) -> None:
        self.action_next()

    def _press_nav_back(self) -> None:
        self.action_back()

    # ---- 1. BTCPay --------------------------------------------------------------------------------

    def _render_btcpay(self) -> None:
        b = self.progress.btcpay or {}
        url = self.query_one("#btcpay-url", Input)
        if not url.value:
            url.value = b.get("url") or b.get("proposed_url") or ""
        hint = ""
        if b.get("url"):
            hint = (f"connected to {escape(str(b['url']))} (key '{escape(str(b.get('key_label') or '?'))}', state "
                    f"{escape(str(b.get('state')))}); connect again to change the key or the address")
        elif b.get("proposed_url"):
            hint = f"proposed from {escape(str(b.get('proposed_source') or 'the environment'))}"
        self.query_one("#btcpay-proposed", Static).update(hint)
        self.query_one("#btcpay-disconnect", Button).display = bool(b.get("url"))
        self.query_one("#btcpay-report", Static).update(
            "" if self.report is None else missing_permissions_text(self.report))

    def _press_btcpay_connect(self) -> None:
        url = self.query_one("#btcpay-url", Input).value.strip()
        key = self.query_one("#btcpay-key", Input).value.strip()
        if not url or not key:
            self.problem("btcpay", "give the BTCPay address and an API key")
            return

        def done(report: dict[str, Any]) -> None:
            self.report, self.report_problem = report, None
            self.query_one("#btcpay-key", Input).value = ""  # the daemon keeps it encrypted; the TUI forgets it
            self.load_progress(resume=False)

        self.step_call("btcpay", "setup.btcpay.connect", {"url": url, "api_key": key}, done)

    def _press_btcpay_disconnect(self) -> None:
        self.sovterm.run_daemon_action("btcpay_disconnect")  # asks first; progress reloads on the connector event

    # ---- 2. stores ----------------------------------------------------------------------------------

    def load_stores_report(self) -> None:
        """The stores the stored key sees, with their permissions (a resumed wizard asks no key again)."""
        if self.may("btcpay.stores") is not None:
            return
        self.report_problem = None

        def got(report: dict[str, Any]) -> None:
            self.report = report
            self.render_step()

        def failed(message: str) -> None:
            self.report_problem = message
            self.render_step()

        self.call("btcpay.stores", done=got, failed=failed, group="stores-report", exclusive=True)

    def _render_stores(self) -> None:
        selection = self.query_one("#stores-list", SelectionList)
        followed = set(self.progress.followed) | set((self.report or {}).get("selected") or [])
        visible = (self.report or {}).get("stores")
        hint = self.query_one("#stores-hint", Static)
        if visible is None:
            visible = [{**s, "ready": True} for s in self.progress.stores]
            if not self.progress.btcpay_connected:
                hint.update("connect on the BTCPay step first")
            elif self.report_problem is not None:
                hint.update(f"[$error]cannot list the stores:[/] {escape(self.report_problem)} (open this step "
                            "again to retry)")
            else:
                hint.update("[dim]asking BTCPay which stores the key can see…[/]")
        else:
            blocked = [s for s in visible if not s.get("ready")]
            hint.update(f"{len(blocked)} store(s) cannot be chosen: the key lacks permissions (see the BTCPay "
                        "step)" if blocked else "")
        chosen = set(selection.selected) or followed or {str(s["id"]) for s in visible if s.get("ready")}
        selection.clear_options()
        selection.add_options([
            (f"{s.get('name')} ({s.get('id')})" + ("" if s.get("ready") else " — missing permissions"),
             str(s.get("id")), str(s.get("id")) in chosen and bool(s.get("ready")))
            for s in visible
        ])
        for index, s in enumerate(visible):
            if not s.get("ready"):
                selection.disable_option_at_index(index)

    def _press_stores_select(self) -> None:
        ids = list(self.query_one("#stores-list", SelectionList).selected)
        if not ids:
            self.problem("stores", "select at least one store (space toggles)")
            return
        def done(result: dict[str, Any]) -> None:
            if self.report is not None:
                self.report["selected"] = list(ids)
            self.load_progress(resume=False)

        self.step_call("stores", "setup.btcpay.select_stores", {"store_ids": ids}, done)

    # ---- 3. QuickBooks --------------------------------------------------------------------------------

    def _render_qbo(self) -> None:
        q = self.progress.qbo or {}
        if q.get("connected"):
            env = " [$warning](sandbox)[/]" if q.get("sandbox") else ""
            text = (f"[$success]connected[/] to {escape(str(q.get('company_name') or q.get('realm_id')))}{env}; "
                    f"tokens {escape(str(q.get('token_state')))}")
            if q.get("days_left") is not None:
                text += f", {q['days_left']} day(s) before reconnecting"
        elif q and not q.get("configured", True):
            text = f"[$warning]not configured[/]: {escape(str(q.get('problem')))}"
        else:
            text = "not connected yet"
        if q.get("connected") and q.get("sync_blocked"):
            text += f"\n[$warning]nothing is posted yet:[/] {escape(str(q['sync_blocked']))}"
        self.query_one("#qbo-state", Static).update(text)
        self.query_one("#qbo-disconnect", Button).display = bool(q.get("connected"))
        self.query_one("#qbo-start", Button).label = ("Connect another company (replaces this one)"
                                                      if q.get("connected") else "Connect a QuickBooks company")

    def _press_qbo_disconnect(self) -> None:
        self.sovterm.run_daemon_action("qbo_disconnect")

    def _press_summary_auto_sync(self) -> None:
        self.step_call("summary", "qbo.auto_sync", {"enabled": True}, lambda r: self.load_progress(resume=False))

    def _press_qbo_start(self) -> None:
        def started(result: dict[str, Any]) -> None:
            self.qbo_started = result
            url = str(result.get("authorization_url"))
            env = " (sandbox company)" if result.get("sandbox") else ""
            self.query_one("#qbo-url", Static).update(
                f"Open this address in a browser{env}, sign in and choose the company:\n{escape(url)}")
            self.query_one("#qbo-qr", Static).update(qr_text(url))
            self.query_one("#qbo-guide", Static).update(escape(str(result.get("intuit_app_guide") or "")))
            minutes = int(result.get("expires_in") or 600) // 60
            self.query_one("#qbo-waiting", Static).update(
                f"[b]waiting for QuickBooks to call back[/] (the link works for {minutes} min)…")
            self.wait_for_qbo(result)

        self.step_call("qbo", "setup.qbo.start", {}, started)

    def wait_for_qbo(self, started: dict[str, Any]) -> None:
        def finished(result: dict[str, Any]) -> None:
            waiting = self.query_one("#qbo-waiting", Static)
            if result.get("connected"):
                waiting.update(f"[$success]connected[/] to company {escape(str(result.get('realm_id')))}")
                self.load_progress(resume=False)
            elif result.get("timed_out"):
                waiting.update("[$warning]the link expired without a callback[/]: connect again, or paste the "
                               "address below")

        params = {"timeout_s": float(started.get("expires_in") or 600), "since": started.get("started_at")}
        self.call("setup.qbo.wait", params, done=finished,
                  failed=lambda message: self.problem("qbo", message), group="qbo-wait", exclusive=True)

    def _press_qbo_complete(self) -> None:
        url = self.query_one("#qbo-redirected", Input).value.strip()
        if not url:
            self.problem("qbo", "paste the full address the browser showed after you chose the company")
            return

        def done(connection: dict[str, Any]) -> None:
            self.query_one("#qbo-redirected", Input).value = ""
            self.query_one("#qbo-waiting", Static).update(
                f"[$success]connected[/] to company {escape(str(connection.get('realm_id')))}")
            self.load_progress(resume=False)

        self.step_call("qbo", "setup.qbo.complete", {"redirected_url": url}, done)

    # ---- 4. mode ----------------------------------------------------------------------------------------

    def _render_mode(self) -> None:
        saved = self.progress.saved_mode
        self.query_one("#mode-saved", Static).update(
            f"[$success]saved:[/] {escape(mode_text(saved))}" if saved
            else "[dim]not saved yet: deposit mode is proposed[/]")

    def show_saved_mode(self) -> None:
        """Put the saved mode into the radio buttons, once per change at the daemon (a choice the operator is
        making is not overwritten by a reload)."""
        saved = self.progress.saved_mode
        if saved is None or saved == self.shown_mode:
            return
        self.shown_mode = saved
        invoicing = saved.get("mode") == "invoicing"
        self.query_one("#mode-invoicing" if invoicing else "#mode-deposit", RadioButton).value = True
        self.query_one("#as-deposit" if saved.get("deposit_as") == "deposit" else "#as-salesreceipt",
                       RadioButton).value = True
        self.query_one("#mode-help", Static).update(MODE_HELP["invoicing" if invoicing else "deposit"])
        self.query_one("#deposit-as").display = not invoicing

    @on(RadioSet.Changed, "#mode-set")
    def _mode_changed(self, event: RadioSet.Changed) -> None:
        mode = "invoicing" if event.pressed.id == "mode-invoicing" else "deposit"
        self.query_one("#mode-help", Static).update(MODE_HELP[mode])
        self.query_one("#deposit-as").display = mode == "deposit"

    def _press_mode_save(self) -> None:
        mode = "invoicing" if self.query_one("#mode-invoicing", RadioButton).value else "deposit"
        deposit_as = "deposit" if self.query_one("#as-deposit", RadioButton).value else "salesreceipt"

        self.step_call("mode", "setup.mode", {"mode": mode, "deposit_as": deposit_as},
                       lambda result: self.load_progress(resume=False))

    # ---- 5. accounts ------------------------------------------------------------------------------------

    def _render_accounts(self) -> None:
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

    def load_proposals(self, wanted: tuple[str | None, tuple[str, ...]]) -> None:
        """The accounts each followed store would use in the connected company (read from QuickBooks, so
        only when the accounts step is shown)."""
        self.proposals, self.proposals_for = None, wanted
        self.query_one("#accounts-problem", Static).update("[dim]reading the company's accounts…[/]")

        async def read() -> None:
            proposals = {}
            for store_id in wanted[1]:
                proposals[store_id] = await self.sovterm.daemon.call("setup.accounts.propose", store_id=store_id)
            if self.proposals_for == wanted:
                self.proposals = proposals
                self.problem("accounts", None)
                if self.step == "accounts":
                    self.render_step()

        async def run() -> None:
            try:
                await read()
            except ActionFailed as exc:
                self.proposals_for = None  # read again when the step is shown again
                self.problem("accounts", str(exc))

        self.run_worker(run, name="wizard-proposals", group="wizard-proposals", exclusive=True, exit_on_error=False)

    def _press_accounts_apply(self) -> None:
        stores = [str(s.get("id")) for s in self.progress.stores]
        if not stores:
            self.problem("accounts", "follow a BTCPay store first (step 2)")
            return
        remaining = list(stores)

        def next_store(_: Any = None) -> None:
            if not remaining:
                self.proposals_for = None  # read again: the missing defaults now exist
                self.load_progress(resume=False)
                return
            self.step_call("accounts", "setup.accounts.apply", {"store_id": remaining.pop(0), "auto": True},
                           next_store)

        next_store()

    # ---- 6. backfill -------------------------------------------------------------------------------------

    def _render_backfill(self) -> None:
        bf = self.progress.backfill or {}
        text = "" if bf.get("state", "none") == "none" else (
            f"backfill {escape(str(bf.get('state')))} since {escape(str(bf.get('since')))}: "
            f"{bf.get('done', 0)} of {bf.get('total', 0)} posted (live progress on the Sync screen, s)")
        if self.progress.backfill_skipped and not text:
            text = "skipped: only new payments will be posted"
        self.query_one("#backfill-state", Static).update(text)

    def _press_backfill_start(self) -> None:
        since = self.query_one("#backfill-since", Input).value.strip()
        why = check_date(since)
        if why is not None:
            self.problem("backfill", why)
            return
        self.step_call("backfill", "sync.backfill", {"since": since}, lambda r: self.load_progress(resume=False))

    def _press_backfill_skip(self) -> None:
        self.progress.backfill_skipped = True
        self.render_step()

    # ---- 7. summary --------------------------------------------------------------------------------------

    def _render_summary(self) -> None:
        self.query_one("#summary-text", Static).update(summary_text(self.progress))
        q = self.progress.qbo or {}
        # a sandbox company starts with automatic posting off; switching it on is the last, deliberate step
        self.query_one("#summary-auto-sync", Button).display = bool(q.get("connected")) and not q.get("auto_sync")

    def _press_summary_done(self) -> None:
        self.sovterm.action_goto("dashboard")
