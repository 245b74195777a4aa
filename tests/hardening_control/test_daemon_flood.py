"""#19 point 3 against a real daemon: a client flooding `logs.tail` without reading the replies, and one
opening log-follow subscriptions without end, cost bounded memory while `/healthz` and another client
are answered; the flooding client is disconnected once it stays stuck."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request

from sovterm.control import protocol as rpc
from sovterm.control.client import CallFailed, ControlClient
from tests.support.daemon import DaemonProcess

FLOOD = 1500
LOG_LINES = 1500


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def healthz(d: DaemonProcess) -> dict:
    with urllib.request.urlopen(d.url + "/healthz", timeout=10) as r:
        return json.load(r)


async def test_flooding_client_is_bounded_and_others_are_answered(daemon_factory) -> None:
    d: DaemonProcess = daemon_factory({"control": {"client_stuck_s": 3}, "logging": {"level": "DEBUG"}})
    assert d.proc is not None
    async with await ControlClient.connect(d.socket_path) as client:
        for _ in range(LOG_LINES // 50):  # fill the log ring so each tail answer is large
            await asyncio.gather(*(client.call("ping") for _ in range(50)))
            for _ in range(50):
                _, w = await asyncio.open_unix_connection(str(d.socket_path))
                w.close()
        size = len(json.dumps(await client.call("logs.tail", lines=5000)))
    assert size > 100_000, "the tail answers are large enough to matter"
    before = rss_bytes(d.proc.pid)

    _never_read, writer = await asyncio.open_unix_connection(str(d.socket_path))

    async def flood() -> None:
        with contextlib.suppress(ConnectionError):
            for i in range(FLOOD):
                writer.write(rpc.request(i, "logs.tail", {"lines": 5000}))
                await writer.drain()

    sender = asyncio.create_task(flood())
    for _ in range(20):  # give the flood a head start: it fills whatever it may
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    assert (await loop.run_in_executor(None, healthz, d)) == {"status": "alive"}
    async with await ControlClient.connect(d.socket_path) as other:
        assert (await other.call("status"))["version"]
        refused = None
        for n in range(20):
            try:
                await other.call("logs.tail", lines=0, follow=True)
            except CallFailed as exc:
                refused = (n, exc.message)
                break
        assert refused is not None and refused[0] == 8 and "live subscriptions" in refused[1]
    grown = rss_bytes(d.proc.pid) - before
    assert grown < size * 40, f"the daemon grew by {grown} bytes for one flooding client"
    await asyncio.wait_for(sender, 30)
    async with await ControlClient.connect(d.socket_path) as other:  # still reading nothing: cut off
        for _ in range(300):
            tail = await other.call("logs.tail", lines=5, search="read nothing for")
            if tail["lines"]:
                break
            await asyncio.sleep(0.1)
        assert tail["lines"], "the stuck client was never disconnected"
    try:
        for _ in range(100):
            writer.write(rpc.request(0, "ping"))
            await asyncio.wait_for(writer.drain(), 10)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the daemon still takes requests from the stuck client")
    writer.close()
