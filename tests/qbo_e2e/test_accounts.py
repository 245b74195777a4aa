"""`sovterm setup accounts` through a real daemon against the simulator's books."""

from __future__ import annotations

from .conftest import REALM, QBOEnv

DEFAULT_NAMES = {("Account", "Bitcoin (BTCPay)"), ("Account", "BTCPay Sales"), ("Account", "Bitcoin Network Fees"),
                 ("Account", "Bitcoin Network Fees Collected"), ("Item", "BTCPay Sale"), ("PaymentMethod", "Bitcoin")}


def count_named(env: QBOEnv, entity: str, name: str) -> int:
    return sum(1 for doc in env.sim.documents(REALM, entity) if doc.get("Name") == name)


def test_without_auto_nothing_is_created_and_the_operator_is_asked(qbo_env: QBOEnv) -> None:
    qbo_env.connect()
    result = qbo_env.cli("setup", "accounts", "--store", "S1")
    assert result.returncode == 1
    assert "[SANDBOX]" in result.stdout and "create" in result.stdout
    assert "Nothing was created" in result.stderr and "--auto" in result.stderr
    assert all(count_named(qbo_env, e, n) == 0 for e, n in DEFAULT_NAMES)
    # explicit accounts where defaults are missing: still refused, naming what is lacking
    partial = qbo_env.cli("setup", "accounts", "--store", "S1", "--deposit-account", "Checking")
    assert partial.returncode == 1 and "--income-account" in partial.stderr
    assert all(count_named(qbo_env, e, n) == 0 for e, n in DEFAULT_NAMES)


def test_auto_creates_defaults_once_and_a_second_run_finds_them(qbo_env: QBOEnv) -> None:
    qbo_env.connect()
    first = qbo_env.cli("setup", "accounts", "--store", "S1", "--auto")
    assert first.returncode == 0, first.stderr
    assert "mapping saved for store S1" in first.stdout and "[SANDBOX]" in first.stdout
    assert all(count_named(qbo_env, e, n) == 1 for e, n in DEFAULT_NAMES)

    second = qbo_env.cli_json("setup", "accounts", "--store", "S1", "--auto")
    assert all(count_named(qbo_env, e, n) == 1 for e, n in DEFAULT_NAMES)  # found by name, not duplicated
    assert second["mapping"]["names"]["deposit_account_id"] == "Bitcoin (BTCPay)"

    proposal = qbo_env.cli("setup", "accounts", "--store", "S1", "--deposit-account", "Checking")
    assert proposal.returncode == 0, proposal.stderr  # every default exists now: no --auto needed
    assert "use existing" in proposal.stdout and "create" not in proposal.stdout.split("mapping saved")[0]
    mapping = qbo_env.sql("SELECT realm_id, names FROM qbo_mappings WHERE store_id = 'S1'")
    assert mapping[0][0] == REALM and '"deposit_account_id": "Checking"' in mapping[0][1]
    assert qbo_env.sql("SELECT key FROM kv WHERE key IN ('setup:qbo', 'setup:accounts') ORDER BY key") == [
        ("setup:accounts",), ("setup:qbo",)]

    wrong = qbo_env.cli("setup", "accounts", "--store", "S1", "--fee-account", "Checking")
    assert wrong.returncode == 1 and "fee account must be Expense" in wrong.stderr
    audit = qbo_env.cli_json("audit")
    outcomes = [r["outcome"] for r in audit if r["action"] == "setup.accounts.apply"]
    assert outcomes.count("ok") == 3 and outcomes.count("refused") == 1
    # fees customers pay may be netted against the fee expense instead of the default income account
    netted = qbo_env.cli_json("setup", "accounts", "--store", "S1", "--fee-collected-account", "Bitcoin Network Fees")
    assert netted["mapping"]["names"]["fee_collected_account_id"] == "Bitcoin Network Fees"

    listing = qbo_env.cli_json("setup", "accounts", "--list")
    names = {row["Name"] for row in listing["accounts"]["rows"]}
    assert {"Checking", "Bitcoin (BTCPay)"} <= names and listing["customers"]["count"] == 3
    qbo_env.assert_no_secrets_leaked()
