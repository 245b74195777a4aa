"""#19 point 11: a damaged database is noticed at start (refused, with how to restore, no traceback), on
demand (`sovterm db check`), and then by /readyz and the status page."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sovterm.store.db import Database, DatabaseDamaged
from tests.support.daemon import DaemonProcess


def page_size(path: Path) -> int:
    size = int.from_bytes(path.read_bytes()[16:18], "big")
    return 65536 if size == 1 else size


def overwrite_last_page(path: Path, *, pages_from_end: int = 1) -> None:
    size = page_size(path)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size - pages_from_end * size)
        f.write(bytes(range(256)) * (size // 256))


def damage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"this is not SQLite, sorry!" * 4)


def fill(path: Path, rows: int = 2000) -> None:
    """Enough rows in the audit table that its pages run to the end of the file."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO audit(at, actor, action, subject, detail, outcome) VALUES(strftime('%s','now'),'t','t',?,'{}','ok')",
                         [("x" * 200,)] * rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.mark.parametrize("damage", [overwrite_last_page, damage_header])
async def test_open_refuses_a_damaged_database(tmp_path: Path, damage) -> None:
    path = tmp_path / "sovterm.db"
    db = await Database.open(path)
    await db.close()
    fill(path)
    damage(path)
    with pytest.raises(DatabaseDamaged) as refused:
        await Database.open(path)
    assert "is damaged" in refused.value.message and "sovterm backup restore" in refused.value.fix


def start_refused(d: DaemonProcess) -> tuple[int, str]:
    d.start(wait=False)
    assert d.proc is not None
    try:
        d.proc.wait(30)
    except Exception:
        d.kill()
        raise AssertionError("the daemon stayed up on a damaged database") from None
    return d.proc.returncode, d.proc.stderr.read().decode() if d.proc.stderr else ""


@pytest.mark.parametrize("damage", [overwrite_last_page, damage_header])
def test_daemon_refuses_to_run_on_a_damaged_database(daemon_factory, damage) -> None:
    d: DaemonProcess = daemon_factory()
    assert d.stop() == 0
    db_path = d.root / "data" / "sovterm.db"
    fill(db_path)
    damage(db_path)
    code, stderr = start_refused(d)
    assert code != 0
    assert "is damaged" in stderr and "sovterm backup restore" in stderr
    assert "Traceback" not in stderr
    assert not d.socket_path.exists()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_check_on_demand_then_readyz_and_status_page_say_so(daemon_factory) -> None:
    d: DaemonProcess = daemon_factory()
    assert d.stop() == 0
    db_path = d.root / "data" / "sovterm.db"
    fill(db_path)
    d.start()
    ok = d.cli("db", "check", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    assert _get(d.url + "/readyz")[0] == 200
    # Damaged under the running daemon (a failing disk, a bad copy): a page of old audit rows, not one
    # the daemon has rewritten since (its newer copy would be in the WAL).
    overwrite_last_page(db_path, pages_from_end=20)
    bad = d.cli("db", "check", "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["problems"] and "sovterm backup restore" in report["fix"]
    status, body = _get(d.url + "/readyz")
    assert status == 503 and json.loads(body)["database"].startswith("damaged")
    page = _get(d.url + "/")[1]
    assert "Database: damaged" in page and "sovterm backup restore" in page
