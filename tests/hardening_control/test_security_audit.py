"""#19 point 6: security events reach the audit trail (bounded), and the socket role comes from the
connecting process's own credentials, never from the user's entry in /etc/group."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sovterm.control import protocol as rpc
from sovterm.control import roles
from sovterm.control.client import ControlClient
from sovterm.control.roles import Peer, Role, RolePolicy
from sovterm.control.server import CallContext, ControlServer
from sovterm.store import audit
from sovterm.store.audit import SecurityEvents
from sovterm.store.db import Database
from tests.support.daemon import DaemonProcess

ADMIN_GID, VIEWER_GID, NOBODY = 64000, 65533, 65534

CONNECT_AS_NOBODY = """
import os, socket, sys
path, groups = sys.argv[1], [int(g) for g in sys.argv[2].split(",") if g]
os.setgroups(groups)
os.setgid(65533)
os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.recv(1)
"""


def role_of_process_with_groups(policy: RolePolicy, groups: list[int]) -> Role:
    """Accept one connection from a process running as nobody with exactly `groups`; its role."""
    folder = tempfile.mkdtemp(prefix="sovterm-peer-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "s")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            os.chmod(path, 0o777)
            server.listen(1)
            child = subprocess.Popen([sys.executable, "-c", CONNECT_AS_NOBODY, path, ",".join(map(str, groups))])
            try:
                server.settimeout(20)
                conn, _ = server.accept()
                with conn:
                    peer = policy.identify(conn)
                    conn.sendall(b"x")
            finally:
                child.wait(20)
        assert peer.uid == NOBODY and peer.gid == VIEWER_GID
        return peer.role
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another Unix user with chosen groups")
@pytest.mark.parametrize("peergroups", ["SO_PEERGROUPS", "/proc fallback"])
def test_a_process_that_dropped_the_admin_group_is_not_admin(monkeypatch, peergroups: str) -> None:
    # /etc/group says nobody is in the admin group...
    monkeypatch.setattr(os, "getgrouplist", lambda name, gid: [gid, ADMIN_GID])
    if peergroups != "SO_PEERGROUPS":  # a kernel without SO_PEERGROUPS: /proc/<pid>/status at accept
        monkeypatch.setattr(roles, "SO_PEERGROUPS", 0x7FFF)
    policy = RolePolicy(daemon_uid=12345, admin_gid=ADMIN_GID, viewer_gid=VIEWER_GID)
    # ...but only the process that holds it is admin.
    assert role_of_process_with_groups(policy, []) is Role.VIEWER
    assert role_of_process_with_groups(policy, [ADMIN_GID]) is Role.ADMIN


class ScriptedPolicy:
    def __init__(self) -> None:
        self.next: list[Peer] = []

    def identify(self, sock: socket.socket) -> Peer:
        return self.next.pop(0)


async def _rows(db: Database, action: str) -> list[dict]:
    return [{**r, "detail": json.loads(r["detail"])} for r in await audit.recent(db, 1000) if r["action"] == action]


async def test_refused_connections_and_forbidden_calls_are_audited_boundedly(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "a.db")
    security = SecurityEvents(lambda: db, burst=10)

    async def no_audit(*row: object, conn: object = None) -> None:
        return None

    policy = ScriptedPolicy()
    srv = ControlServer(tmp_path / "c.sock", policy, parts=lambda name: None, audit=no_audit,  # type: ignore[arg-type]
                        version="t", security=security.write)

    @srv.method("secrets.rotate", role=Role.ADMIN)
    async def rotate(ctx: CallContext) -> str:
        return "rotated"

    await srv.start()
    try:
        policy.next.append(Peer(pid=7, uid=1001, gid=1001, user="mallory", role=Role.VIEWER))
        reader, writer = await asyncio.open_unix_connection(str(srv.path))
        for i in range(50):
            writer.write(rpc.request(i, "secrets.rotate"))
        await writer.drain()
        for _ in range(50):
            assert json.loads(await asyncio.wait_for(reader.readline(), 10))["error"]["code"] == rpc.FORBIDDEN
        writer.close()
        for _ in range(3):
            policy.next.append(Peer(pid=8, uid=1002, gid=1002, user="eve", role=Role.NONE))
            reader, writer = await asyncio.open_unix_connection(str(srv.path))
            assert json.loads(await asyncio.wait_for(reader.readline(), 10))["error"]["code"] == rpc.FORBIDDEN
            writer.close()
    finally:
        await srv.stop()
    forbidden = await _rows(db, "control.forbidden")
    assert len(forbidden) == 10  # 50 calls, at most `burst` rows a window
    assert {r["actor"] for r in forbidden} == {"mallory"} and {r["subject"] for r in forbidden} == {"secrets.rotate"}
    assert forbidden[0]["detail"]["uid"] == 1001 and forbidden[0]["outcome"] == "refused"
    refused = await _rows(db, "control.refused")
    assert len(refused) == 3 and refused[0]["actor"] == "eve"
    assert "neither the admin nor the viewer group" in refused[0]["detail"]["reason"]
    await db.close()


async def test_suppressed_events_are_counted_into_the_next_window(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "a.db")
    now = [0.0]
    security = SecurityEvents(lambda: db, burst=2, clock=lambda: now[0])
    for _ in range(7):
        await security.write("eve", "control.refused", None, {"reason": "x"})
    now[0] += SecurityEvents.WINDOW_S
    await security.write("eve", "control.refused", None, {"reason": "x"})
    rows = await _rows(db, "control.refused")
    assert len(rows) == 3 and rows[0]["detail"]["suppressed"] == 5
    await db.close()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_daemon_audits_oauth_state_failures_webhook_refusals_and_reloads(daemon_factory) -> None:
    d: DaemonProcess = daemon_factory()
    loop = asyncio.get_running_loop()
    for _ in range(5):
        status = await loop.run_in_executor(None, _get, d.url + "/oauth/qbo/callback?state=forged&code=x&realmId=1")
        assert status >= 400
    statuses = [await loop.run_in_executor(None, _post, d.url + "/webhooks/btcpay/NoSuchStore") for _ in range(25)]
    assert all(400 <= s < 500 for s in statuses), statuses
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    async with await ControlClient.connect(d.socket_path) as client:
        await client.call("daemon.reload")
        rows: list[dict] = []
        for _ in range(100):
            rows = await client.call("audit.list", limit=100)
            if sum(r["action"] == "daemon.reload" for r in rows) == 2:
                break
            await asyncio.sleep(0.1)
    by_action: dict[str, list[dict]] = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert len(by_action["qbo.callback_refused"]) == 1  # unauthenticated: one row a window
    assert by_action["qbo.callback_refused"][0]["detail"]["reason"]
    [refusals] = by_action["btcpay.webhook_refusals"]  # one row once the threshold is crossed
    assert refusals["detail"]["refused"] == 20 and refusals["detail"]["stores"] == {"NoSuchStore": 20}
    reloads = by_action["daemon.reload"]
    assert sorted(r["actor"] for r in reloads)[-1] == "signal:SIGHUP" and len(reloads) == 2
    assert all("error" not in r["detail"] for r in reloads)
