"""The ops part: the status page route and the control methods for backups, config export/import
and support bundles. It has no service of its own; everything runs on the daemon's shared services.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from pydantic import BaseModel, Field

from sovterm import __version__
from sovterm.alerts import BACKUP_KEY
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer, Result
from sovterm.ops import backup, config_export, diag, files
from sovterm.parts.base import Part
from sovterm.parts.core import daemon_status
from sovterm.services import Services
from sovterm.store import kv
from sovterm.web.status import add_routes

KEY_WARNING = (
    "this backup contains the key file: anyone who has it can read the stored API keys and tokens. "
    "Keep it encrypted or offline, away from the node (or use --without-key and back up sovterm.key separately)."
)


class BackupParams(BaseModel):
    include_key: bool = True


class FetchParams(BaseModel):
    name: str
    offset: int = Field(0, ge=0)


class NameParams(BaseModel):
    name: str


class ImportParams(BaseModel):
    document: dict[str, Any]
    apply: bool = False


class DatabaseFile(Result):
    name: str
    size: int
    sha256: str


class ArtefactHeader(Result):
    """What every backup and export says about itself: which format, made by which sovterm from which
    schema, when, and for which key."""

    format: str
    format_version: int
    sovterm_version: str
    schema_version: int
    created: str
    key_fingerprint: str


class BackupManifest(ArtefactHeader):
    includes_key: bool
    database: DatabaseFile


class BackupCreated(Result):
    name: str
    path: str
    size: int
    sha256: str
    manifest: BackupManifest
    warning: str | None  # set when the backup holds the key file


class Chunk(Result):
    data: str  # base64
    offset: int
    size: int
    eof: bool


class ArtefactRemoved(Result):
    removed: str


class ConfigExport(ArtefactHeader):
    """A signed export: settings and mappings, secrets only as ciphertext (base64)."""

    kv: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    secrets: dict[str, str]
    signature: str


class Changes(Result):
    added: list[str]
    changed: list[str]


class ImportPlan(Result):
    """What importing would add or change (names and keys only, never values)."""

    kv: Changes
    tables: dict[str, Changes]
    secrets: Changes
    unchanged: int
    skipped_tables: list[str]


class Imported(Result):
    plan: ImportPlan
    applied: bool
    nothing_to_do: bool


class Bundle(Result):
    name: str
    path: str
    size: int


def register(server: ControlServer, services: Services) -> None:
    data_dir = services.settings.data_dir

    @server.method("backup.create", role=Role.ADMIN, params=BackupParams, audit="backup.create")
    async def backup_create(ctx: CallContext, include_key: bool) -> BackupCreated:
        """Make a consistent backup of the database (and key file) in <data_dir>/exports."""
        ctx.audit(detail={"includes_key": include_key})
        result = await backup.create_backup(
            services.require_db(), data_dir, include_key=include_key, version=__version__
        )
        ctx.audit(subject=result["name"], detail={"includes_key": include_key, "size": result["size"]})
        # the newest backup, for the "no backup for a week" alert (docs/alerts.md); copied out or not, it was made
        await kv.put(services.require_db(), BACKUP_KEY, {"at": time.time(),
                                                         "name": result["name"], "includes_key": include_key})
        return BackupCreated(**result, warning=KEY_WARNING if include_key else None)

    @server.method("ops.fetch", role=Role.ADMIN, params=FetchParams)
    async def ops_fetch(ctx: CallContext, name: str, offset: int) -> Chunk:
        """A chunk of a backup or support bundle, so the CLI can copy it out of the data directory."""
        path = files.artefact_path(data_dir, name)
        size = path.stat().st_size
        chunk = files.read_chunk(path, offset)
        return Chunk(data=base64.b64encode(chunk).decode(), offset=offset, size=size, eof=offset + len(chunk) >= size)

    @server.method("ops.remove", role=Role.ADMIN, params=NameParams)
    async def ops_remove(ctx: CallContext, name: str) -> ArtefactRemoved:
        """Delete a backup or support bundle from <data_dir>/exports (after it was copied out)."""
        files.artefact_path(data_dir, name).unlink()
        return ArtefactRemoved(removed=name)

    @server.method("config.export", role=Role.ADMIN, audit="config.export")
    async def config_export_method(ctx: CallContext) -> ConfigExport:
        """Settings and mappings as a signed document; secrets only as ciphertext."""
        key, _ = backup.read_key(data_dir)
        document = await config_export.export_document(services.require_db(), key, version=__version__)
        ctx.audit(detail={"kv": len(document["kv"]), "secrets": len(document["secrets"])})
        return ConfigExport.model_validate(document)

    @server.method("config.import", role=Role.ADMIN, params=ImportParams, audit="config.import")
    async def config_import(ctx: CallContext, document: dict[str, Any], apply: bool) -> Imported:
        """Verify a config export and say what it would change; with apply, change it."""
        ctx.audit(detail={"apply": apply})
        db = services.require_db()
        key, _ = backup.read_key(data_dir)
        config_export.verify(document, key)
        plan = await config_export.plan_import(db, services.require_secrets().box, document)
        empty = config_export.plan_is_empty(plan)
        if not apply or empty:
            ctx.skip_audit()  # a dry run changed nothing
        else:
            async with db.transaction() as conn:
                config_export.check_secrets_open(services.require_secrets().box, document)
                await config_export.apply_import(db, document, conn)
                ctx.audit(subject=document.get("created"), detail=_counts(plan))
                await ctx.write_audit(conn)
        return Imported(plan=ImportPlan.model_validate(plan), applied=apply and not empty, nothing_to_do=empty)

    @server.method("diag.create", role=Role.ADMIN)
    async def diag_create(ctx: CallContext) -> Bundle:
        """Build a redacted support bundle in <data_dir>/exports."""
        ring = services.logs.ring
        lines = [line for _, line in ring.recent(diag.LOG_LINES)]
        return Bundle.model_validate(await diag.daemon_bundle(
            services.settings, services.require_db(), services.require_secrets(),
            status=(await daemon_status(services)).model_dump(mode="json"), log_lines=lines,
            sync=getattr(services, "sync", None),
        ))


def _counts(plan: dict[str, Any]) -> dict[str, int]:
    groups = {"kv": plan["kv"], "secrets": plan["secrets"], **plan["tables"]}
    return {name: len(g["added"]) + len(g["changed"]) for name, g in groups.items()}


PART = Part("ops", routes=add_routes, methods=register)
