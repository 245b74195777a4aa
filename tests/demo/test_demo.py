"""`sovterm demo --no-tui`: simulators, a daemon set up like an operator would, live postings with a
progress line every few seconds, and everything gone afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import clean_env


@pytest.mark.slow
def test_demo_sets_everything_up_syncs_and_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sovterm", "demo", "--no-tui", "--seconds", "25"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(),
    )
    assert proc.stdout is not None
    config = None
    for line in proc.stdout:
        match = re.search(r"--config (\S+) status", line)
        if match:
            config = Path(match[1])
            break
    assert config is not None, "demo never became ready"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sovterm", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=30, env=clean_env())

    def cli_json(*args: str) -> object:
        done = cli(*args, "--json")
        assert done.returncode == 0, f"sovterm {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    status = json.loads(cli("status", "--json").stdout)
    connectors = status["checks"]["connectors"]
    assert connectors["btcpay"]["state"] == "connected" and connectors["qbo"]["state"] == "connected"
    # every screen has something to show on first start
    links = cli_json("link", "list")
    assert {link["kind"] for link in links} == {"qbo", "fixed"} and len(links) >= 4
    assert cli_json("analytics")["kpis"]["settled"] > 0
    deadline = time.monotonic() + 10
    campaigns: list = []
    while time.monotonic() < deadline and not campaigns:
        campaigns = cli_json("crowdfund", "list")  # read from BTCPay once the store is followed
        time.sleep(0.5)
    assert [(c["title"], c["contributors"] > 0) for c in campaigns] == [("New roaster fund", True)]
    angor = json.loads(cli("angor", "list", "--json").stdout)  # followed at set-up, from the Angor simulators
    assert len(angor["projects"]) == 3 and all(p["investor_count"] > 0 for p in angor["projects"])
    deadline = time.monotonic() + 15
    recent: list = []
    while time.monotonic() < deadline and len(recent) < 20:
        recent = json.loads(cli("sync", "recent", "--json").stdout)
        time.sleep(1)
    assert len(recent) >= 20  # 60 days of history is being posted into QuickBooks
    daemon_pid = status["pid"]
    assert proc.wait(90) == 0
    progress = [line for line in proc.stdout.read().splitlines() if line.startswith("sync: ")]
    assert len(progress) >= 3 and "to review" in progress[-1] and "last posting" in progress[-1]
    assert not config.parent.exists()  # the temporary directory is gone
    with pytest.raises(ProcessLookupError):
        os.kill(daemon_pid, 0)
