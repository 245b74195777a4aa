"""`sovterm config export|import`: the settings the daemon keeps, as a signed JSON document.

What travels: `kv` entries (connection, wizard state, modes, link-key metadata...) except runtime state
(poll cursors, health probes); the rows of the settings tables (`btcpay_stores`, `qbo_mappings`, when
they exist); and secrets only as their AES-GCM ciphertexts, so the file is useless without the same key
file. QuickBooks tokens are left out: Intuit rotates them, so an old copy would only break the
connection; reconnect instead. The signature is HMAC-SHA256 under a key derived (HKDF) from the master
key, so any change to the file, or a file from another key, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sovterm.errors import UserFacingError
from sovterm.ops.backup import key_fingerprint
from sovterm.store.db import Database
from sovterm.store.keyring import CANARY
from sovterm.store.secrets import SecretBox

FORMAT = "sovterm-config"
FORMAT_VERSION = 1
HKDF_INFO = b"sovterm config export"
EXPORT_TABLES = ("btcpay_stores", "qbo_mappings")
SKIP_KV_PREFIXES = ("health.",)
SKIP_KV_PARTS = ("cursor",)
SKIP_SECRET_PREFIXES = (CANARY, "qbo:tokens:")
IGNORED_COLUMNS = {"updated_at"}  # a row whose other columns are equal is unchanged


def signing_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(master_key)


def canonical(document: dict[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(document: dict[str, Any], master_key: bytes) -> str:
    return hmac.new(signing_key(master_key), canonical(document), hashlib.sha256).hexdigest()


def _kv_exported(key: str) -> bool:
    return not key.startswith(SKIP_KV_PREFIXES) and not any(p in key for p in SKIP_KV_PARTS)


async def _tables(db: Database) -> list[str]:
    rows = await db.fetchall(
        f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({','.join('?' * len(EXPORT_TABLES))})",
        EXPORT_TABLES,
    )
    present = {r[0] for r in rows}
    return [t for t in EXPORT_TABLES if t in present]


async def _columns(db: Database, table: str) -> tuple[list[str], list[str]]:
    """(all columns, primary-key columns) of one of EXPORT_TABLES."""
    assert table in EXPORT_TABLES  # names are never taken from a document
    rows = await db.fetchall(f"PRAGMA table_info({table})")
    cols = [r[1] for r in rows]
    pk = [r[1] for r in sorted((r for r in rows if r[5]), key=lambda r: r[5])]
    return cols, pk


async def export_document(db: Database, master_key: bytes, *, version: str, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    kv = {
        r[0]: json.loads(r[1])
        for r in await db.fetchall("SELECT key, value FROM kv ORDER BY key")
        if _kv_exported(r[0])
    }
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in await _tables(db):
        cols, pk = await _columns(db, table)
        rows = await db.fetchall(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {', '.join(pk)}")
        tables[table] = [dict(zip(cols, row, strict=True)) for row in rows]
    secrets = {
        r[0]: base64.b64encode(r[1]).decode()
        for r in await db.fetchall("SELECT name, ciphertext FROM secrets ORDER BY name")
        if not r[0].startswith(SKIP_SECRET_PREFIXES)
    }
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sovterm_version": version,
        "schema_version": await db.schema_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "key_fingerprint": key_fingerprint(master_key),
        "kv": kv,
        "tables": tables,
        "secrets": secrets,
    }
    document["signature"] = sign(document, master_key)
    return document


def verify(document: Any, master_key: bytes) -> dict[str, Any]:
    """The document if it is an untouched export signed under this key; a clear refusal otherwise."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UserFacingError("this is not a sovterm config export", fix="pick a file made by `sovterm config export`")
    if document.get("format_version") != FORMAT_VERSION:
        raise UserFacingError(f"config export format {document.get('format_version')!r} is not known to this sovterm")
    given = document.get("signature")
    if not isinstance(given, str) or not hmac.compare_digest(given, sign(document, master_key)):
        ours = key_fingerprint(master_key)
        if document.get("key_fingerprint") not in (None, ours):
            raise UserFacingError(
                f"this export was signed under another key file (fingerprint {document.get('key_fingerprint')}; "
                f"this node's key is {ours}); its encrypted secrets would not open here either",
                fix="import it on the node it came from, or copy that node's sovterm.key here first "
                "(an export made before `sovterm secrets rotate` needs a new export)",
            )
        raise UserFacingError(
            "the export's signature does not match: the file was changed after it was exported",
            fix="export it again from the daemon and do not edit the file",
        )
    for section in ("kv", "tables", "secrets"):
        if not isinstance(document.get(section), dict):
            raise UserFacingError(f"the export has no {section} section")
    return document


