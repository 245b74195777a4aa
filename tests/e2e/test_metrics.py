"""/metrics carries the sync figures a monitoring system needs: jobs by state, unmatched and to-review
counts, postings by document type, QuickBooks errors by code and the age of BTCPay's last poll."""

from __future__ import annotations

import re
import urllib.request

from sovterm.sim.qbo import FaultRule
from tests.support.system import System

from .conftest import postings, settle


def scrape(s: System) -> dict[str, float]:
    with urllib.request.urlopen(s.daemon.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(sovterm_[^ ]+) ([^ ]+)$", text, re.M)}


def test_metrics_show_the_sync_figures(system_factory) -> None:
    s = system_factory(mode="deposit")
    s.qbo.call(s.qbo.state.faults.append, FaultRule("429", "salesreceipt", times=1))  # one throttled answer
    inv = settle(s, "21.00")
    s.wait_for(lambda: postings(s, inv.id) and postings(s, inv.id)[0][4] == "posted", what="the posting")
    s.wait_idle()
    s.wait_for(lambda: scrape(s).get('sovterm_sync_postings{entity="SalesReceipt",status="posted"}') == 1.0,
               timeout=15, what="the posting counted (figures refresh every 5 s)")
    m = scrape(s)
    for state in ("queued", "running", "held", "dead"):
        assert m[f'sovterm_sync_jobs{{state="{state}"}}'] == 0.0
    assert m["sovterm_sync_unmatched_payments"] == 0.0 and m["sovterm_sync_postings_to_review"] == 0.0
    assert 0 <= m["sovterm_btcpay_poll_age_seconds"] < 3600
    errors = {k: v for k, v in m.items() if k.startswith("sovterm_qbo_errors_total")}
    assert errors == {'sovterm_qbo_errors_total{code="3001"}': 1.0}, errors  # Intuit's throttling fault
