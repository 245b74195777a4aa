"""Notifications from a real daemon: destinations added through the CLI (the URL encrypted, never shown),
a paused loop's alert sent to mail and to an HTTP receiver when it starts and when it clears, without anyone
reading the status, while a dead destination fails on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.notify.receivers import HTTPReceiver, SMTPReceiver
from tests.support.daemon import free_port, wait_for

TOKEN = "tk-Hq7Zp3Lw9Xc2Vb8N"


def test_alerts_reach_the_operator_when_they_start_and_clear(daemon_factory, tmp_path: Path) -> None:
    http = HTTPReceiver()
    smtp = None
    try:
        smtp = SMTPReceiver()
        d = daemon_factory(extra={"notify": {"check_interval_s": 1, "retry_base_s": 0.5, "retry_max_s": 1.0}})
        hook = http.url(f"hook/{TOKEN}")
        # the URL on standard input, so it stays out of the shell history and the process list
        added = subprocess.run([sys.executable, "-m", "sovterm", "--config", str(d.config), "notify", "add", "hook",
                                "-", "--min-severity", "info"], input=hook + "\n", env=d.env, capture_output=True,
                               text=True, timeout=30)
        assert added.returncode == 0, added.stderr
        assert TOKEN not in added.stdout and "json://…" in added.stdout
        assert d.cli("notify", "add", "mail", smtp.url).returncode == 0
        assert d.cli("notify", "add", "dead", f"json://127.0.0.1:{free_port()}/x/{TOKEN}").returncode == 0
        bad = d.cli("notify", "add", "bad", "nosuchservice://x")
        assert bad.returncode == 1 and "apprise cannot use" in bad.stderr

        listing = d.cli("notify", "list", "--json")
        assert listing.returncode == 0 and TOKEN not in listing.stdout and "127.0.0.1" not in listing.stdout
        rows = {r["name"]: r for r in json.loads(listing.stdout)}
        assert (rows["hook"]["service"], rows["mail"]["service"], rows["mail"]["min_severity"]) == (
            "json", "mailto", "warning")
        assert d.cli("notify", "test", "hook").returncode == 0
        failed = d.cli("notify", "test", "dead")
        assert failed.returncode == 1 and "NOT delivered" in failed.stdout and TOKEN not in failed.stdout
        assert http.titles()[-1].endswith("test notification")

        # nobody reads the status: the daemon's own alerts loop sees the pause and its end
        assert d.cli("loops", "pause", "reaper").returncode == 0
        wait_for(lambda: any("Loop reaper is paused" in t for t in http.titles()), 20, "the alert over HTTP")
        wait_for(lambda: any("Loop reaper is paused" in s for s in smtp.subjects()), 20, "the alert by mail")
        assert "Loop reaper is paused" in d.cli("status").stdout  # the dead destination holds up nothing
        assert d.cli("loops", "resume", "reaper").returncode == 0
        wait_for(lambda: any("cleared: Loop reaper is paused" in t for t in http.titles()), 20, "cleared over HTTP")
        wait_for(lambda: any("cleared: Loop reaper is paused" in s for s in smtp.subjects()), 20, "cleared by mail")
        assert sum("Loop reaper is paused" in t for t in http.titles()) == 2  # once each, though checked every second
        dead = {r["name"]: r for r in json.loads(d.cli("notify", "list", "--json").stdout)}["dead"]
        assert dead["state"] in ("retrying", "failing") and dead["queued"] >= 1

        assert d.cli("notify", "remove", "dead").returncode == 0
        assert "dead" not in d.cli("notify", "list").stdout
        d.stop()
        logs = (d.root / "data" / "logs" / "sovterm.log").read_text()
        assert "notification sent to hook" in logs and TOKEN not in logs
        assert TOKEN.encode() not in (d.root / "data" / "sovterm.db").read_bytes()  # stored encrypted
    finally:
        http.close()
        if smtp is not None:
            smtp.close()
