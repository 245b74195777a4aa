"""Support bundles: useful content, and no planted secret or personal value anywhere in them."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import signal
import tarfile
import time
from pathlib import Path

from sovterm.config import load_settings
from sovterm.ops.backup import read_key
from sovterm.ops.diag import offline_bundle
from sovterm.ops.redact import Redactor
from sovterm.store.db import Database
from tests.ops.helpers import seed_data_dir

API_KEY = "b7c1e0f4d2a95f3e8c6b1a0d9e8f7a6b5c4d3e2f"
WEBHOOK_SECRET = "whsec-Zq8Lr2Vx9Nw4Ty7"
QBO_SECRET = "qbo-client-secret-Hy6Tf3Kp0"
EMAIL = "alice.buyer@example.com"
ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
BUYER = "Alice Wonderbuyer"


def _files(bundle: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}


def _assert_clean(bundle: bytes, planted: list[str]) -> dict[str, str]:
    files = _files(bundle)
    raw = gzip.decompress(bundle)
    for value in planted:
        assert value.encode() not in raw and value.encode() not in bundle, value
        for name, text in files.items():
            assert value not in text, (value, name)
    return files


async def _plant_invoice(data_dir: Path) -> None:
    db = await Database.open(data_dir / "sovterm.db")
    try:
        await db.write(
            "INSERT INTO invoices(store_id, invoice_id, status, buyer_email, metadata, created_at, status_changed_at,"
            " observed_at_ms, snapshot_rank, content_hash, updated_at) VALUES('S1', 'I1', 'Settled', ?, ?, 0, 0, 0, 0, 'h', 0)",
            (EMAIL, json.dumps({"buyerName": BUYER})),
        )
        await db.write(
            "INSERT INTO invoice_payment_methods(store_id, invoice_id, payment_method_raw, payment_method, currency,"
            " destination) VALUES('S1', 'I1', 'BTC-CHAIN', 'onchain', 'BTC', ?)", (ADDRESS,),
        )
    finally:
        await db.close()


def test_daemon_bundle_redacts_every_planted_secret(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory(start=False, extra={"qbo": {"client_id": "ABcdClientId", "client_secret": QBO_SECRET}})
    data = d.root / "data"
    asyncio.run(seed_data_dir(data, {"btcpay:api_key": API_KEY, "btcpay:webhook:S1": WEBHOOK_SECRET}))
    asyncio.run(_plant_invoice(data))
    d.start()
    master = read_key(data)[0].hex()

    # Make the daemon log the planted values: a refused reload names each bad value it was given.
    good = d.config.read_text()
    d.config.write_text(good.replace(
        "[reaper]", f'[btcpay]\nurl = "{ADDRESS}"\n[links]\ncheckout_minutes = "{BUYER}"\n'
        f'[payouts]\npoll_interval_s = "{API_KEY} {WEBHOOK_SECRET}"\n[health]\nmin_free_disk_mb = "{EMAIL}"\n[reaper]',
    ))
    d.proc.send_signal(signal.SIGHUP)  # the CLI itself would refuse the broken file
    log_file = data / "logs" / "sovterm.log"
    deadline = time.monotonic() + 10
    while "reload refused" not in (log_file.read_text() if log_file.exists() else ""):
        assert time.monotonic() < deadline, "the daemon did not log the refused reload"
        time.sleep(0.05)
    d.config.write_text(good)

    out = tmp_path / "bundle.tar.gz"
    made = d.cli("diag", "--output", str(out), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["mode"] == "from the running daemon"
    files = _assert_clean(out.read_bytes(), [API_KEY, WEBHOOK_SECRET, QBO_SECRET, EMAIL, ADDRESS, BUYER, master])

    assert set(files) == {"README.txt", "versions.json", "status.json", "queue.json", "database.json",
                          "disk.json", "config.json", "logs.jsonl"}
    refused = [json.loads(line) for line in files["logs.jsonl"].splitlines() if "reload refused" in line]
    assert refused, "the planted values must have reached the log for this test to mean anything"
    msg = refused[-1]["msg"]
    # known values (stored secrets, the buyer's e-mail, name and address from the database) go by value
    for line in ("btcpay.url = '[redacted]'", "links.checkout_minutes = '[redacted]'",
                 "payouts.poll_interval_s = '[redacted] [redacted]'", "health.min_free_disk_mb = '[redacted]'"):
        assert line in msg, line
    assert json.loads(files["versions.json"])["sovterm"]
    status = json.loads(files["status.json"])
    assert "ready" in status and "btcpay" in status["checks"]["connectors"]
    assert json.loads(files["database.json"])["row_counts"]["invoices"] == 1
    assert json.loads(files["config.json"])["qbo"]["client_id"] == "ABcdClientId"
    assert not list((data / "exports").glob("sovterm-diag-*")), "copied out, so removed on the node"


def test_offline_bundle_when_the_daemon_is_down(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory(start=False, extra={"qbo": {"client_secret": QBO_SECRET}})
    logs = d.root / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "sovterm.log").write_text("\n".join([
        json.dumps({"level": "ERROR", "msg": f"mail to {EMAIL} failed; pay to {ADDRESS}"}),
        json.dumps({"level": "INFO", "msg": f"Authorization: token {API_KEY}", "peer": "93.184.216.34"}),
        json.dumps({"level": "INFO", "msg": "secret leak", "webhook_secret": WEBHOOK_SECRET}),
        "not json: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig /pay/v1.abcdefghijk.tag",
    ]) + "\n")
    out = tmp_path / "offline.tar.gz"
    made = d.cli("diag", "--output", str(out))
    assert made.returncode == 0, made.stderr
    assert "offline" in made.stdout
    files = _assert_clean(out.read_bytes(), [QBO_SECRET, EMAIL, ADDRESS, API_KEY, WEBHOOK_SECRET,
                                             "93.184.216.34", "eyJhbGciOiJIUzI1NiJ9", "abcdefghijk"])
    assert json.loads(files["status.json"])["daemon"] == "unreachable"
    logged = files["logs.jsonl"]
    assert len(logged.splitlines()) == 4
    for mark in ("[redacted:email]", "[redacted:address]", "[redacted:token]", "[redacted:ip]", "/pay/[redacted]"):
        assert mark in logged, mark  # patterns catch what no stored value names


def test_redactor_keeps_what_support_needs() -> None:
    r = Redactor([API_KEY])
    txid = "a1" * 32
    text = f"invoice K8cbT6ZmNoZkmmGnBuRFy4 tx {txid} store S1 amount 12.50 from 127.0.0.1 and 10.0.0.2 key {API_KEY}"
    out = r.text(text)
    assert txid in out and "K8cbT6ZmNoZkmmGnBuRFy4" in out and "12.50" in out and "10.0.0.2" in out
    assert API_KEY not in out
    assert r.data({"btcpay": {"api_key": "x1", "url": "https://b.example"}, "key_fingerprint": "ab12"}) == {
        "btcpay": {"api_key": "[redacted]", "url": "https://b.example"}, "key_fingerprint": "ab12"}


def test_offline_bundle_function_needs_no_database(tmp_path: Path) -> None:
    settings = load_settings(None, {"SOVTERM_DATA_DIR": str(tmp_path / "nothing"), "HOME": str(tmp_path)})
    files = _files(offline_bundle(settings, "not running"))
    assert "no database" in json.loads(files["database.json"])["error"] and files["logs.jsonl"] == ""
