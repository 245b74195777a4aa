"""Angor: the followed Angor projects (progress to target, investors, penalty days), the selected one's
stages with their release dates, and each source's health (indexer, relays: ok, down, slow, garbage, with
the age of the last good answer and the events dropped for a bad signature). Actions: re-read now, follow a
project id or founder npub, stop following (as `sovterm angor refresh|follow|unfollow`)."""

from __future__ import annotations

import time
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, ProgressBar, Static

from sovterm.formatting import age, sats_text
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape

STATE_STYLE = {"ok": "$success", "slow": "$warning", "down": "$error", "garbage": "$error"}


def _day(at: int | None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at)) if at else "-"


def project_row(p: dict[str, Any]) -> tuple[str, ...]:
    target = "-" if p["target_sats"] is None else f"{p['target_sats']:,}"
    return (p["name"], p["project_type"] or "?", p["phase"] or "?", f"{p['invested_sats']:,} / {target}",
            "-" if p["progress_percent"] is None else f"{p['progress_percent']} %", str(p["investor_count"]),
            "-" if p["penalty_days"] is None else f"{p['penalty_days']} d", "; ".join(p["problems"]))


def project_detail(p: dict[str, Any]) -> str:
    lines = [f"[b]{escape(p['name'])}[/] · {escape(p['project_id'])}"]
    if p["about"]:
        lines.append(escape(p["about"]))
    lines.append(f"raised [b]{sats_text(p['invested_sats'])}[/] of {sats_text(p['target_sats'])} from "
                 f"{p['investor_count']} investor(s)")
    lines.append(f"window {_day(p['start_date'])} to {_day(p['end_date'])} · expiry {_day(p['expiry_date'])} · "
                 f"penalty {p['penalty_days']} days"
                 + (f" · {sats_text(p['in_penalties_sats'])} in penalty" if p["in_penalties_count"] else ""))
    for s in p["stages"]:
        lines.append(f"  stage {s['number']}: {s['percent']} % = {sats_text(s['release_sats'])} on "
                     f"{_day(s['release_date'])}" + (" [$success]released[/]" if s["released"] else ""))
    lines.append(f"[dim]indexer data {age(p['chain_age_s'])} · Nostr data {age(p['nostr_age_s'])}[/]")
    lines += [f"[$warning]{escape(problem)}[/]" for problem in p["problems"]]
    return "\n".join(lines)


def sources_text(sources: list[dict[str, Any]]) -> str:
    lines = []
    for s in sources:
        style = STATE_STYLE.get(s["state"], "$text-muted")
        line = f"{s['kind']:<7} {escape(s['url'])} [{style}]{s['state'].upper()}[/]"
        if s["detail"]:
            line += f" {escape(s['detail'])}"
        if s["state"] != "ok" and s["last_ok_at"] is not None:
            line += f" · last good answer {age(s['age_s'])}"
        if s["dropped_events"]:
            line += f" · [$error]{s['dropped_events']} forged event(s) dropped[/]"
        lines.append(line)
    return "\n".join(lines)


class FollowScreen(ModalScreen[str | None]):
    CSS_PATH = "angor.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="angor-follow-box"):
            yield Label("Follow an Angor project (angor1...) or every project of a founder (npub1...)")
            yield Input(id="angor-ref", placeholder="angor1... or npub1...")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="angor-cancel", variant="primary")
                yield Button("Follow", id="angor-save", variant="success")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one(Input).value.strip() if event.button.id == "angor-save" else None)


class AngorScreen(DaemonScreen):
    CSS_PATH = "angor.tcss"
    BINDINGS = [
        Binding("f", "refresh", "Re-read now"),
        Binding("a", "follow", "Follow"),
        Binding("x", "unfollow", "Stop following"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.overview: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="angor-title")
        yield DataTable(id="angor-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="angor-detail"):
            with Vertical(id="angor-facts"):
                yield Static(id="angor-text")
                yield ProgressBar(id="angor-progress", total=100, show_eta=False)
            yield Static(id="angor-sources")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("project", "type", "phase", "raised / target (sats)", "%", "investors",
                                              "penalty", "problems")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def show_state(self, state: DaemonState) -> None:
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic == "angor.refreshed":
            self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        method = {"refresh": "angor.refresh", "follow": "angor.follow", "unfollow": "angor.unfollow"}.get(action)
        if method is not None:
            return True if self.may(method) is None else None
        return super().check_action(action, parameters)

    def reload(self) -> None:
        if self.may("angor.list") is None:
            self.call("angor.list", done=self.show_overview, group="angor.list", exclusive=True)

    def show_overview(self, overview: dict[str, Any]) -> None:
        self.overview = overview
        table = self.query_one(DataTable)
        selected = self.selected_id()
        table.clear()
        for p in overview["projects"]:
            table.add_row(*(escape(c) for c in project_row(p)), key=p["project_id"])
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        waiting = len(overview["waiting"])
        self.query_one("#angor-title", Static).update(
            (f"[b]{len(overview['projects'])}[/] project(s) followed" + (f" · {waiting} follow(s) with nothing found yet"
                                                                         if waiting else ""))
            if overview["follows"] else "no Angor projects followed: [b]a[/] follows a project id or a founder's npub")
        self.query_one("#angor-sources", Static).update(sources_text(overview["sources"]))
        self.show_detail()

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def selected(self) -> dict[str, Any] | None:
        pid = self.selected_id()
        return next((p for p in (self.overview or {}).get("projects", []) if p["project_id"] == pid), None)

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        project = self.selected()
        self.query_one("#angor-text", Static).update(project_detail(project) if project else "")
        self.query_one("#angor-progress", ProgressBar).update(  # a bar's length, not money
            progress=min(float(project["progress_percent"] or 0), 100.0) if project else 0)

    def action_refresh(self) -> None:
        def done(r: dict[str, Any]) -> None:
            self.notify(f"read {r['projects']} project(s); {r['sources_ok']}/{r['sources']} source(s) ok",
                        title="Angor")
            self.reload()

        self.call("angor.refresh", done=done)

    def action_follow(self) -> None:
        def answered(ref: str | None) -> None:
            if ref:
                self.call("angor.follow", {"ref": ref}, done=lambda r: self.reload())

        self.app.push_screen(FollowScreen(), answered)

    def action_unfollow(self) -> None:
        project = self.selected()
        if project is None:
            return
        ref = project["follow"]

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("angor.unfollow", {"ref": ref}, done=lambda r: self.reload())

        self.app.push_screen(ConfirmScreen(f"Stop following {ref}?\nIts projects are forgotten."), answered)
