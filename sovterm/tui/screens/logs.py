"""Live daemon log: follows new lines unless the operator scrolled back, filters client-side.

The connection appends batches to the app's bounded `LogBuffer`; this screen pulls what is new every 50 ms and
writes it to a `Log` widget (virtualised: only visible rows render), so a burst of 1,000 lines/s costs
~20 small writes a second, not 1,000 refreshes.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, Log, Static

from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.session import Session
from sovterm.tui.state import LEVELS, DaemonState, LogFilter, format_log_line

PULL_INTERVAL_S = 0.05


class LogsScreen(DaemonScreen):
    CSS_PATH = "logs.tcss"
    BINDINGS = [
        Binding("v", "cycle_level", "Level"),
        Binding("c", "focus_component", "Component"),
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("end", "follow", "Follow"),
        Binding("escape", "focus_log", "Back to log", show=False),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.filter = LogFilter()
        self.unseen = 0  # lines written while scrolled back
        self._seen = 0  # number of the last buffer line pulled

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="log-filters"):
            yield Static(id="log-level")
            yield Input(placeholder="component (c)", id="log-component", compact=True)
            yield Input(placeholder="search (/)", id="log-search", compact=True)
        yield Log(id="log", max_lines=self.session.log_buffer.size, auto_scroll=True)
        yield Static(id="log-indicator")
        yield Footer()

    def on_mount(self) -> None:
        self._show_level()
        self.redraw()
        self.set_interval(PULL_INTERVAL_S, self.pull)
        self.query_one(Log).focus()

    def show_state(self, state: DaemonState) -> None:
        self.pull()

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log", Log)

    def pull(self) -> None:
        """Write what arrived since the last pull; keep the view where the operator left it."""
        buffer = self.session.log_buffer
        lines, must_redraw = buffer.since(self._seen)
        self._seen = buffer.total
        if must_redraw:
            self.redraw()
            return
        log = self.log_widget
        at_end = log.is_vertical_scroll_end
        kept = [format_log_line(line) for line in lines if self.filter.keep(line)]
        if kept:
            log.write_lines(kept)
            if not at_end:
                self.unseen += len(kept)
        elif at_end and self.unseen:
            self.unseen = 0
        self._show_indicator()

    def redraw(self) -> None:
        buffer = self.session.log_buffer
        self._seen = buffer.total
        log = self.log_widget
        log.clear()
        log.write_lines([format_log_line(line) for line in buffer if self.filter.keep(line)], scroll_end=True)
        self.unseen = 0
        self._show_indicator()

    def _show_indicator(self) -> None:
        indicator = self.query_one("#log-indicator", Static)
        if self.unseen:
            indicator.update(f"[$warning b]{self.unseen} new lines — press End to follow[/]")
            indicator.add_class("-behind")
        else:
            buffer = self.session.log_buffer
            indicator.update(
                f"following · {self.log_widget.line_count} lines shown · buffer {len(buffer)}/{buffer.size}"
            )
            indicator.remove_class("-behind")

    def _show_level(self) -> None:
        self.query_one("#log-level", Static).update(f"level ≥ [b]{self.filter.level}[/] (v)")

    def set_filter(self, flt: LogFilter) -> None:
        self.filter = flt
        self._show_level()
        self.redraw()

    def action_cycle_level(self) -> None:
        nxt = LEVELS[(LEVELS.index(self.filter.level) + 1) % len(LEVELS)]
        self.set_filter(LogFilter(nxt, self.filter.component, self.filter.search))

    def action_focus_component(self) -> None:
        self.query_one("#log-component", Input).focus()

    def action_focus_search(self) -> None:
        self.query_one("#log-search", Input).focus()

    def action_focus_log(self) -> None:
        self.log_widget.focus()

    def action_follow(self) -> None:
        self.log_widget.scroll_end(animate=False, immediate=True)
        self.unseen = 0
        self._show_indicator()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        component = self.query_one("#log-component", Input).value.strip()
        search = self.query_one("#log-search", Input).value
        self.set_filter(LogFilter(self.filter.level, component, search))

    @on(Input.Submitted)
    def _filter_done(self) -> None:
        self.log_widget.focus()
