"""Step 6: post the invoices settled since a date (each exactly once), or skip and start from now."""

from __future__ import annotations

from datetime import date, timedelta

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from sovterm.tui.screens.wizard.step import ADMIN, Step
from sovterm.tui.text import escape
from sovterm.tui.views import check_date

BACKFILL_DEFAULT_DAYS = 30


class BackfillStep(Step):
    KEY = "backfill"

    class Skipped(Message):
        """The operator skips the backfill (this session's choice: the daemon keeps no record of it)."""

    def compose(self) -> ComposeResult:
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

    def draw(self) -> None:
        bf = self.progress.backfill or {}
        text = "" if bf.get("state", "none") == "none" else (
            f"backfill {escape(str(bf.get('state')))} since {escape(str(bf.get('since')))}: "
            f"{bf.get('done', 0)} of {bf.get('total', 0)} posted (live progress on the Sync screen, s)")
        if self.progress.backfill_skipped and not text:
            text = "skipped: only new payments will be posted"
        self.query_one("#backfill-state", Static).update(text)

    @on(Button.Pressed, "#backfill-start")
    def _start(self) -> None:
        since = self.query_one("#backfill-since", Input).value.strip()
        why = check_date(since)
        if why is not None:
            self.problem(why)
            return
        self.ask("sync.backfill", {"since": since}, self.reload)

    @on(Button.Pressed, "#backfill-skip")
    def _skip(self) -> None:
        self.post_message(self.Skipped())
