"""Notifications: where the daemon sends its alerts (apprise destinations), how delivery goes, and the
actions on them: add one (the URL typed into a masked field, sent once, never shown again), send a test,
remove one. The same as `sovterm notify add|list|test|remove`."""

from __future__ import annotations

import time
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from sovterm.formatting import age
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape

SEVERITIES = (("errors only", "error"), ("warnings and errors", "warning"), ("everything", "info"))


def destination_row(d: dict[str, Any], now: float) -> tuple[str, ...]:
    last = d.get("last_sent_at")
    sent = age(None if not last else now - last)
    trouble = d.get("last_error") or ""
    if d.get("held_back"):
        trouble = f"{d['held_back']} held back by the limit" + (f"; {trouble}" if trouble else "")
    return (d["name"], f"{d['service']}://…", d["min_severity"], d["state"], str(d["sent"]), str(d["queued"]),
            sent, trouble)


class AddDestinationScreen(ModalScreen[dict[str, str] | None]):
    """Name, apprise URL (masked: it carries tokens) and the least severity; Esc cancels."""

    CSS_PATH = "notify.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="notify-add-box"):
            yield Label("Add a notification destination")
            yield Input(id="notify-name", placeholder="name (phone, ops-mail...)", max_length=32)
            yield Input(id="notify-url", placeholder="apprise URL: ntfy://…, mailtos://…, tgram://…", password=True)
            yield Select(SEVERITIES, value="warning", allow_blank=False, id="notify-severity")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="notify-cancel", variant="primary")
                yield Button("Add", id="notify-save", variant="success")

    def on_mount(self) -> None:
        self.query_one("#notify-name", Input).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "notify-save":
            self.dismiss(None)
            return
        self.dismiss({"name": self.query_one("#notify-name", Input).value.strip(),
                      "url": self.query_one("#notify-url", Input).value.strip(),
                      "min_severity": str(self.query_one("#notify-severity", Select).value)})


class NotifyScreen(DaemonScreen):
    CSS_PATH = "notify.tcss"
    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("e", "test", "Send test"),
        Binding("x", "remove", "Remove"),
        Binding("f", "reload", "Refresh"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.destinations: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="notify-title")
        yield DataTable(id="notify-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="notify-result")
        yield Static(id="notify-actions", classes="actions-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("name", "service", "sends", "state", "sent", "queued", "last sent",
                                              "trouble")
        self.show_state(self.session.state)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.action_reload()

    def show_state(self, state: DaemonState) -> None:
        why = self.may("notify.add")
        self.query_one("#notify-actions", Static).update(
            "[b]a[/] add · [b]e[/] send a test · [b]x[/] remove · [b]f[/] refresh" if why is None
            else f"[dim]a add · e test · x remove[/] — disabled: {escape(why)}")
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic.startswith("alert"):
            self.action_reload()  # an alert started or cleared: deliveries move

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        method = {"add": "notify.add", "test": "notify.test", "remove": "notify.remove"}.get(action)
        if method is not None:
            return True if self.may(method) is None else None
        return super().check_action(action, parameters)

    def action_reload(self) -> None:
        def done(result: Any) -> None:
            self.destinations = list(result or [])
            self.show_list()

        if self.may("notify.list") is None:
            self.call("notify.list", done=done, exclusive=True)

    def show_list(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_name()
        table.clear()
        now = time.time()
        for d in self.destinations:
            table.add_row(*(escape(cell) for cell in destination_row(d, now)), key=d["name"])
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        failing = sum(1 for d in self.destinations if d.get("state") in ("retrying", "failing"))
        self.query_one("#notify-title", Static).update(
            f"[b]{len(self.destinations)}[/] destination(s) for alerts"
            + (f" · [$error]{failing} failing[/]" if failing else "")
            if self.destinations else "no destinations yet: alerts reach no one outside this screen · a adds one")

    def selected_name(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def show_result(self, text: str) -> None:
        self.query_one("#notify-result", Static).update(text)

    def action_add(self) -> None:
        def answered(values: dict[str, str] | None) -> None:
            if not values:
                return

            def done(row: dict[str, Any]) -> None:
                self.show_result(f"added {escape(row['name'])} ({escape(row['service'])}://…); e sends a test")
                self.action_reload()

            def failed(message: str) -> None:
                self.show_result(f"[$error]refused:[/] {escape(message)}")

            self.call("notify.add", values, done=done, failed=failed)

        self.app.push_screen(AddDestinationScreen(), answered)

    def action_test(self) -> None:
        name = self.selected_name()
        if name is None:
            self.notify("no destination selected", severity="information")
            return

        def done(result: dict[str, Any]) -> None:
            self.show_result(f"{escape(name)}: delivered" if result.get("delivered")
                             else f"[$error]{escape(name)}: not delivered[/] ({escape(str(result.get('error')))})")
            self.action_reload()

        self.show_result(f"sending a test to {escape(name)}…")
        self.call("notify.test", {"name": name}, done=done)

    def action_remove(self) -> None:
        name = self.selected_name()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("notify.remove", {"name": name},
                          done=lambda r: (self.show_result(f"removed {escape(name)}"), self.action_reload()))

        self.app.push_screen(ConfirmScreen(f"Remove the destination {name}?\nAlerts stop reaching it."), answered)
