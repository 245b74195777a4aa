"""Run a real `sovterm daemon` subprocess in a temporary directory, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (and return that), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


_PORT_BLOCK = 2_000
_next_port: list[int] = []


def free_port() -> int:
    """A loopback port nothing listens on, for a server a test starts in a moment. Not one the kernel hands
    out (`bind(0)` picks from the ephemeral range, 32768 and up, where any outgoing connection may take it
    before our server binds): each xdist worker draws from its own block below that range."""
    if not _next_port:
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
        start = 12_000 + (worker % 10) * _PORT_BLOCK
        _next_port.extend((start, start + os.getpid() % _PORT_BLOCK))
    start, n = _next_port
    for _ in range(_PORT_BLOCK):
        port = start + (n - start) % _PORT_BLOCK
        n += 1
        _next_port[1] = n
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {start} and {start + _PORT_BLOCK}")


def write_config(root: Path, extra: dict[str, dict[str, Any]] | None = None, **top: Any) -> Path:
    """A config file for a daemon living entirely under `root`."""
    sections: dict[str, dict[str, Any]] = {
        "listener": {"host": "127.0.0.1", "port": free_port()},
        "control": {"socket": str(root / "run" / "control.sock")},
        "reaper": {"interval_s": 30},
    }
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = [f'data_dir = "{root / "data"}"']
    lines += [f"{k} = {_toml(v)}" for k, v in top.items()]
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    path = root / "sovterm.toml"
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # fail here, not in the daemon, on a bad test config
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment minus anything that would steer the daemon."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOVTERM_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(extra)
    return env


@dataclass
class DaemonProcess:
    root: Path
    config: Path
    env: dict[str, str] = field(default_factory=clean_env)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / "control.sock"

    @property
    def port(self) -> int:
        return int(tomllib.loads(self.config.read_text())["listener"]["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 15.0) -> DaemonProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sovterm", "--config", str(self.config), "daemon"],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.output()}")
            if self.socket_path.exists():
                try:  # the control socket, then the TCP site (which starts just after it)
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(self.socket_path))
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise TimeoutError("daemon did not become ready")

    def output(self) -> str:
        """What the exited daemon wrote on stderr (subclasses that send it to a file read the file)."""
        assert self.proc is not None
        _, err = self.proc.communicate()
        return err.decode(errors="replace") if err else ""

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sovterm", "--config", str(self.config), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )
