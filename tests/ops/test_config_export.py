"""Config export/import: signed, tamper-evident, secrets only as ciphertext, shows the plan before applying."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sovterm.errors import UserFacingError
from sovterm.ops import config_export
from sovterm.ops.backup import read_key
from sovterm.store import keyring
from sovterm.store.db import Database
from sovterm.store.secrets import SecretBox
from tests.ops.helpers import seed_data_dir

WEBHOOK_SECRET = "whsec-4f1d0c9e8b7a6f5e4d3c2b1a"
KV = {"setup:btcpay": {"done": True, "stores": ["S1"]}, "btcpay:poll_cursor:S1": {"t": 5}, "health.probe": 1}


async def _seeded(path: Path) -> Database:
    await seed_data_dir(path, {"btcpay:webhook:S1": WEBHOOK_SECRET, "qbo:tokens:123": '{"refresh_token": "rt-x"}'}, KV)
    db = await Database.open(path / "sovterm.db")
    await db.write("INSERT INTO btcpay_stores(store_id, name, selected, updated_at) VALUES('S1', 'Shop', 1, 0)")
    await db.write(
        "INSERT INTO qbo_mappings(store_id, realm_id, deposit_account_id, income_account_id, item_id, fee_account_id,"
        " updated_at) VALUES('S1', '123', '35', '79', '1', '58', 0)"
    )
    return db


async def test_export_is_signed_and_holds_only_settings(tmp_path: Path) -> None:
    db = await _seeded(tmp_path)
    try:
        key = read_key(tmp_path)[0]
        doc = await config_export.export_document(db, key, version="t")
    finally:
        await db.close()
    assert set(doc["kv"]) == {"setup:btcpay"}  # cursors and probes are runtime state
    assert doc["tables"]["btcpay_stores"][0]["store_id"] == "S1"
    assert doc["tables"]["qbo_mappings"][0]["deposit_account_id"] == "35"
    assert set(doc["secrets"]) == {"btcpay:webhook:S1"}  # no canary, no QuickBooks tokens
    assert WEBHOOK_SECRET not in json.dumps(doc)
    assert config_export.verify(doc, key) is doc

    tampered = json.loads(json.dumps(doc))
    tampered["tables"]["qbo_mappings"][0]["deposit_account_id"] = "99"
    with pytest.raises(UserFacingError, match="changed after it was exported"):
        config_export.verify(tampered, key)
    with pytest.raises(UserFacingError, match="signed under another key file"):
        config_export.verify(doc, os.urandom(32))


async def test_import_plans_then_applies_on_another_database_with_the_same_key(tmp_path: Path) -> None:
    db = await _seeded(tmp_path / "a")
    try:
        key = read_key(tmp_path / "a")[0]
        doc = await config_export.export_document(db, key, version="t")
    finally:
        await db.close()
    target = tmp_path / "b"
    target.mkdir()
    (target / "sovterm.key").write_bytes((tmp_path / "a" / "sovterm.key").read_bytes())
    os.chmod(target / "sovterm.key", 0o600)
    db = await Database.open(target / "sovterm.db")
    try:
        store = await keyring.unlock(db, target)
        plan = await config_export.plan_import(db, SecretBox(key), doc)
        assert plan["kv"]["added"] == ["setup:btcpay"]
        assert plan["tables"] == {"btcpay_stores": {"added": ["S1"], "changed": []},
                                  "qbo_mappings": {"added": ["S1"], "changed": []}}
        assert plan["secrets"]["added"] == ["btcpay:webhook:S1"]
        assert await db.fetchone("SELECT 1 FROM btcpay_stores") is None  # planning changes nothing
        async with db.transaction() as conn:
            await config_export.apply_import(db, doc, conn)
        assert (await store.get("btcpay:webhook:S1")).reveal() == WEBHOOK_SECRET
        again = await config_export.plan_import(db, SecretBox(key), doc)
        assert config_export.plan_is_empty(again) and again["unchanged"] == 4
    finally:
        await db.close()


def test_cli_export_import_round_trip_and_tamper(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory(start=False)
    db = asyncio.run(_seeded(d.root / "data"))
    asyncio.run(db.close())
    d.start()
    out = tmp_path / "config.json"
    exported = d.cli("config", "export", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600" and WEBHOOK_SECRET not in out.read_text()

    doc = json.loads(out.read_text())
    doc["tables"]["qbo_mappings"][0]["income_account_id"] = "1"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(doc))
    refused = d.cli("config", "import", str(bad), "--yes")
    assert refused.returncode == 1 and "changed after it was exported" in refused.stderr

    same = d.cli("config", "import", str(out))
    assert same.returncode == 0 and "nothing to change" in same.stdout

    doc = json.loads(out.read_text())  # a changed setting, signed by this node's key: what another export holds
    doc["kv"]["setup:btcpay"] = {"done": False}
    doc["signature"] = config_export.sign(doc, read_key(d.root / "data")[0])
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    shown = d.cli("config", "import", str(changed))
    assert shown.returncode == 0 and "~ setting setup:btcpay" in shown.stdout and "--yes" in shown.stdout
    applied = d.cli("config", "import", str(changed), "--yes")
    assert applied.returncode == 0 and applied.stdout.startswith("applied:")
    assert "nothing to change" in d.cli("config", "import", str(changed)).stdout
    audit = json.loads(d.cli("audit", "--json").stdout)
    assert [r["outcome"] for r in audit if r["action"] == "config.import"] == ["ok", "refused"]
