"""`sovterm setup btcpay` end to end: a real daemon, the real CLI, the simulator on a real port."""

from __future__ import annotations

import json
import subprocess
import sys

from sovterm.btcpay.webhooks import SUBSCRIBED_EVENTS

from .conftest import VIEW_ONLY, connect, key_file, make_store, query, status_json


def test_restricted_key_is_refused_with_the_exact_permission_to_add(daemon_factory, btcpay_sim):
    store_id, key = make_store(btcpay_sim, permissions=VIEW_ONLY)
    d = daemon_factory()
    out = connect(d, btcpay_sim, key)
    assert out.returncode == 1, out.stderr
    report = out.stdout
    assert f"btcpay.store.canviewstoresettings:{store_id}" in report  # what is granted
    assert "missing btcpay.store.webhooks.canmodifywebhooks (needed for: webhooks)" in report
    assert f"add to the key: btcpay.store.webhooks.canmodifywebhooks:{store_id}" in report
    assert f"add to the key: btcpay.store.canmanagepayouts:{store_id}" in report
    assert "required permissions are missing" in out.stderr
    assert key not in out.stdout + out.stderr
    assert not btcpay_sim.state.webhooks  # nothing registered with a key that cannot keep it working
    # with only the features this key can serve, the same key is enough
    ok = connect(d, btcpay_sim, key, "--features", "sync")
    assert ok.returncode == 0, ok.stderr
    assert "no webhook (feature 'webhooks' not enabled)" in ok.stdout


def test_setup_selects_the_store_and_registers_the_webhook(daemon_factory, btcpay_sim):
    d = daemon_factory()
    code, st = status_json(d, "btcpay", "status")
    assert code == 0 and st["state"] == "not_configured"

    first, key = make_store(btcpay_sim, "Coffee")
    second = btcpay_sim.call(btcpay_sim.state.create_store, "Books").id
    btcpay_sim.call(btcpay_sim.state.api_keys[key].permissions.append, f"btcpay.store.canmodifystoresettings:{second}")

    several = connect(d, btcpay_sim, key)
    assert several.returncode == 2, several.stderr
    assert "choose with --store ID" in several.stderr and first in several.stderr and second in several.stderr

    out = connect(d, btcpay_sim, key, "--store", first)
    assert out.returncode == 0, out.stderr
    hooks = list(btcpay_sim.state.webhooks.values())
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook.store_id == first and hook.url == f"{d.url}/webhooks/btcpay/{first}"
    assert not hook.everything and hook.specific_events == list(SUBSCRIBED_EVENTS) and hook.enabled
    assert f"webhook {hook.id} registered at BTCPay -> {hook.url}" in out.stdout
    # neither the key nor the webhook secret is ever printed; both are stored encrypted
    for text in (several.stdout, several.stderr, out.stdout, out.stderr):
        assert key not in text and hook.secret not in text
    stored = dict(query(d, "SELECT name, ciphertext FROM secrets"))
    assert set(stored) >= {"btcpay:api_key", f"btcpay:webhook:{first}"}
    for blob in stored.values():
        assert key.encode() not in blob and hook.secret.encode() not in blob
    assert query(d, "SELECT store_id, selected, webhook_id FROM btcpay_stores") == [(first, 1, hook.id)]
    setup = json.loads(query(d, "SELECT value FROM kv WHERE key = 'setup:btcpay'")[0][0])
    assert setup["done"] is True and setup["stores"] == [first]

    # running it again adopts the same webhook instead of adding a second one
    again = connect(d, btcpay_sim, key, "--store", first, "--json")
    assert again.returncode == 0, again.stderr
    assert len(btcpay_sim.state.webhooks) == 1
    assert json.loads(again.stdout)["select"]["stores"][0]["webhook"]["id"] == hook.id

    code, st = status_json(d, "btcpay", "status")
    assert code == 0 and st["state"] == "connected" and st["server_version"] == "2.4.1"
    assert [s["id"] for s in st["stores"]] == [first]
    assert key not in json.dumps(st) and hook.secret not in json.dumps(st)

    # a second store is added, the first one kept (with the key given again, as with the stored one)
    both = connect(d, btcpay_sim, key, "--store", second)
    assert both.returncode == 0, both.stderr
    assert "No longer following" not in both.stdout
    assert sorted(r[0] for r in query(d, "SELECT store_id FROM btcpay_stores WHERE selected = 1")) == sorted(
        [first, second])
    assert sorted(h.store_id for h in btcpay_sim.state.webhooks.values()) == sorted([first, second])
    assert sorted(json.loads(query(d, "SELECT value FROM kv WHERE key = 'setup:btcpay'")[0][0])["stores"]) == sorted(
        [first, second])
    misuse = d.cli("setup", "btcpay", "--store-key", "--api-key-file", str(key_file(d.root, key)))
    assert misuse.returncode == 2 and "--store-key needs exactly one --store" in misuse.stderr
    # unfollowing one leaves the other followed, with its webhook
    gone = d.cli("btcpay", "unfollow", first)
    assert gone.returncode == 0 and f"no longer following store {first}" in gone.stdout, gone.stderr
    assert [h.store_id for h in btcpay_sim.state.webhooks.values()] == [second]
    assert query(d, "SELECT store_id FROM btcpay_stores WHERE selected = 1") == [(second,)]
    again = d.cli("btcpay", "unfollow", first)
    assert again.returncode == 1 and f"store {first} is not followed" in again.stderr


def test_api_key_from_stdin_and_refused_key(daemon_factory, btcpay_sim):
    store_id, key = make_store(btcpay_sim)
    d = daemon_factory()

    def run(stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sovterm", "--config", str(d.config), "setup", "btcpay", "--url", btcpay_sim.url,
             "--api-key", "-"], input=stdin, env=d.env, capture_output=True, text=True, timeout=30,
        )

    bad = run("not-a-key\n")
    assert bad.returncode == 1 and "refused the API key" in bad.stderr and "not-a-key" not in bad.stderr
    good = run(key + "\n")
    assert good.returncode == 0, good.stderr
    assert f"Following store 'Coffee' ({store_id})" in good.stdout
