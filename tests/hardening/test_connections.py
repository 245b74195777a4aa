"""#19 point 2: no TCP load on the listener takes the daemon down. Hundreds of idle connections, in a
process whose open-file limit is lowered to 256 (so a few hundred stand for the 1,024 of a default
box): the control socket and /healthz keep answering, idle sockets are cut, the log stays short."""

from __future__ import annotations

import resource
import socket
import time
import urllib.request

from tests.btcpay_e2e.conftest import metric
from tests.hardening.conftest import LoggedDaemon
from tests.support.daemon import wait_for

LIMIT = 256
SOURCES = [f"127.0.0.{i}" for i in range(2, 22)]  # twenty clients, fifteen idle connections each
PER_SOURCE = 15
IDLE_S = 3


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def _connect(source: str, port: int) -> socket.socket | None:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(0.01)
    try:
        return s.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def _log_lines(d: LoggedDaemon) -> list[str]:
    files = [d.out_path, *(p for p in (d.root / "data" / "logs").glob("*") if p.is_file())]
    return [line for p in files for line in p.read_text(errors="replace").splitlines()]


def test_idle_connections_cannot_lock_out_the_control_socket_or_health(hardened) -> None:
    d = hardened({"listener": {"idle_timeout_s": IDLE_S, "max_connections_per_address": 16},
                  "control": {"max_clients": 8}}, preexec=_low_limit)
    held = [s for source in SOURCES for _ in range(PER_SOURCE) if (s := _connect(source, d.port)) is not None]
    try:
        assert len(held) > LIMIT  # more than the daemon has descriptors
        status = d.cli("status", "--json", timeout=20)
        assert status.returncode == 0, status.stderr
        with urllib.request.urlopen(f"{d.url}/healthz", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"{d.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert metric(text, "sovterm_listener_connections_evicted") > 0  # the crowd made room for us
        # one address cannot take more than its share
        extra = [s for _ in range(24) if (s := _connect("127.0.0.99", d.port)) is not None]
        held += extra
        time.sleep(0.5)
        assert sum(_closed_by_server(s) for s in extra) >= 24 - 16
        # idle connections are cut once they have sent no request head for idle_timeout_s
        wait_for(lambda: all(_closed_by_server(s) for s in held), timeout=IDLE_S + 10, what="idle connections cut")
        assert d.cli("status", timeout=20).returncode == 0
    finally:
        for s in held:
            s.close()
    lines = _log_lines(d)
    noisy = [line for line in lines if "accept" in line or "Too many open files" in line or "connection refused" in line]
    assert len(noisy) <= 10, noisy[:5]
    assert len(lines) < 100, lines[-5:]


def test_slow_request_heads_are_cut(hardened) -> None:
    d = hardened({"listener": {"idle_timeout_s": IDLE_S}})
    s = _connect("127.0.0.1", d.port)
    assert s is not None
    try:
        started = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(IDLE_S * 4):  # a header line now and then, never the end of the head
            time.sleep(0.5)
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        wait_for(lambda: _closed_by_server(s), timeout=IDLE_S + 5, what="slow head cut")
        assert time.monotonic() - started < IDLE_S + 5
    finally:
        s.close()
