"""The Paywall screen (`y`): sales per resource and the priced paths, as `paywall.sales` / `paywall.list` answer."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import DataTable, Static

from sovterm.tui.app import SovtermApp
from sovterm.tui.messages import Connected
from sovterm.tui.screens.paywall import PaywallScreen
from sovterm.tui.state import Capabilities
from tests.tui.fakes import METHODS, SOCKET, STATUS, FixedConnection
from tests.tui.helpers import plain, until

SALES = [
    {"resource": "pay-links", "currency": None, "sold": 0, "total": "0", "challenges": 3, "paid_requests": 1,
     "refused": 0, "refusals": {}},
    {"resource": "weather", "currency": "USD", "sold": 2, "total": "0.50", "challenges": 4, "paid_requests": 9,
     "refused": 3, "refusals": {"expired": 1, "wrong preimage": 2}},
]
PATHS = [{"name": "weather", "path": "/api/", "price": "0.25 USD", "access_s": 600,
          "target": "http://127.0.0.1:9000/v1", "source": "config", "store_id": None, "description": ""}]


class PaywallConnection(FixedConnection):
    def __init__(self, post: Any) -> None:
        super().__init__(post, role="viewer")
        self.client.results.update({"paywall.sales": SALES, "paywall.list": PATHS})

    async def run(self) -> None:
        hello = {"version": "0.1.0", "protocol": 1, "role": "viewer", "user": "alice"}
        caps = Capabilities.from_daemon(hello, METHODS + [{"name": "paywall.sales", "role": "viewer"},
                                                          {"name": "paywall.list", "role": "viewer"}])
        self.daemon.attach(self.client, caps)  # type: ignore[arg-type]
        self._post(Connected(hello, caps, {**STATUS, "alerts": []}))
        await asyncio.Event().wait()


async def test_paywall_screen_shows_sales_per_resource_and_the_priced_paths() -> None:
    app = SovtermApp(SOCKET, connection_factory=PaywallConnection)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.session.state.connected, what="connected")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, PaywallScreen) and app.screen.is_mounted
                    and app.screen.query_one("#paywall-paths", DataTable).row_count == 1, what="paywall screen")
        sales = app.screen.query_one("#paywall-sales", DataTable)
        assert sales.row_count == 2
        assert [str(c) for c in sales.get_row_at(1)] == ["weather", "2", "0.50 USD", "4", "9", "3",
                                                         "expired 1, wrong preimage 2"]
        assert "2 paid access(es) sold" in plain(app.screen.query_one("#paywall-title", Static))
        await pilot.press("f")
        await until(pilot, lambda: len(app.connection.client.called("paywall.sales")) >= 2, what="refreshed")
