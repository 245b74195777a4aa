"""The setup wizard's screen: the step list, Back/Next, and the progress read back from the daemon.

Every step is a daemon call whose result is kept by the daemon, so leaving the wizard (or losing the SSH
session) loses nothing: on entry the wizard reads the progress back (`setup.state`) and opens the first
step not done, with the saved mode chosen and the stores the stored key sees (`btcpay.stores`).
Next is enabled only once the current step is done (validated by the daemon; its refusals are shown in
the step). Viewers may look at every step; the controls that change anything are disabled.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, ContentSwitcher, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from sovterm.tui.connection import ActionFailed
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.screens.wizard.accounts import AccountsStep
from sovterm.tui.screens.wizard.backfill import BackfillStep
from sovterm.tui.screens.wizard.btcpay import BTCPayStep
from sovterm.tui.screens.wizard.mode import ModeStep
from sovterm.tui.screens.wizard.qbo import QBOStep
from sovterm.tui.screens.wizard.step import ADMIN, Step, StoresReport
from sovterm.tui.screens.wizard.stores import StoresStep
from sovterm.tui.screens.wizard.summary import SummaryStep
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape
from sovterm.tui.views import STEP_NAMES, STEPS, WizardProgress

RELOAD_TOPICS = ("qbo.", "connector.")


class WizardScreen(DaemonScreen):
    CSS_PATH = "wizard.tcss"
    BINDINGS = [
        Binding("ctrl+n", "next", "Next step"),
        Binding("ctrl+g", "back", "Back"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.progress = WizardProgress()
        self.step = "btcpay"
        self.loaded = False
        self.stores_report = StoresReport()  # the last one read (lists every store the key sees)
        self.pending_step: str | None = None  # asked for before the progress was read (palette "Reconnect ...")
        steps: tuple[Step, ...] = (
            BTCPayStep(session, self.stores_report), StoresStep(session, self.stores_report), QBOStep(session),
            ModeStep(session), AccountsStep(session), BackfillStep(session), SummaryStep(session),
        )
        self.steps = {step.KEY: step for step in steps}  # in the order of `views.STEPS`

    # ---- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="wizard-banner")
        with Horizontal(id="wizard"):
            yield OptionList(*[Option(title, id=name) for name, title in STEPS], id="wizard-steps")
            with ContentSwitcher(id="wizard-body", initial="step-btcpay"):
                yield from self.steps.values()
        with Horizontal(id="wizard-nav"):
            yield Button("‹ Back", id="nav-back", compact=True)
            yield Static(id="wizard-where")
            yield Button("Next ›", id="nav-next", compact=True, variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.show_state(self.session.state)

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
        daemon = self.session.daemon

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
            self.stores_report.result, self.stores_report.problem = None, None
        self.progress = new
        self.loaded = True
        self.query_one(ModeStep).show_saved(new)
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

    def load_stores_report(self) -> None:
        """The stores the stored key sees, with their permissions (a resumed wizard asks no key again)."""
        if self.may("btcpay.stores") is not None:
            return
        self.stores_report.problem = None

        def got(report: dict[str, Any]) -> None:
            self.stores_report.result = report
            self.render_step()

        def failed(message: str) -> None:
            self.stores_report.problem = message
            self.render_step()

        self.call("btcpay.stores", done=got, failed=failed, group="stores-report", exclusive=True)

    # ---- what the steps ask for ------------------------------------------------------------------------

    @on(Step.Reload)
    def _step_changed_the_daemon(self) -> None:
        self.load_progress(resume=False)

    @on(Step.Redraw)
    def _step_has_news(self, event: Step.Redraw) -> None:
        if event.key == self.step:
            self.render_step()

    @on(BackfillStep.Skipped)
    def _backfill_skipped(self) -> None:
        self.progress.backfill_skipped = True
        self.render_step()

    # ---- navigation --------------------------------------------------------------------------------

    def goto(self, step: str) -> None:
        self.step = step
        if step in ("btcpay", "stores") and self.stores_report.result is None and self.progress.btcpay_connected:
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
        self.steps[self.step].show(p)
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

    @on(Button.Pressed, "#nav-next")
    def _next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#nav-back")
    def _back_pressed(self) -> None:
        self.action_back()

    @on(OptionList.OptionSelected, "#wizard-steps")
    def _step_chosen(self, event: OptionList.OptionSelected) -> None:
        target = str(event.option.id)
        index = STEP_NAMES.index(target)
        # jump back freely; forward only over steps that are done (viewers: anywhere)
        if self.read_only is None and any(not self.progress.done(s) for s in STEP_NAMES[:index]):
            self.notify("finish the earlier steps first", severity="warning")
            return
        self.goto(target)
