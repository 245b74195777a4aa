"""Connecting QuickBooks through a real daemon: callback, paste-back, refused states, wait, disconnect."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

from tests.support.daemon import DaemonProcess

from .conftest import REALM, QBOEnv, authorization_url_in


def test_setup_prints_link_qr_redirect_and_guide_then_callback_connects(qbo_env: QBOEnv) -> None:
    result = qbo_env.cli("setup", "qbo", "--no-wait")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    url = authorization_url_in(out)
    assert "▀" in out or "█" in out or "▄" in out  # the terminal QR code
    assert qbo_env.callback_url in out
    assert "developer.intuit.com" in out and "com.intuit.quickbooks.accounting" in out
    assert "[SANDBOX]" in out

    status, page = qbo_env.get(url)  # the sim redirects the browser to the daemon's callback
    assert status == 200 and "QuickBooks connected" in page and REALM in page and "sandbox" in page

    human = qbo_env.cli("qbo", "status")
    assert human.returncode == 0 and REALM in human.stdout and "[SANDBOX]" in human.stdout
    st = qbo_env.cli_json("qbo", "status")
    assert st["realm_id"] == REALM and st["sandbox"] is True and st["token_state"] == "connected"
    assert st["auto_sync"] is False and st["can_sync"] is False
    assert "sandbox connections do not sync automatically" in st["sync_blocked"]
    assert st["days_left"] >= 99
    daemon_status = json.loads(qbo_env.cli("status", "--json").stdout)
    qbo = daemon_status["checks"]["connectors"]["qbo"]
    assert qbo["state"] == "connected" and "sandbox" in qbo["detail"] and qbo["ready"] is True

    assert qbo_env.cli_json("qbo", "auto-sync", "on")["auto_sync"] is True
    st = qbo_env.cli_json("qbo", "status")
    assert st["auto_sync"] is True and st["can_sync"] is True
    audit = qbo_env.cli_json("audit")
    assert {"qbo.connect", "qbo.auto_sync"} <= {row["action"] for row in audit}
    qbo_env.assert_no_secrets_leaked()


def test_setup_waits_for_the_callback(qbo_env: QBOEnv) -> None:
    d = qbo_env.daemon
    proc = subprocess.Popen(
        [sys.executable, "-m", "sovterm", "--config", str(d.config), "setup", "qbo", "--timeout", "20"],
        env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if "/connect/oauth2?" in line:
                url = line.strip()
                break
        assert url is not None
        status, _ = qbo_env.get(url)
        assert status == 200
        rest, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"QuickBooks company {REALM} connected" in rest and "[SANDBOX]" in rest


def test_paste_back_connects_without_the_callback_and_the_url_works_once(qbo_env: QBOEnv) -> None:
    redirected = qbo_env.consent(qbo_env.authorization_url())
    assert redirected.startswith(qbo_env.callback_url + "?")  # never opened: the box has no public name
    result = qbo_env.cli("setup", "qbo", "--redirected-url", redirected)
    assert result.returncode == 0, result.stderr
    assert REALM in result.stdout and "[SANDBOX]" in result.stdout
    assert qbo_env.cli_json("qbo", "status")["token_state"] == "connected"

    again = qbo_env.cli("setup", "qbo", "--redirected-url", redirected)
    assert again.returncode == 1 and "already used" in again.stderr
    status, page = qbo_env.get(redirected)  # the same link through the callback: refused too
    assert status == 400 and "already used" in page and "Nothing was stored" in page
    qbo_env.assert_no_secrets_leaked()


def _nothing_stored(env: QBOEnv) -> None:
    assert env.sql("SELECT realm_id FROM qbo_connections") == []
    assert env.sql("SELECT name FROM secrets WHERE name LIKE 'qbo:%'") == []
    assert env.cli_json("qbo", "status")["connected"] is False


def test_missing_wrong_and_expired_state_show_the_error_page_and_store_nothing(qbo_env: QBOEnv) -> None:
    status, page = qbo_env.get(f"{qbo_env.callback_url}?code=AB123&realmId={REALM}")
    assert status == 400 and "no state" in page and "Nothing was stored" in page
    status, page = qbo_env.get(f"{qbo_env.callback_url}?code=AB123&state=forged&realmId={REALM}")
    assert status == 400 and "unknown or was already used" in page

    url = qbo_env.authorization_url()
    qbo_env.sql("UPDATE qbo_oauth_states SET expires_at = 1")  # as if 10 minutes had passed
    status, page = qbo_env.get(url)
    assert status == 400 and "expired" in page and "Traceback" not in page
    _nothing_stored(qbo_env)
    assert qbo_env.sim.token_calls == []  # no code was exchanged


def test_consent_denied_is_an_error_page(qbo_env: QBOEnv) -> None:
    qbo_env.sim.deny_consent = True
    status, page = qbo_env.get(qbo_env.authorization_url())
    assert status == 400 and "did not authorise" in page
    _nothing_stored(qbo_env)


def test_revoked_at_intuit_means_reconnect_required_everywhere(qbo_env: QBOEnv) -> None:
    qbo_env.connect()
    for grant in qbo_env.sim.refresh_tokens.values():  # the merchant removed the app in QuickBooks
        grant.active = False
    qbo_env.sim.access_tokens.clear()

    result = qbo_env.cli("qbo", "status", "--check")
    assert result.returncode == 1
    assert "reconnect required" in result.stdout and "sovterm setup qbo" in result.stdout
    as_json = qbo_env.cli("qbo", "status", "--json")
    st = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and st["token_state"] == "reconnect_required" and st["can_sync"] is False

    daemon = qbo_env.cli("status")
    assert daemon.returncode == 1 and "reconnect_required" in daemon.stdout
    try:
        urllib.request.urlopen(f"{qbo_env.daemon.url}/readyz", timeout=5)
        raise AssertionError("/readyz stayed green")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        body = json.loads(exc.read())
    assert body["connectors"]["qbo"]["state"] == "reconnect_required"
    assert "Intuit refused the refresh token" in body["connectors"]["qbo"]["detail"]
    qbo_env.assert_no_secrets_leaked()


def test_disconnect_revokes_at_intuit_and_forgets_tokens(qbo_env: QBOEnv) -> None:
    qbo_env.connect()
    assert qbo_env.sql("SELECT name FROM secrets WHERE name LIKE 'qbo:tokens:%'") == [(f"qbo:tokens:{REALM}",)]
    result = qbo_env.cli("qbo", "disconnect")
    assert result.returncode == 0 and "[SANDBOX]" in result.stdout and "disconnected" in result.stdout, result.stderr
    assert all(not g.active for g in qbo_env.sim.refresh_tokens.values())  # revoked at the sim
    assert qbo_env.sql("SELECT name FROM secrets WHERE name LIKE 'qbo:%'") == []
    st = qbo_env.cli_json("qbo", "status")
    assert st["connected"] is False and st["state"] == "not_connected"
    again = qbo_env.cli("qbo", "disconnect")
    assert again.returncode == 1 and "no QuickBooks company is connected" in again.stderr
    audit = qbo_env.cli_json("audit")
    assert any(r["action"] == "qbo.disconnect" and r["outcome"] == "ok" for r in audit)
    qbo_env.assert_no_secrets_leaked()


def test_unconfigured_daemon_explains_how_to_create_the_intuit_app(daemon: DaemonProcess) -> None:
    st = json.loads(daemon.cli("qbo", "status", "--json").stdout)
    assert st["configured"] is False and "client_id" in st["problem"]
    ready = json.loads(daemon.cli("status", "--json").stdout)
    assert ready["ready"] is True and ready["checks"]["connectors"]["qbo"]["state"] == "not_configured"
    result = daemon.cli("setup", "qbo", "--no-wait")
    assert result.returncode == 1
    assert "not configured" in result.stderr and "developer.intuit.com" in result.stderr
    try:
        urllib.request.urlopen(f"{daemon.url}/oauth/qbo/callback?code=x&state=y&realmId=1", timeout=5)
        raise AssertionError("the callback accepted a request while unconfigured")
    except urllib.error.HTTPError as exc:
        assert exc.code >= 400 and "QuickBooks not connected" in exc.read().decode()
