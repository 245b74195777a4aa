"""`sovterm diag`: a support bundle (tar.gz) with everything but secrets and personal data.

The daemon builds it with what only it knows (readiness, loops, connectors, the log ring, the queue,
and every stored secret, so those can be removed by value); when the daemon does not run, the CLI builds
a smaller one from the config and log files, which is when support is needed most. Every file goes
through `Redactor` twice: structurally (by key name) and as text (known values and patterns).
"""

from __future__ import annotations

import asyncio
import io
import json
import platform
import sqlite3
import sys
import tarfile
import time
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from sovterm import __version__
from sovterm.config import Settings
from sovterm.errors import UserFacingError
from sovterm.ops.backup import read_key
from sovterm.ops.files import create_private, exports_dir, unique_name
from sovterm.ops.redact import Redactor
from sovterm.store.db import Database
from sovterm.store.secrets import SecretStore

LOG_LINES = 2000
PACKAGES = ("aiohttp", "aiosqlite", "pydantic", "cryptography", "authlib", "apscheduler", "textual",
            "psutil", "prometheus-client", "qrcode")
# Personal values the database holds; removed by value wherever they also appear (logs, errors).
PERSONAL_QUERIES = (
    "SELECT DISTINCT buyer_email FROM invoices WHERE buyer_email IS NOT NULL",
    "SELECT DISTINCT destination FROM invoice_payment_methods WHERE destination IS NOT NULL",
    "SELECT DISTINCT destination FROM invoice_payments WHERE destination IS NOT NULL",
    "SELECT DISTINCT destination FROM payouts WHERE destination IS NOT NULL",
    *(
        f"SELECT DISTINCT json_extract(metadata, '$.{field}') FROM invoices "
        f"WHERE json_valid(metadata) AND json_extract(metadata, '$.{field}') IS NOT NULL"
        for field in ("buyerName", "buyerEmail", "buyerAddress1", "buyerAddress2", "buyerCity",
                      "buyerZip", "buyerState", "buyerPhone")
    ),
)
README = """sovterm support bundle
======================

Made by `sovterm diag` on {created} ({mode}).

Files: versions.json (software and OS), status.json (readiness, loops, connectors),
queue.json (sync queue summary), database.json (schema version, row counts),
disk.json, config.json (the running configuration), logs.jsonl (recent log lines).

Redacted: every stored secret (API keys, webhook secrets, OAuth tokens, signing keys,
the QuickBooks client secret, the master key), values under secret-looking keys,
e-mail addresses, buyer names and postal addresses, phone numbers, Bitcoin destination
addresses, Lightning invoices, extended public keys, public IP addresses, pay-link
tokens. Kept: invoice/store/document ids, transaction ids, amounts, times, states.
Look through it before you send it; see docs/operations.md.
"""


def versions() -> dict[str, Any]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        os_name = None
    return {
        "sovterm": __version__,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "packages": packages,
        "os": os_name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists(),
    }


def disk(settings: Settings) -> dict[str, Any]:
    try:
        usage = psutil.disk_usage(str(settings.data_dir))
    except OSError as exc:
        return {"error": exc.strerror}
    return {"total_mb": usage.total >> 20, "free_mb": usage.free >> 20, "used_percent": usage.percent,
            "min_free_mb": settings.health.min_free_disk_mb}


def base_redactor(settings: Settings) -> Redactor:
    """The secrets readable from files: the QuickBooks client secret and the master key."""
    redactor = Redactor()
    try:
        secret = settings.qbo.resolved_client_secret()
        redactor.add(secret.reveal() if secret else None)
    except UserFacingError:
        pass
    try:
        key, key_file = read_key(settings.data_dir)
        redactor.add(key.hex())
        redactor.add(key_file.decode(errors="replace").strip())
    except (UserFacingError, OSError):
        pass
    return redactor


async def redactor_for(settings: Settings, db: Database, store: SecretStore) -> Redactor:
    """Everything secret or personal this node knows by value."""
    redactor = base_redactor(settings)
    for name in await store.names():
        try:
            value = await store.get(name)
        except UserFacingError:
            continue
        redactor.add(value.reveal() if value else None)
    for sql in PERSONAL_QUERIES:
        try:
            rows = await db.fetchall(sql)
        except Exception:  # a table a part has not created yet
            continue
        for row in rows:
            redactor.add(str(row[0]))
    return redactor


