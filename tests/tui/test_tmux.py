"""The real `sovterm tui` in a real terminal (tmux), attached to a real daemon."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (needed to drive the real TUI)")
REPO = Path(__file__).resolve().parents[2]


class Tmux:
    def __init__(self) -> None:
        self.server = f"sovterm-test-{uuid.uuid4().hex[:8]}"  # own server: never touches the user's tmux

    def run(self, *args: str) -> str:
        out = subprocess.run([TMUX, "-L", self.server, "-f", "/dev/null", *args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui")

    def wait_for(self, *texts: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if all(t in shown for t in texts):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not on screen:\n{shown}")
            time.sleep(0.1)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    yield t
    t.run("kill-server")


def test_sovterm_tui_in_a_terminal(daemon, tmux: Tmux) -> None:
    env = " ".join(f"{k}={v}" for k, v in {"TERM": "xterm-256color", "COLORTERM": "truecolor"}.items())
    command = f"cd {REPO} && exec env {env} {sys.executable} -m sovterm --config {daemon.config} tui"
    tmux.run("new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", command)
    shown = tmux.wait_for("sovterm 0.1.0", "READY", "alerts", "Loops")
    assert "(admin)" in shown
    tmux.run("send-keys", "-t", "tui", "l")
    tmux.wait_for("level ≥ DEBUG", "following")
    tmux.run("send-keys", "-t", "tui", "s")
    tmux.wait_for("Recent postings", "Dead letters (0)", "queue 0")
    tmux.run("send-keys", "-t", "tui", "w")
    tmux.wait_for("1. BTCPay Server", "step 1 of 7")
    # an SSH drop / `kill` ends the TUI cleanly instead of leaving it spinning
    pid = int(tmux.run("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while "tui" in tmux.run("list-sessions", "-F", "#{session_name}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "tui" not in tmux.run("list-sessions", "-F", "#{session_name}")
