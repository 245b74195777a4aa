"""`setup.state` tells a resuming wizard where setup stands."""

from __future__ import annotations

import asyncio

from sovterm.control.client import ControlClient
from tests.support.daemon import DaemonProcess


async def _state(d: DaemonProcess) -> dict:
    async with await ControlClient.connect(d.socket_path) as c:
        return await c.call("setup.state")


def test_setup_state_reports_modes_and_progress(daemon: DaemonProcess) -> None:
    assert asyncio.run(_state(daemon)) == {"modes": {}}
    done = daemon.cli("setup", "mode", "invoicing", "--store", "S1")
    assert done.returncode == 0, done.stderr
    state = asyncio.run(_state(daemon))
    assert state["modes"]["S1"]["mode"] == "invoicing"
