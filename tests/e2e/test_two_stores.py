"""Two shops on one BTCPay Server, followed at once, each booked in its own place.

Store A ("Satoshi's Coffee", the system's store) connects with the server-wide key, which its owner
scoped to A alone; it is in deposit mode, booked as Deposits, with sovterm's default accounts and class
"Coffee". Store B ("Book Corner") is added later with its own key scoped to B, in invoicing mode,
with its own bitcoin account, sales item (and so income account) and class "Books". Nothing of one may
land in the other's accounts or class, every payment is booked exactly once, a delivery signed with A's
webhook secret is refused on B's route, and the books match per store and in total.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sovterm.btcpay.webhooks import sign
from sovterm.store.secrets import Secret
from tests.support.system import REALM, STORE_PERMISSIONS, System, start_system

from .conftest import docs_about, postings, settle

COFFEE = "Satoshi's Coffee"  # the system's store


def _key_file(s: System, name: str, key: str) -> str:
    path = s.daemon.root / name
    path.write_text(key + "\n")
    path.chmod(0o600)
    return str(path)


class Shop:
    def __init__(self, store_id: str, key: str) -> None:
        self.store_id = store_id
        self.key = key


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, Shop, dict[str, str]]]:
    s = start_system(tmp_path_factory.mktemp("two-stores"), mode="deposit")
    sim, qbo = s.btcpay, s.qbo
    store_b = sim.call(sim.state.create_store, "Book Corner").id
    key_b = sim.call(sim.state.create_api_key, [f"btcpay.store.{p}:{store_b}" for p in STORE_PERMISSIONS],
                     label="books shop only")

    def chart() -> dict[str, str]:
        books = qbo.state.books[REALM]
        bitcoin_b = books.add("Account", {"Name": "Bitcoin (Books shop)", "AccountType": "Other Current Asset",
                                          "AccountSubType": "OtherCurrentAssets", "CurrentBalance": Decimal(0)})
        sales_b = books.add("Account", {"Name": "Book Sales", "AccountType": "Income",
                                        "AccountSubType": "SalesOfProductIncome", "CurrentBalance": Decimal(0)})
        item_b = books.add("Item", {"Name": "Book", "Type": "NonInventory",
                                    "IncomeAccountRef": {"value": sales_b["Id"], "name": "Book Sales"}})
        return {"bitcoin_b": bitcoin_b["Id"], "sales_b": sales_b["Id"], "item_b": item_b["Id"],
                "class_a": books.add("Class", {"Name": "Coffee"})["Id"],
                "class_b": books.add("Class", {"Name": "Books"})["Id"]}

    ids = qbo.call(chart)
    try:
        yield s, Shop(store_b, key_b), ids
    finally:
        s.close()


def second_store_with_its_own_key_mode_accounts_and_class(two: tuple[System, Shop, dict[str, str]]) -> None:
    s, b, ids = two
    a = s.store_id
    # the server-wide key (scoped to A by its owner) cannot serve B: refused, naming the key and the store
    refused = s.cli("setup", "btcpay", "--store", b.store_id)
    assert refused.returncode == 1
    assert f"the server-wide API key ('sovterm') cannot see store {b.store_id}" in refused.stderr
    assert "--store-key" in refused.stderr
    # ... and so is A's key offered as B's own key
    wrong = s.cli("setup", "btcpay", "--store", b.store_id, "--store-key",
                  "--api-key-file", _key_file(s, "a.key", s.api_key))
    assert wrong.returncode == 1
    assert f"the API key given for store {b.store_id} ('sovterm') cannot see store {b.store_id}" in wrong.stderr
    assert s.sql("SELECT store_id FROM btcpay_stores WHERE selected = 1") == [(a,)]

    out = s.cli_ok("setup", "btcpay", "--store", b.store_id, "--store-key",
                   "--api-key-file", _key_file(s, "b.key", b.key))
    assert f"Following store 'Book Corner' ({b.store_id})" in out
    assert "its own API key 'books shop only' stored encrypted" in out
    # A is still followed; each store has its own webhook, route and secret
    assert sorted(r[0] for r in s.sql("SELECT store_id FROM btcpay_stores WHERE selected = 1")) == sorted([a, b.store_id])
    hooks = {h.store_id: h for h in s.btcpay.state.webhooks.values()}
    assert set(hooks) == {a, b.store_id}
    assert hooks[b.store_id].url.endswith(f"/webhooks/btcpay/{b.store_id}") and hooks[a].url.endswith(f"/webhooks/btcpay/{a}")
    assert hooks[a].secret != hooks[b.store_id].secret
    stored = dict(s.sql("SELECT name, ciphertext FROM secrets"))
    assert f"btcpay:api_key:{b.store_id}" in stored and b.key.encode() not in stored[f"btcpay:api_key:{b.store_id}"]

    # per-store mode; a store nobody follows is refused rather than silently configured
    typo = s.cli("setup", "mode", "invoicing", "--store", "NoSuchStore")
    assert typo.returncode == 1 and "store NoSuchStore is not followed" in typo.stderr
    s.cli_ok("setup", "mode", "deposit", "--store", a, "--deposit-as", "deposit")
    s.cli_ok("setup", "mode", "invoicing", "--store", b.store_id)
    # per-store mapping, in two runs: the second (the class) keeps what the first chose
    s.cli_ok("setup", "accounts", "--store", a, "--class", "Coffee")
    s.cli_ok("setup", "accounts", "--store", b.store_id, "--deposit-account", "Bitcoin (Books shop)",
             "--income-account", "Book Sales", "--item", "Book")
    mapped = s.cli_json("setup", "accounts", "--store", b.store_id, "--class", "Books")["mapping"]
    assert (mapped["deposit_account_id"], mapped["item_id"], mapped["class_id"]) == (
        ids["bitcoin_b"], ids["item_b"], ids["class_b"])
    bad_class = s.cli("setup", "accounts", "--store", b.store_id, "--class", "Nonesuch")
    assert bad_class.returncode == 1 and "no Class named or numbered 'Nonesuch'" in bad_class.stderr

    # every view lists both stores with their own mode, books and key
    st = {x["id"]: x for x in s.cli_json("btcpay", "status")["stores"]}
    assert (st[a]["mode"], st[a]["deposit_as"], st[a]["api_key"], st[a]["mapping"]["class"]) == (
        "deposit", "deposit", "server", "Coffee")
    assert (st[b.store_id]["mode"], st[b.store_id]["api_key"], st[b.store_id]["api_key_label"]) == (
        "invoicing", "own", "books shop only")
    assert st[b.store_id]["mapping"] == {"deposit_account": "Bitcoin (Books shop)", "income_account": "Book Sales",
                                         "class": "Books"}
    assert all(x["webhook"]["health"] in ("ok", "no deliveries yet") for x in st.values())
    text = s.cli_ok("status")
    assert f"{COFFEE!r} ({a}): deposit as deposit mode, into 'Bitcoin (BTCPay)', income 'BTCPay Sales', " \
           "class 'Coffee'; the server-wide API key" in text
    assert f"'Book Corner' ({b.store_id}): invoicing mode, into 'Bitcoin (Books shop)', income 'Book Sales', " \
           "class 'Books'; its own API key" in text
    listed = s.cli_ok("btcpay", "stores")
    assert f"{a}  {COFFEE!r}: followed, server-wide key, ready" in listed
    assert f"{b.store_id}  'Book Corner': followed, own key, ready" in listed
    for output in s.outputs:
        assert b.key not in output and s.api_key not in output


def each_store_books_into_its_own_accounts_exactly_once(two: tuple[System, Shop, dict[str, str]]) -> None:
    s, b, ids = two
    a = s.store_id
    if b.store_id not in [r[0] for r in s.sql("SELECT store_id FROM btcpay_stores WHERE selected = 1")]:
        pytest.skip("needs the second store set up by the test before")
    qbo_invoice = next(d for d in s.qbo_docs("Invoice") if d.get("DocNumber") == "1001")
    sale_a = settle(s, "25.00")
    pay_b = settle(s, "40.00", store_id=b.store_id, metadata={"orderId": "1001"})
    loose_b = settle(s, "12.50", store_id=b.store_id, metadata={"orderId": "not-in-quickbooks"})
    s.wait_idle()
    listed = s.wait_for(lambda: [r for r in s.cli_json("sync", "unmatched") if r["invoice_id"] == loose_b.id],
                        what="B's unmatched invoice")
    assert listed and not docs_about(s, "SalesReceipt", loose_b.id)
    s.cli_ok("sync", "resolve", loose_b.id, "--as-deposit")
    s.wait_for(lambda: docs_about(s, "SalesReceipt", loose_b.id), what="B's receipt after resolving")
    s.wait_idle()

    # A: one Deposit from A's income account into A's bitcoin account, with A's class
    default_bitcoin = next(d["Id"] for d in s.qbo_docs("Account") if d["Name"] == "Bitcoin (BTCPay)")
    default_sales = next(d["Id"] for d in s.qbo_docs("Account") if d["Name"] == "BTCPay Sales")
    (dep,) = docs_about(s, "Deposit", sale_a.id)
    assert dep["DepositToAccountRef"]["value"] == default_bitcoin
    assert [(ln["DepositLineDetail"]["AccountRef"]["value"], ln["DepositLineDetail"]["ClassRef"]["value"])
            for ln in dep["Line"]] == [(default_sales, ids["class_a"])]
    assert Decimal(dep["TotalAmt"]) == Decimal("25.00")
    # B, invoicing mode: a Payment applied to QuickBooks invoice 1001, into B's bitcoin account (QuickBooks
    # has no class on a Payment: the class stays on the invoice it pays)
    (pay,) = docs_about(s, "Payment", pay_b.id)
    assert pay["DepositToAccountRef"]["value"] == ids["bitcoin_b"] and "ClassRef" not in pay
    assert pay["Line"][0]["LinkedTxn"] == [{"TxnId": qbo_invoice["Id"], "TxnType": "Invoice"}]
    # B's sale the operator resolved as a deposit: B's receipt, item (so B's income account) and class
    (receipt,) = docs_about(s, "SalesReceipt", loose_b.id)
    detail = receipt["Line"][0]["SalesItemLineDetail"]
    assert receipt["DepositToAccountRef"]["value"] == ids["bitcoin_b"]
    assert (detail["ItemRef"]["value"], detail["ClassRef"]["value"]) == (ids["item_b"], ids["class_b"])
    # exactly once, and nothing of one store in the other's place
    for inv, store_id, expected in ((sale_a, a, ["Deposit"]), (pay_b, b.store_id, ["Payment"]),
                                    (loose_b, b.store_id, ["SalesReceipt"])):
        rows = postings(s, inv.id)
        assert [(r[2], r[4]) for r in rows] == [(e, "posted") for e in expected], rows
        assert s.sql("SELECT DISTINCT store_id FROM sync_postings WHERE invoice_id = ?", (inv.id,)) == [(store_id,)]
        found = [d for e in ("SalesReceipt", "Deposit", "Payment") for d in docs_about(s, e, inv.id)]
        assert len(found) == 1
    a_docs = [d for e in ("SalesReceipt", "Deposit") for d in s.qbo_docs(e) if a in str(d.get("PrivateNote"))]
    assert a_docs and all(d["DepositToAccountRef"]["value"] == default_bitcoin for d in a_docs)
    b_docs = [d for e in ("SalesReceipt", "Deposit", "Payment") for d in s.qbo_docs(e)
              if b.store_id in str(d.get("PrivateNote"))]
    assert len(b_docs) == 2 and all(d["DepositToAccountRef"]["value"] == ids["bitcoin_b"] for d in b_docs)
    assert set().union(*map(class_refs, a_docs)) == {ids["class_a"]}
    assert set().union(*map(class_refs, b_docs)) == {ids["class_b"]}

    # B's payout, paid from B's Lightning node: a Transfer out of B's bitcoin account and the routing fee as a
    # Purchase from it, both with B's class (its mirror reads B with B's key)
    payout = s.btcpay.call(s.btcpay.state.create_payout, b.store_id, Decimal("10.00"), "USD", approved=True,
                           payout_method_id="BTC-LN")
    s.btcpay.call(s.btcpay.state.pay_lightning_payout, b.store_id, payout.id, fee_msat=1_000_000)
    (transfer,) = s.wait_for(lambda: [d for d in s.qbo_docs("Transfer") if payout.id in str(d.get("PrivateNote"))],
                             what="B's payout transfer")
    assert (transfer["FromAccountRef"]["value"], transfer["ClassRef"]["value"]) == (ids["bitcoin_b"], ids["class_b"])
    (fee,) = s.wait_for(lambda: [d for d in s.qbo_docs("Purchase") if payout.id in str(d.get("PrivateNote"))],
                        what="B's routing fee")
    assert (fee["AccountRef"]["value"], fee["Line"][0]["AccountBasedExpenseLineDetail"]["ClassRef"]["value"]) == (
        ids["bitcoin_b"], ids["class_b"])

    # the poll and the history import cover both stores, B through its own key (the server-wide one
    # cannot read B at all)
    polled = s.cli_json("btcpay", "poll")
    assert set(polled["stores"]) == {a, b.store_id} and not any("error" in x for x in polled["stores"].values())
    day = dep["TxnDate"]
    history = s.cli_json("btcpay", "import-history", "--since", day)["stores"]
    assert history[a]["listed"] >= 1 and history[b.store_id]["listed"] == 2

    # a delivery signed with A's webhook secret is refused on B's route; B's own secret opens it
    hooks = {h.store_id: h for h in s.btcpay.state.webhooks.values()}
    body = json.dumps({"deliveryId": "forged-1", "webhookId": hooks[b.store_id].id, "originalDeliveryId": "forged-1",
                       "isRedelivery": False, "type": "InvoiceCreated", "timestamp": 1767225600,
                       "storeId": b.store_id, "invoiceId": pay_b.id, "metadata": {}}).encode()
    assert _post_webhook(s, b.store_id, body, hooks[a].secret) == 401
    assert s.sql("SELECT reason FROM webhook_refusals WHERE store_id = ?", (b.store_id,)) == [("bad_signature",)]
    assert _post_webhook(s, b.store_id, body, hooks[b.store_id].secret) == 200

    # the books match for each store and in total
    per_store = {}
    for store_id in (a, b.store_id):
        report = s.cli_json("reconcile", "--from", day, "--to", day, "--store", store_id)
        assert report["ok"], report["differences"]
        per_store[store_id] = sum(int(d["btcpay_count"]) for d in report["days"])
    assert per_store == {a: 1, b.store_id: 2}
    total = s.cli_json("reconcile", "--from", day, "--to", day)
    assert total["ok"] and sum(int(d["btcpay_count"]) for d in total["days"]) == 3
    assert f"for store {b.store_id}: BOOKS MATCH" in s.cli_ok("reconcile", "--from", day, "--to", day,
                                                                "--store", b.store_id)
    logs = [p for p in (Path(s.daemon.root) / "data" / "logs").glob("*") if p.is_file()]
    assert logs and all(b.key not in p.read_text(errors="replace") for p in logs)


def class_refs(node: Any) -> set[str]:
    """Every ClassRef in a document, at any depth (header or lines)."""
    if isinstance(node, dict):
        found = {node["ClassRef"]["value"]} if "ClassRef" in node else set()
        return found.union(*(class_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(class_refs(v) for v in node))
    return set()


def _post_webhook(s: System, store_id: str, body: bytes, secret: str) -> int:
    request = urllib.request.Request(
        f"{s.daemon.url}/webhooks/btcpay/{store_id}", data=body, method="POST",
        headers={"Content-Type": "application/json", "BTCPay-Sig": sign(Secret(secret), body)})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def one_store_losing_its_key_or_unfollowed_leaves_the_other_alone(
        two: tuple[System, Shop, dict[str, str]]) -> None:
    s, b, _ = two
    a = s.store_id
    # B's owner revokes B's key: B's poll fails with its own reason, A is still polled, BTCPay stays connected
    s.btcpay.call(s.btcpay.state.api_keys.pop, b.key)
    polled = s.cli("btcpay", "poll", "--json")
    stores = json.loads(polled.stdout)["stores"]
    assert polled.returncode == 0 and "error" not in stores[a]
    assert f"BTCPay refuses store {b.store_id}'s own API key" in stores[b.store_id]["error"]
    status = s.cli_json("status")
    assert status["checks"]["connectors"]["btcpay"]["state"] == "connected"
    assert "last poll failed: BTCPay refuses store" in s.cli_ok("status")
    # B is unfollowed: with its key revoked our webhook there cannot be deleted (the operator is told to),
    # but its deliveries are no longer taken and its key is forgotten; A keeps everything
    out = s.cli_ok("btcpay", "unfollow", b.store_id)
    assert f"no longer following store {b.store_id}" in out and "delete it in BTCPay" in out
    hooks = {h.store_id: h for h in s.btcpay.state.webhooks.values()}
    body = json.dumps({"deliveryId": "late-1", "webhookId": hooks[b.store_id].id, "originalDeliveryId": "late-1",
                       "isRedelivery": False, "type": "InvoiceCreated", "timestamp": 1767225600,
                       "storeId": b.store_id, "invoiceId": "x", "metadata": {}}).encode()
    assert _post_webhook(s, b.store_id, body, hooks[b.store_id].secret) == 404
    assert s.sql("SELECT store_id FROM btcpay_stores WHERE selected = 1") == [(a,)]
    names = [r[0] for r in s.sql("SELECT name FROM secrets WHERE name LIKE 'btcpay:%'")]
    assert f"btcpay:api_key:{b.store_id}" not in names and f"btcpay:webhook:{a}" in names
    assert [x["id"] for x in s.cli_json("btcpay", "status")["stores"]] == [a]


def test_two_stores_followed_at_once(two: tuple[System, Shop, dict[str, str]]) -> None:
    """One test in three steps, each building on the one before (one system, whatever worker runs it)."""
    second_store_with_its_own_key_mode_accounts_and_class(two)
    each_store_books_into_its_own_accounts_exactly_once(two)
    one_store_losing_its_key_or_unfollowed_leaves_the_other_alone(two)
