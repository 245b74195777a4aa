"""#19 point 8: `sovterm demo` tears everything down when its terminal goes away (SIGHUP: the pty closed,
the tmux window killed) or when it is told to stop (SIGTERM): no daemon left running, no directory left.

Before, SIGHUP killed the demo process alone; its daemon, in a session of its own, ran on forever."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon import clean_env, wait_for

READY = re.compile(r"--config (\S+) status")
DEMO = [sys.executable, "-m", "sovterm", "demo", "--no-tui"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _daemon_pid(config: Path) -> int:
    out = subprocess.run([sys.executable, "-m", "sovterm", "--config", str(config), "status", "--json"],
                         capture_output=True, text=True, timeout=30, env=clean_env())
    return int(json.loads(out.stdout)["pid"])


class InPty:
    """The demo as the session leader of a pseudo-terminal, as in a terminal window."""

    def __init__(self) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.chdir(Path(__file__).resolve().parents[2])
            os.execvpe(DEMO[0], DEMO, clean_env())
        self.seen = ""

    def config(self) -> Path:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                chunk = os.read(self.fd, 4096).decode("utf-8", "replace")
            except OSError:
                break
            self.seen += chunk
            if match := READY.search(self.seen):
                return Path(match[1])
        raise AssertionError(f"the demo never became ready: {self.seen[-2000:]}")

    def hang_up(self) -> None:
        os.close(self.fd)  # the terminal is gone: the kernel sends SIGHUP to its session leader

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    def exited(self) -> bool:
        return os.waitpid(self.pid, os.WNOHANG)[0] == self.pid

    def kill(self) -> None:
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


class InTmux:
    """The demo in a window of a private tmux server."""

    def __init__(self) -> None:
        self.socket = f"sovterm-test-{uuid.uuid4().hex[:8]}"
        self.tmux("new-session", "-d", "-s", "demo", "-x", "200", "-y", "50",
                  "env " + " ".join(f"{k}='{v}'" for k, v in clean_env().items() if "'" not in v)
                  + " " + " ".join(DEMO))

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30).stdout

    def config(self) -> Path:
        found = wait_for(lambda: READY.search(self.tmux("capture-pane", "-p", "-J", "-t", "demo")), timeout=180,
                         what="the demo in tmux to become ready")
        return Path(found[1])

    def hang_up(self) -> None:
        self.tmux("kill-window", "-t", "demo")

    def exited(self) -> bool:
        return "demo" not in self.tmux("list-sessions")

    def kill(self) -> None:
        self.tmux("kill-server")


def _pty_closed(term: InPty | InTmux) -> None:
    term.hang_up()


WAYS: dict[str, tuple[Callable[[], InPty | InTmux], Callable[[InPty | InTmux], None]]] = {
    "pty-closed": (InPty, _pty_closed),
    "tmux-kill-window": (InTmux, _pty_closed),
    "sigterm": (InPty, lambda t: t.terminate()),  # type: ignore[union-attr]
}


@pytest.mark.slow
@pytest.mark.parametrize("way", list(WAYS))
def test_demo_leaves_nothing_behind_when_its_terminal_goes(way: str) -> None:
    if way.startswith("tmux") and shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    start, stop = WAYS[way]
    term = start()
    daemon_pid = None
    config = None
    try:
        config = term.config()
        daemon_pid = _daemon_pid(config)
        assert _alive(daemon_pid)
        stop(term)
        wait_for(term.exited, timeout=60, what="the demo to exit")
        wait_for(lambda: not _alive(daemon_pid), timeout=45, what=f"the demo's daemon (pid {daemon_pid}) to stop")
        wait_for(lambda: not config.parent.exists(), timeout=10, what="the demo's directory to be removed")
    finally:
        term.kill()
        if daemon_pid is not None and _alive(daemon_pid):  # the orphan this test exists to catch
            os.kill(daemon_pid, signal.SIGKILL)
        if config is not None:
            shutil.rmtree(config.parent, ignore_errors=True)