async def database_summary(db: Database) -> dict[str, Any]:
    tables = [r[0] for r in await db.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    counts = {}
    for table in tables:
        row = await db.fetchone(f'SELECT COUNT(*) FROM "{table}"')
        counts[table] = row[0] if row else None
    files = {p.name: p.stat().st_size for p in db.path.parent.glob(db.path.name + "*") if p.is_file()}
    return {"schema_version": await db.schema_version(), "row_counts": counts, "file_bytes": files}


def offline_database_summary(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"error": f"no database at {path}"}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    except sqlite3.Error as exc:
        return {"error": f"cannot read {path}: {exc}"}
    return {"schema_version": version, "file_bytes": path.stat().st_size}


async def queue_summary(sync: Any, db: Database | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    status = getattr(sync, "status", None)
    if callable(status):
        try:
            out["sync"] = await status()
        except Exception as exc:  # a support bundle reports, never fails on a part's error
            out["sync_error"] = type(exc).__name__
    else:
        out["sync"] = "sync not set up yet"
    if db is not None:
        try:
            rows = await db.fetchall("SELECT state, COUNT(*) FROM sync_jobs GROUP BY state")
            out["jobs_by_state"] = {r[0]: r[1] for r in rows}
        except Exception:
            pass
    return out


def log_file_lines(log_dir: Path, count: int = LOG_LINES) -> list[dict[str, Any]]:
    """The last lines of the daemon's JSON log files (oldest rotated file first)."""
    files = sorted(log_dir.glob("sovterm.log.*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    lines: deque[dict[str, Any]] = deque(maxlen=count)
    for path in [*files, log_dir / "sovterm.log"]:
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for raw in fh:
                    try:
                        lines.append(json.loads(raw))
                    except ValueError:
                        lines.append({"raw": raw.rstrip("\n")})
        except OSError:
            continue
    return list(lines)


def build_bundle(sections: dict[str, Any], log_lines: list[dict[str, Any]], redactor: Redactor,
                 *, mode: str, now: float | None = None) -> tuple[str, bytes]:
    """(folder name, tar.gz bytes); every section and log line is redacted on the way in."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    folder = f"sovterm-diag-{stamp}"
    files = {"README.txt": README.format(created=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)), mode=mode)}
    for name, value in sections.items():
        files[f"{name}.json"] = redactor.text(json.dumps(redactor.data(value), indent=2, default=str))
    files["logs.jsonl"] = "".join(
        redactor.text(json.dumps(redactor.data(line), ensure_ascii=False, default=str)) + "\n" for line in log_lines
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            body = text.encode("utf-8")
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime, info.mode = len(body), int(now), 0o600
            tar.addfile(info, io.BytesIO(body))
    return folder, buf.getvalue()


async def daemon_bundle(settings: Settings, db: Database, store: SecretStore, *, status: dict[str, Any],
                        log_lines: list[dict[str, Any]], sync: Any, now: float | None = None) -> dict[str, Any]:
    """Build the bundle inside the daemon and leave it in `<data_dir>/exports/` for the CLI to fetch."""
    redactor = await redactor_for(settings, db, store)
    sections = {
        "versions": versions(),
        "status": status,
        "queue": await queue_summary(sync, db),
        "database": await database_summary(db),
        "disk": disk(settings),
        "config": settings.model_dump(mode="json"),
    }
    folder, content = build_bundle(sections, log_lines, redactor, mode="from the running daemon", now=now)
    out_dir = exports_dir(settings.data_dir)
    name = unique_name(out_dir, "diag", folder.removeprefix("sovterm-diag-"), ".tar.gz")
    await asyncio.to_thread(_write_private, out_dir / name, content)
    return {"name": name, "path": str(out_dir / name), "size": len(content)}


def offline_bundle(settings: Settings, reason: str, now: float | None = None) -> bytes:
    """The bundle the CLI makes when the daemon cannot be reached: files only, nothing decrypted."""
    redactor = base_redactor(settings)
    sections = {
        "versions": versions(),
        "status": {"daemon": "unreachable", "reason": reason},
        "database": offline_database_summary(settings.database_path),
        "disk": disk(settings),
        "config": settings.model_dump(mode="json"),
    }
    return build_bundle(sections, log_file_lines(settings.log_dir), redactor,
                        mode="offline: the daemon could not be reached", now=now)[1]


def _write_private(path: Path, content: bytes) -> None:
    with open(create_private(path), "wb") as fh:
        fh.write(content)
