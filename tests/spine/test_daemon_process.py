"""The daemon as a real subprocess: status, refusals, signals, notify, roles."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, clean_env, write_config


def test_status_over_socket(daemon: DaemonProcess) -> None:
    result = daemon.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    st = json.loads(result.stdout)
    assert st["ready"] is True
    assert st["checks"]["database"] == "writable"
    assert "reaper" in st["checks"]["loops"]
    human = daemon.cli("status")
    assert "READY" in human.stdout and "loop reaper" in human.stdout


def test_socket_and_key_file_modes(daemon: DaemonProcess) -> None:
    sock_mode = stat.S_IMODE(daemon.socket_path.stat().st_mode)
    dir_mode = stat.S_IMODE(daemon.socket_path.parent.stat().st_mode)
    key_mode = stat.S_IMODE((daemon.root / "data" / "sovterm.key").stat().st_mode)
    assert (sock_mode, dir_mode, key_mode) == (0o660, 0o750, 0o600)


def test_status_when_daemon_not_running_says_how_to_fix(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path, write_config(tmp_path))
    result = d.cli("status")
    assert result.returncode == 3
    assert "not running" in result.stderr and "systemctl start sovterm" in result.stderr


def test_bad_config_refused_naming_key_value_and_fix(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"listener": {"port": 70000}, "qbo": {"environment": "prod"}})
    d = DaemonProcess(tmp_path, config)
    check = d.cli("config", "check")
    assert check.returncode == 2
    assert "listener.port = 70000" in check.stderr and "less than or equal to 65535" in check.stderr
    assert "qbo.environment = 'prod'" in check.stderr and "'sandbox' or 'production'" in check.stderr
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 2
    assert "listener.port" in d.proc.stderr.read().decode()  # type: ignore[union-attr]


def test_second_instance_refused(daemon: DaemonProcess) -> None:
    second = DaemonProcess(daemon.root, daemon.config).start(wait=False)
    assert second.proc is not None and second.proc.wait(15) == 2
    err = second.proc.stderr.read().decode()  # type: ignore[union-attr]
    assert "already running" in err and str(daemon.proc.pid) in err  # type: ignore[union-attr]
    assert daemon.cli("status").returncode == 0  # the first one is untouched


def test_key_file_readable_by_others_refused(daemon_factory) -> None:
    d = daemon_factory()
    assert d.stop() == 0
    key = d.root / "data" / "sovterm.key"
    key.chmod(0o644)
    d.start(wait=False)
    assert d.proc.wait(15) == 2
    err = d.proc.stderr.read().decode()
    assert "mode 0644" in err and "chmod 600" in err


def test_a_port_in_use_is_named_with_the_fix(daemon_factory) -> None:
    d = daemon_factory(start=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", d.port))
        taken.listen()
        d.start(wait=False)
        assert d.proc.wait(15) == 2
    err = d.proc.stderr.read().decode()
    assert f"cannot listen on 127.0.0.1:{d.port}" in err and "address already in use" in err
    assert "fix: choose a free [listener] port" in err


def test_a_socket_path_too_long_is_named_with_the_fix(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory(start=False)
    long = tmp_path / ("x" * 60) / ("y" * 60) / "control.sock"
    d.config.write_text(d.config.read_text().replace(str(d.socket_path), str(long)))
    d.start(wait=False)
    assert d.proc.wait(15) == 2
    err = d.proc.stderr.read().decode()
    assert "Unix sockets allow at most 107" in err and "fix: set [control] socket to a shorter path" in err


def test_sigterm_exits_zero_and_removes_socket(daemon: DaemonProcess) -> None:
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10
    assert not daemon.socket_path.exists()
    log = (daemon.root / "data" / "logs" / "sovterm.log").read_text().splitlines()
    msgs = [json.loads(line)["msg"] for line in log]
    assert "stopped" in msgs


def test_notify_protocol(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(10)
    root = tmp_path / "n"
    root.mkdir()
    d = DaemonProcess(root, write_config(root))
    d.env = clean_env(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="200000")
    d.start()
    messages: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("READY=1" in m for m in messages):
        messages.append(listener.recv(4096).decode())
    while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 2:
        messages.append(listener.recv(4096).decode())
    assert d.stop() == 0
    while True:
        messages.append(listener.recv(4096).decode())
        if "STOPPING=1" in messages[-1]:
            break
    listener.close()
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=running" in ready
    assert sum("WATCHDOG=1" in m for m in messages) >= 2


VIEWER_CLIENT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from sovterm.control.client import ControlClient, CallFailed
    path, uid, gid, viewer_gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    os.setgroups([viewer_gid] if viewer_gid >= 0 else [])
    os.setgid(gid)
    os.setuid(uid)
    async def main():
        out = {}
        try:
            client = await ControlClient.connect(Path(path))
        except Exception as exc:
            print(json.dumps({"connect_error": str(exc)})); return
        out["role"] = client.role
        out["status_ready"] = (await client.call("status"))["ready"]
        try:
            await client.call("secrets.rotate")
            out["rotate"] = "allowed"
        except CallFailed as exc:
            out["rotate"] = exc.message
        await client.close()
        print(json.dumps(out))
    asyncio.run(main())
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another Unix user")
def test_viewer_refused_admin_method_and_stranger_refused() -> None:
    root = Path(tempfile_dir())
    viewer_gid = 65533
    config = write_config(
        root, {"control": {"socket_group": str(viewer_gid), "viewer_group": str(viewer_gid), "admin_group": "65532"}}
    )
    d = DaemonProcess(root, config).start()
    try:
        def as_user(groups_gid: int) -> dict:
            out = subprocess.run(
                [sys.executable, "-c", VIEWER_CLIENT, str(d.socket_path), "65534", "65534", str(groups_gid)],
                capture_output=True, text=True, timeout=30, env=clean_env(),
            )
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        viewer = as_user(viewer_gid)
        assert viewer["role"] == "viewer" and viewer["status_ready"] is True
        assert "secrets.rotate needs the admin role" in viewer["rotate"]
        stranger = as_user(-1)
        assert "permission denied" in stranger["connect_error"]
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def tempfile_dir() -> str:
    """A directory other users can traverse (pytest's tmp dirs are private to root)."""
    import tempfile

    path = tempfile.mkdtemp(prefix="sovterm-roles-", dir="/tmp")
    os.chmod(path, 0o755)
    return path


def test_healthz_readyz_metrics(daemon: DaemonProcess) -> None:
    with urllib.request.urlopen(daemon.url + "/healthz", timeout=5) as r:
        assert json.load(r) == {"status": "alive"}
    with urllib.request.urlopen(daemon.url + "/readyz", timeout=5) as r:
        body = json.load(r)
        assert r.status == 200 and body["ready"] is True
    with urllib.request.urlopen(daemon.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'sovterm_http_requests_total{route="/readyz",status="200"}' in text
    assert "sovterm_ready 1.0" in text


def test_no_admin_route_on_tcp(daemon: DaemonProcess) -> None:
    for path in ("/status", "/rpc", "/control", "/api/secrets.rotate"):
        req = urllib.request.Request(daemon.url + path, method="POST", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code in (404, 405)


def test_logs_command_and_reload(daemon: DaemonProcess) -> None:
    reload = daemon.cli("reload")
    assert reload.returncode == 0, reload.stderr
    assert "needs a restart: nothing" in reload.stdout
    logs = daemon.cli("logs", "-n", "50", "--component", "daemon")
    assert "configuration reloaded" in logs.stdout
    filtered = daemon.cli("logs", "--level", "ERROR", "-n", "50")
    assert "configuration reloaded" not in filtered.stdout


def test_sighup_reloads_the_log_level(daemon: DaemonProcess) -> None:
    text = daemon.config.read_text() + '[logging]\nlevel = "DEBUG"\n'
    daemon.config.write_text(text)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = daemon.cli("logs", "-n", "200", "--component", "daemon").stdout
        if "configuration reloaded" in logs:
            break
        time.sleep(0.2)
    assert "applied ['logging.level']" in logs
    assert daemon.cli("status").returncode == 0  # still running