async def plan_import(db: Database, box: SecretBox, document: dict[str, Any]) -> dict[str, Any]:
    """What importing would add or change (names and keys only, never values); removes nothing."""
    plan: dict[str, Any] = {"kv": {"added": [], "changed": []}, "tables": {}, "secrets": {"added": [], "changed": []},
                            "unchanged": 0, "skipped_tables": []}
    current_kv = {r[0]: json.loads(r[1]) for r in await db.fetchall("SELECT key, value FROM kv")}
    for key, value in sorted(document["kv"].items()):
        if key not in current_kv:
            plan["kv"]["added"].append(key)
        elif current_kv[key] != value:
            plan["kv"]["changed"].append(key)
        else:
            plan["unchanged"] += 1
    present = await _tables(db)
    for table, rows in sorted(document["tables"].items()):
        if table not in present:
            plan["skipped_tables"].append(table)
            continue
        cols, pk = await _columns(db, table)
        result = plan["tables"][table] = {"added": [], "changed": []}
        for row in rows:
            ident = "/".join(str(row.get(c)) for c in pk)
            if any(row.get(c) is None for c in pk):
                raise UserFacingError(f"a {table} row in the export has no {'/'.join(pk)}")
            current = await db.fetchone(
                f"SELECT {', '.join(cols)} FROM {table} WHERE " + " AND ".join(f"{c} = ?" for c in pk),
                [row[c] for c in pk],
            )
            if current is None:
                result["added"].append(ident)
            elif any(c in row and row[c] != v for c, v in zip(cols, current, strict=True) if c not in IGNORED_COLUMNS):
                result["changed"].append(ident)
            else:
                plan["unchanged"] += 1
    for name, blob64 in sorted(document["secrets"].items()):
        new = box.decrypt(base64.b64decode(blob64), name=name)  # proves it opens here before anything is written
        old = await db.fetchone("SELECT ciphertext FROM secrets WHERE name = ?", (name,))
        if old is None:
            plan["secrets"]["added"].append(name)
        elif box.decrypt(old[0], name=name) != new:
            plan["secrets"]["changed"].append(name)
        else:
            plan["unchanged"] += 1
    return plan


def plan_is_empty(plan: dict[str, Any]) -> bool:
    groups = [plan["kv"], plan["secrets"], *plan["tables"].values()]
    return not any(g["added"] or g["changed"] for g in groups)


def check_secrets_open(box: SecretBox, document: dict[str, Any]) -> None:
    """Inside the import's transaction (the write lock held, so no key rotation runs): the document's
    ciphertexts must open under the key now in use, or they would be stored under a key that is gone."""
    for name, blob64 in document["secrets"].items():
        try:
            box.decrypt(base64.b64decode(blob64), name=name)
        except UserFacingError:
            raise UserFacingError(
                "the key file was rotated while this export was being imported; its secrets no longer open",
                fix="make a new export (`sovterm config export`) and import that",
            ) from None


async def apply_import(db: Database, document: dict[str, Any], conn: Any) -> None:
    """Upsert everything in the (verified) document inside the caller's transaction."""
    now = int(time.time())
    for key, value in document["kv"].items():
        await conn.execute(
            "INSERT INTO kv(key, value, updated_at) VALUES(?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value), now),
        )
    present = await _tables(db)
    for table, rows in document["tables"].items():
        if table not in present:
            continue
        cols, pk = await _columns(db, table)
        for row in rows:
            use = [c for c in cols if c in row]
            if "updated_at" in cols and "updated_at" not in use:
                use.append("updated_at")
            values = [row.get(c, now) if c == "updated_at" else row[c] for c in use]
            updates = ", ".join(f"{c} = excluded.{c}" for c in use if c not in pk)
            await conn.execute(
                f"INSERT INTO {table}({', '.join(use)}) VALUES({', '.join('?' * len(use))}) "
                f"ON CONFLICT({', '.join(pk)}) DO UPDATE SET {updates}",
                values,
            )
    for name, blob64 in document["secrets"].items():
        await conn.execute(
            "INSERT INTO secrets(name, ciphertext, updated_at) VALUES(?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            (name, base64.b64decode(blob64), now),
        )
