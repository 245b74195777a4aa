"""What every wizard step shares: its place in the wizard, its problem line, daemon calls whose refusal is
shown in the step, and the messages it sends up to the wizard screen (attributes go down, messages up)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from sovterm.tui.screens.base import call_in_worker
from sovterm.tui.session import Session
from sovterm.tui.text import escape
from sovterm.tui.views import WizardProgress

ADMIN = "admin"  # class of the controls that change something (disabled for viewers)


@dataclass
class StoresReport:
    """The permission report of the BTCPay key (`setup.btcpay.connect` or `btcpay.stores`): every store it
    sees and what it may do there. Read by the wizard, shown by the BTCPay and stores steps."""

    result: dict[str, Any] | None = None
    problem: str | None = None  # why `btcpay.stores` could not be read


class Step(VerticalScroll):
    """One step, shown in the wizard's content switcher as `#step-<KEY>`; its refusals go to `#<KEY>-problem`."""

    KEY: ClassVar[str]

    class Reload(Message):
        """The step changed something at the daemon: the wizard reads the progress again."""

    @dataclass
    class Redraw(Message):
        """Something the step shows has arrived: the wizard renders it again if it is the current step."""

        key: str

    def __init__(self, session: Session) -> None:
        super().__init__(id=f"step-{self.KEY}", classes="step")
        self.session = session
        self.progress = WizardProgress()  # as last shown

    def show(self, progress: WizardProgress) -> None:
        """Render the step from the progress (the wizard calls it while the step is the current one)."""
        self.progress = progress
        self.draw()

    def draw(self) -> None:
        """Put `self.progress` into the step's widgets."""

    def problem(self, message: str | None) -> None:
        self.query_one(f"#{self.KEY}-problem", Static).update("" if not message else f"[$error]{escape(message)}[/]")

    def ask(self, method: str, params: dict[str, Any], done: Callable[[Any], None]) -> None:
        """A daemon call made by the step: its refusal is shown in the step, never as a crash."""
        self.problem(None)
        self.query_one(f"#{self.KEY}-problem", Static).update("[dim]asking the daemon…[/]")

        def ok(result: Any) -> None:
            self.problem(None)
            done(result)

        call_in_worker(self, self.session.daemon, method, params, done=ok, failed=self.problem,
                       group=f"step:{self.KEY}", exclusive=True)

    def reload(self, _: Any = None) -> None:
        """Ask the wizard to read the progress again (as the `done` of a call whose result is in the progress)."""
        self.post_message(self.Reload())
