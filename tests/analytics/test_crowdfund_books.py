"""A Crowdfund app with its own income account and class (#16 point 3, the books): a contribution to it
lands there, as a SalesReceipt through the app's item and as a Deposit line on the account itself; the
store's other sales keep the store's mapping; a wrong or missing account is refused like in a mapping."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import docs_about, settle
from tests.support.system import System, start_system


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = start_system(tmp_path / "s", mode="deposit")
    yield s
    s.close()


def _add(s: System, entity: str, body: dict[str, object]) -> str:
    books = s.qbo.state.books[next(iter(s.qbo.state.books))]
    return str(s.qbo.call(books.add, entity, body)["Id"])


def _contribute(s: System, app_id: str, amount: str, perk: str | None = None) -> str:
    inv = s.btcpay.call(s.btcpay.state.contribute, app_id, Decimal(amount), perk=perk)
    s.btcpay.call(s.btcpay.state.pay, inv.id, method="BTC-LN")
    return str(inv.id)


def test_a_contribution_lands_in_the_app_s_income_account_and_class(system: System) -> None:
    s = system
    app = s.btcpay.call(s.btcpay.state.create_crowdfund_app, s.store_id, "Roof repair", target_amount=Decimal("1000"),
                        perks=[{"id": "thanks", "title": "Thank-you card", "priceType": "Fixed", "price": "20.00"}])
    s.cli_ok("crowdfund", "refresh")
    donations = _add(s, "Account", {"Name": "Donations", "AccountType": "Income"})
    campaigns = _add(s, "Class", {"Name": "Campaigns"})

    wrong = s.cli("crowdfund", "books", app.id, "--income", "Bitcoin (BTCPay)")
    assert wrong.returncode == 1 and "must be Income" in wrong.stderr
    missing = s.cli("crowdfund", "books", app.id, "--income", "Grants")
    assert missing.returncode == 1 and "no Account named or numbered 'Grants'" in missing.stderr
    out = s.cli_ok("crowdfund", "books", app.id, "--income", "Donations", "--class", "Campaigns")
    assert "income account Donations" in out and "class Campaigns" in out
    assert "income account Donations" in s.cli_ok("crowdfund", "show", app.id)

    given = _contribute(s, app.id, "20.00", perk="thanks")
    receipt = s.wait_for(lambda: docs_about(s, "SalesReceipt", given), what="the contribution's receipt")[0]
    [line] = receipt["Line"]
    item = next(i for i in s.qbo_docs("Item") if i["Id"] == line["SalesItemLineDetail"]["ItemRef"]["value"])
    assert item["IncomeAccountRef"]["value"] == donations and item["Name"] == "Roof repair (Crowdfund)"
    assert line["SalesItemLineDetail"]["ClassRef"]["value"] == campaigns and Decimal(str(line["Amount"])) == 20

    sale = settle(s, "9.50")  # the store's sales keep the store's item and no campaign class
    receipt = s.wait_for(lambda: docs_about(s, "SalesReceipt", sale.id), what="the sale's receipt")[0]
    assert receipt["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] != item["Id"]
    assert (receipt["Line"][0]["SalesItemLineDetail"].get("ClassRef") or {}).get("value") != campaigns

    s.cli_ok("setup", "mode", "deposit", "--deposit-as", "deposit")
    given = _contribute(s, app.id, "35.00")
    deposit = s.wait_for(lambda: docs_about(s, "Deposit", given), what="the contribution's deposit")[0]
    [line] = deposit["Line"]
    assert line["DepositLineDetail"]["AccountRef"]["value"] == donations
    assert line["DepositLineDetail"]["ClassRef"]["value"] == campaigns
