"""The ops part: the status page route and the control methods for backups, config export/import
and support bundles. It has no service of its own; everything runs on the daemon's shared services.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import BaseModel, Field

from sovterm import __version__
from sovterm.parts.core import daemon_status
from sovterm.control.roles import Role
from sovterm.control.server import CallContext, ControlServer
from sovterm.errors import UserFacingError
from sovterm.ops import backup, config_export, diag, files
from sovterm.parts.base import Part
from sovterm.services import Services
from sovterm.store import audit
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


def register(server: ControlServer, services: Services) -> None:
    data_dir = services.settings.data_dir

    @server.method("backup.create", role=Role.ADMIN, params=BackupParams)
    async def backup_create(ctx: CallContext, include_key: bool) -> dict[str, Any]:
        """Make a consistent backup of the database (and key file) in <data_dir>/exports."""
        result = await backup.create_backup(
            services.require_db(), data_dir, include_key=include_key, version=__version__
        )
        await audit.record(services.require_db(), ctx.peer.user, "backup.create", result["name"],
                           {"includes_key": include_key, "size": result["size"]}, "ok")
        return {**result, "warning": KEY_WARNING if include_key else None}

    @server.method("ops.fetch", role=Role.ADMIN, params=FetchParams)
    async def ops_fetch(ctx: CallContext, name: str, offset: int) -> dict[str, Any]:
        """A chunk of a backup or support bundle, so the CLI can copy it out of the data directory."""
        path = files.artefact_path(data_dir, name)
        size = path.stat().st_size
        chunk = files.read_chunk(path, offset)
        return {"data": base64.b64encode(chunk).decode(), "offset": offset, "size": size,
                "eof": offset + len(chunk) >= size}

    @server.method("ops.remove", role=Role.ADMIN, params=NameParams)
    async def ops_remove(ctx: CallContext, name: str) -> dict[str, Any]:
        """Delete a backup or support bundle from <data_dir>/exports (after it was copied out)."""
        files.artefact_path(data_dir, name).unlink()
        return {"removed": name}

    @server.method("config.export", role=Role.ADMIN)
    async def config_export_method(ctx: CallContext) -> dict[str, Any]:
        """Settings and mappings as a signed document; secrets only as ciphertext."""
        key, _ = backup.read_key(data_dir)
        document = await config_export.export_document(services.require_db(), key, version=__version__)
        await audit.record(services.require_db(), ctx.peer.user, "config.export", None,
                           {"kv": len(document["kv"]), "secrets": len(document["secrets"])}, "ok")
        return document

    @server.method("config.import", role=Role.ADMIN, params=ImportParams)
    async def config_import(ctx: CallContext, document: dict[str, Any], apply: bool) -> dict[str, Any]:
        """Verify a config export and say what it would change; with apply, change it."""
        db = services.require_db()
        key, _ = backup.read_key(data_dir)
        try:
            config_export.verify(document, key)
        except UserFacingError:
            await audit.record(db, ctx.peer.user, "config.import", None, {"apply": apply}, "refused")
            raise
        plan = await config_export.plan_import(db, services.require_secrets().box, document)
        empty = config_export.plan_is_empty(plan)
        if apply and not empty:
            async with db.transaction() as conn:
                await config_export.apply_import(db, document, conn)
                await audit.record(db, ctx.peer.user, "config.import", document.get("created"),
                                   _counts(plan), "ok", conn=conn)
        return {"plan": plan, "applied": apply and not empty, "nothing_to_do": empty}

    @server.method("diag.create", role=Role.ADMIN)
    async def diag_create(ctx: CallContext) -> dict[str, Any]:
        """Build a redacted support bundle in <data_dir>/exports."""
        ring = services.logs.ring
        lines = [line for _, line in ring.recent(diag.LOG_LINES)]
        return await diag.daemon_bundle(
            services.settings, services.require_db(), services.require_secrets(),
            status=(await daemon_status(services)).model_dump(mode="json"), log_lines=lines, sync=getattr(services, "sync", None),
        )


def _counts(plan: dict[str, Any]) -> dict[str, int]:
    groups = {"kv": plan["kv"], "secrets": plan["secrets"], **plan["tables"]}
    return {name: len(g["added"]) + len(g["changed"]) for name, g in groups.items()}


PART = Part("ops", routes=add_routes, methods=register)
