"""The CLI answers at once: a command that talks to the daemon loads the blocking control client and its
own formatting, never the daemon's stack (#19 point 7; `bench/cli.py` measures the time).

Checked on what a real process loads (`sys.modules`, `-X importtime`), not on time, so a slow machine
cannot fail it and a fast one cannot hide a regression. The import contract in pyproject.toml checks
the same from the source; this checks what actually happens, lazy imports included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sovterm.config import load_settings
from sovterm.config_source import socket_path
from sovterm.errors import ConfigError
from tests.support.daemon import DaemonProcess, clean_env, write_config

REPO = Path(__file__).resolve().parents[2]

#: Third-party and standard-library modules only the daemon, the demo and the TUI need.
HEAVY = {"aiohttp", "pydantic", "textual", "aiosqlite", "cryptography", "apscheduler", "authlib", "psutil",
         "prometheus_client", "qrcode", "asyncio", "importlib.metadata"}

#: The sovterm modules a daemon-talking command may load: the CLI, the blocking control client and leaves.
ALLOWED_SOVTERM = {
    "sovterm", "sovterm.amounts", "sovterm.config_source", "sovterm.errors", "sovterm.formatting",
    "sovterm.control", "sovterm.control.blocking", "sovterm.control.errors", "sovterm.control.protocol",
    "sovterm.btcpay", "sovterm.btcpay.permissions", "sovterm.qbo", "sovterm.qbo.mapping_options",
}


def _too_heavy(modules: list[str]) -> list[str]:
    heavy = [m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY]
    strays = [m for m in modules if m.startswith("sovterm") and m not in ALLOWED_SOVTERM
              and not m.startswith("sovterm.cli")]
    return heavy + strays


def test_help_loads_nothing_of_the_daemon() -> None:
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "sovterm", "--help"], env=clean_env(),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "status" in run.stdout, run.stderr[-2000:]
    loaded = [line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert "sovterm.cli.core" in loaded  # the trace is what we think it is
    assert _too_heavy(loaded) == []


# Each command with the exit status a fresh daemon gives it: they all reached the daemon and got an answer.
COMMANDS = [
    (["status", "--json"], 0),
    (["logs", "-n", "5", "--json"], 0),
    (["audit", "--json"], 0),
    (["btcpay", "status", "--json"], 0),
    (["qbo", "status", "--json"], 0),
    (["sync", "status", "--json"], 0),
    (["payouts", "list", "--json"], 0),
    (["link", "list", "--json"], 0),
    (["loops", "pause", "no-such-loop"], 1),
]

RUN_COMMANDS = """
import json, sys
from sovterm.cli import main
argvs, report = json.loads(sys.argv[1]), sys.argv[2]
codes = [main(["--config", sys.argv[3], *argv]) for argv in argvs]
with open(report, "w") as fh:
    json.dump({"codes": codes, "modules": sorted(sys.modules)}, fh)
"""


def test_daemon_talking_commands_load_only_the_client(daemon: DaemonProcess, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-c", RUN_COMMANDS, json.dumps([argv for argv, _ in COMMANDS]), str(report),
         str(daemon.config)],
        env=daemon.env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["codes"] == [code for _, code in COMMANDS], run.stderr[-3000:]
    assert _too_heavy(result["modules"]) == []


def test_unreachable_daemon_is_reported_without_loading_the_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-c", RUN_COMMANDS, json.dumps([["status"]]), str(report), str(config)],
                         env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=60)
    result = json.loads(report.read_text())
    assert result["codes"] == [3] and "not running" in run.stderr
    assert _too_heavy(result["modules"]) == []


@pytest.mark.parametrize("case", ["file", "env", "runtime_dir", "xdg", "data_dir"])
def test_the_cli_finds_the_socket_the_daemon_listens_on(tmp_path: Path, case: str) -> None:
    """The CLI resolves the socket without validating the configuration; it must land where the daemon's
    validated settings put it, whichever way the path is given."""
    environ = {"HOME": str(tmp_path / "home")}
    path, given = None, None
    if case == "file":
        path, given = write_config(tmp_path), tmp_path / "run" / "control.sock"
    elif case == "env":
        environ["SOVTERM_CONTROL__SOCKET"] = str(given := tmp_path / "env.sock")
    elif case == "runtime_dir":
        environ["RUNTIME_DIRECTORY"] = f"{tmp_path / 'rt'}:{tmp_path / 'other'}"
        given = tmp_path / "rt" / "control.sock"
    elif case == "xdg":
        environ["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg")
    else:
        environ["SOVTERM_DATA_DIR"] = str(tmp_path / "data")
    found = socket_path(path, environ)
    assert found == load_settings(path, environ, client=True).socket_path
    assert given is None or found == given


def test_a_socket_path_that_is_not_a_path_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[control]\nsocket = 5\n")
    with pytest.raises(ConfigError, match=r"control.socket = 5: must be a path"):
        socket_path(config, {})
    run = subprocess.run([sys.executable, "-m", "sovterm", "--config", str(config), "status"], env=clean_env(),
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "control.socket = 5" in run.stderr
