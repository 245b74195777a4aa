"""Mints: the trusted Cashu mints, each one's last health check and, for the selected one, its history.
Actions: check now, trust another mint, stop checking one (as `sovterm mints check|add|remove`)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from sovterm.formatting import age
from sovterm.tui.messages import DaemonEvent
from sovterm.tui.screens.base import DaemonScreen
from sovterm.tui.screens.confirm import ConfirmScreen
from sovterm.tui.session import Session
from sovterm.tui.state import DaemonState
from sovterm.tui.text import escape

STATE_STYLE = {"ok": "$success", "degraded": "$warning", "down": "$error"}


def mint_row(m: dict[str, Any]) -> tuple[str, ...]:
    keysets = f"{len(m.get('active_keysets') or [])}/{len(m.get('active_keysets') or []) + m.get('inactive_keysets', 0)}"
    fee = m.get("input_fee_ppk")
    return (m["url"], m["state"], "-" if m.get("latency_ms") is None else f"{m['latency_ms']} ms",
            m.get("version") or "-", keysets if m.get("checked") else "-", "-" if fee is None else f"{fee} ppk",
            "; ".join(m.get("problems") or []) or (m.get("motd") or ""))


def mint_detail(m: dict[str, Any], clock: float) -> str:
    style = STATE_STYLE.get(m["state"], "$text-muted")
    lines = [f"[b]{escape(m['url'])}[/] [{style}]{m['state'].upper()}[/] · trusted by {m['source']}"]
    if m.get("motd"):
        lines.append(f"message from the mint: {escape(m['motd'])}")
    for h in m.get("history") or []:
        lines.append(f"[dim]{age(clock - h['at']):>12}[/] {h['state']:<8} {escape(h['detail'])}")
    return "\n".join(lines)


class AddMintScreen(ModalScreen[str | None]):
    CSS_PATH = "mints.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="mint-add-box"):
            yield Label("Trust a Cashu mint (its base URL, as wallets use it)")
            yield Input(id="mint-url", placeholder="https://mint.example.com")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="mint-cancel", variant="primary")
                yield Button("Trust", id="mint-save", variant="success")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one(Input).value.strip() if event.button.id == "mint-save" else None)


class MintsScreen(DaemonScreen):
    CSS_PATH = "mints.tcss"
    BINDINGS = [
        Binding("f", "check", "Check now"),
        Binding("a", "add", "Trust a mint"),
        Binding("x", "remove", "Stop checking"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.mints: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="mints-title")
        yield DataTable(id="mints-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="mints-detail")
        yield Static(id="mints-actions", classes="actions-line")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("mint", "state", "latency", "version", "keysets", "fee", "notes")
        self.show_state(self.session.state)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def show_state(self, state: DaemonState) -> None:
        why = self.may("mints.add")
        self.query_one("#mints-actions", Static).update(
            "[b]f[/] check now · [b]a[/] trust a mint · [b]x[/] stop checking" if why is None
            else f"[b]f[/] check now · [dim]a trust · x stop checking[/] — disabled: {escape(why)}")
        self.refresh_bindings()

    def daemon_event(self, event: DaemonEvent) -> None:
        if event.topic == "mint.state":
            self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        method = {"check": "mints.check", "add": "mints.add", "remove": "mints.remove"}.get(action)
        if method is not None:
            return True if self.may(method) is None else None
        return super().check_action(action, parameters)

    def reload(self) -> None:
        def done(result: Any) -> None:
            self.mints = list(result or [])
            self.show_list()

        if self.may("mints.list") is None:
            self.call("mints.list", done=done, exclusive=True)

    def show_list(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_url()
        table.clear()
        for m in self.mints:
            table.add_row(*(escape(c) for c in mint_row(m)), key=m["url"])
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        down = sum(1 for m in self.mints if m["state"] == "down")
        self.query_one("#mints-title", Static).update(
            (f"[b]{len(self.mints)}[/] trusted mint(s)" + (f" · [$error]{down} down[/]" if down else ""))
            if self.mints else "no trusted mints: a adds one (or [mints] trusted in the configuration)")
        self.show_detail()

    def selected_url(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        url = self.selected_url()
        mint = next((m for m in self.mints if m["url"] == url), None)
        self.query_one("#mints-detail", Static).update(
            mint_detail(mint, self.session.clock()) if mint else "")

    def action_check(self) -> None:
        def done(r: dict[str, Any]) -> None:
            self.notify(f"checked {r['mints']} mint(s): {r.get('ok', 0)} ok, {r.get('degraded', 0)} degraded, "
                        f"{r.get('down', 0)} down", title="Mints")
            self.reload()

        self.call("mints.check", done=done)

    def action_add(self) -> None:
        def answered(url: str | None) -> None:
            if url:
                self.call("mints.add", {"url": url}, done=lambda r: self.reload())

        self.app.push_screen(AddMintScreen(), answered)

    def action_remove(self) -> None:
        url = self.selected_url()
        if url is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call("mints.remove", {"url": url}, done=lambda r: self.reload())

        self.app.push_screen(ConfirmScreen(f"Stop checking {url}?\nIts history is forgotten."), answered)
