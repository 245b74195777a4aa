"""Through a real daemon and the real CLI: payouts mirrored and approved, audit, a fixed-amount pay link."""

from __future__ import annotations

import getpass
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import pytest

from sovterm.sim.btcpay_state import BTCPaySimState
from tests.btcpay_e2e.conftest import connect, make_store
from tests.support.daemon import wait_for
from tests.support.sims import BTCPaySimServer, start_btcpay_sim


@pytest.fixture
def btcpay_sim() -> Iterator[BTCPaySimServer]:
    sim = start_btcpay_sim(BTCPaySimState(seed=21))
    sim.call(setattr, sim.state, "delivery_time_scale", 0.001)
    yield sim
    sim.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def cli_json(d, *args: str):  # type: ignore[no-untyped-def]
    out = d.cli(*args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_payouts_and_links_through_the_daemon(daemon_factory, btcpay_sim) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory()
    store_id, key = make_store(btcpay_sim)
    assert connect(d, btcpay_sim, key, "--store", store_id).returncode == 0
    payout = btcpay_sim.call(btcpay_sim.state.create_payout, store_id, Decimal("0.0025"), "BTC")
    # the PayoutCreated webhook makes the daemon read the payout into its mirror
    listed = wait_for(lambda: [p for p in cli_json(d, "payouts", "list") if p["payout_id"] == payout.id],
                      what="the payout in the mirror")
    assert listed[0]["amount_sats"] == 250_000 and listed[0]["state"] == "AwaitingApproval"
    human = d.cli("payouts", "list")
    assert payout.id in human.stdout and "250,000 sats" in human.stdout
    approved = d.cli("payouts", "approve", payout.id)
    assert approved.returncode == 0 and "approved" in approved.stdout, approved.stderr
    assert btcpay_sim.call(lambda: btcpay_sim.state.payouts[payout.id].state) == "AwaitingPayment"
    again = d.cli("payouts", "approve", payout.id)
    assert again.returncode == 1 and "not awaiting approval" in again.stderr
    audit = cli_json(d, "audit")
    mine = [a for a in audit if a["subject"] == payout.id]
    assert {(a["actor"], a["action"], a["outcome"]) for a in mine} == {
        (getpass.getuser(), "payout.approve", "approved"), (getpass.getuser(), "payout.approve", "refused_state")}

    link = cli_json(d, "link", "create", "--amount", "25.00", "--currency", "usd", "--memo", "Gift card")
    assert link["url"].startswith(d.url + "/pay/")
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(link["url"], timeout=10)
    assert redirect.value.code == 303
    location = redirect.value.headers["Location"]
    invoices = btcpay_sim.call(lambda: [i for i in btcpay_sim.state.invoices.values() if i.store_id == store_id])
    assert [location] == [f"{btcpay_sim.url}/i/{i.id}" for i in invoices]
    assert invoices[0].amount == Decimal("25.00") and invoices[0].metadata["payLinkId"] == link["link_id"]
    with urllib.request.urlopen(link["url"] + "/qr.png", timeout=10) as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    [row] = cli_json(d, "link", "list")
    assert row["reservation"]["btcpay_invoice_id"] == invoices[0].id
    qr = d.cli("link", "qr", link["link_id"])
    assert qr.returncode == 0 and link["url"] in qr.stdout
    assert d.cli("link", "expire", link["link_id"]).returncode == 0
    with pytest.raises(urllib.error.HTTPError) as gone:
        opener.open(link["url"], timeout=10)
    assert gone.value.code == 410
    keys = cli_json(d, "link", "keys", "list")
    assert len(keys) == 1 and keys[0]["active"]
    status = cli_json(d, "status")
    assert {"links.reaper", "payouts.poll"} <= set(status["checks"]["loops"])
