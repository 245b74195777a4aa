"""The sync part inside a real daemon: its control methods answer, and without QuickBooks nothing posts."""

import json


def test_sync_commands_against_a_real_daemon(daemon):
    st = daemon.cli("sync", "status", "--json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert {"queued", "running", "dead", "held", "unmatched", "last_poll_age_s", "last_posting_age_s",
            "backfill"} <= set(status)
    mode = daemon.cli("setup", "mode", "invoicing", "--store", "S1", "--json")
    assert mode.returncode == 0 and json.loads(mode.stdout)["mode"] == "invoicing"
    bad = daemon.cli("sync", "backfill", "--since", "yesterday")
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr
    assert daemon.cli("sync", "backfill", "--since", "2026-01-01").returncode == 0
    assert daemon.cli("sync", "pause").returncode == 0
    assert json.loads(daemon.cli("sync", "status", "--json").stdout)["paused"] is True
    assert daemon.cli("sync", "retry").returncode == 2
