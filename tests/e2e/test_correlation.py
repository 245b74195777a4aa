"""One payment's whole story in the log: every line its webhook, its re-read and its sync job wrote carries
the invoice id as correlation id, so `sovterm logs --cid <invoice>` shows it from delivery to document."""

from __future__ import annotations

import json

from tests.support.system import System

from .conftest import docs_about, postings, settle


def test_logs_follow_one_webhook_to_its_quickbooks_document(deposit_system: System) -> None:
    s = deposit_system
    inv = settle(s, "17.00")
    doc = s.wait_for(lambda: docs_about(s, "SalesReceipt", inv.id), what="the receipt")[0]
    s.wait_for(lambda: postings(s, inv.id) and postings(s, inv.id)[0][4] == "posted", what="the posting")
    s.wait_idle()
    out = s.cli_ok("logs", "--cid", inv.id, "--json", "-n", "5000")
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert lines and all(x["cid"] == inv.id for x in lines)
    text = "\n".join(f"{x['component']}: {x['msg']}" for x in lines)
    assert "InvoiceSettled" in text and "recorded (delivery" in text  # the webhook
    assert f"invoice {inv.id}" in text  # its re-read from BTCPay
    assert f"posted SalesReceipt:{doc['Id']}" in text  # the job and the QuickBooks document it wrote
    components = {x["component"].split(".")[0] for x in lines}
    assert {"btcpay", "sync"} <= components, components
    # another invoice's lines are not in this story
    other = settle(s, "3.00")
    s.wait_for(lambda: postings(s, other.id) and postings(s, other.id)[0][4] == "posted", what="the other one")
    assert other.id not in s.cli_ok("logs", "--cid", inv.id, "-n", "5000")
