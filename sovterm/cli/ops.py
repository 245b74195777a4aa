"""`sovterm backup create|restore`, `sovterm config export|import`, `sovterm diag`."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sovterm.cli import core
from sovterm.cli.core import CommandError
from sovterm.cli.local import cmd_backup_restore, offline_diag
from sovterm.control.blocking import BlockingClient
from sovterm.control.errors import CallFailed, DaemonUnavailable


def _create_and_copy(client: BlockingClient, method: str, params: dict[str, Any], output: Path | None) -> dict[str, Any]:
    """Ask the daemon to make an artefact; with `output`, copy it out chunk by chunk and delete it there."""
    made = client.call(method, **params)
    if output is None:
        return made
    from sovterm.ops import files  # hashlib and the store's lock: only when copying out

    fd = files.create_private(output)
    try:
        with os.fdopen(fd, "wb") as out:
            offset = 0
            while True:
                chunk = client.call("ops.fetch", name=made["name"], offset=offset)
                data = base64.b64decode(chunk["data"])
                out.write(data)
                offset += len(data)
                if chunk["eof"] or not data:
                    break
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    client.call("ops.remove", name=made["name"])
    return {**made, "path": str(output), "copied_from_node": True}


def cmd_backup_create(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    output = Path(args.output) if args.output else None
    with core.connected(args, environ) as client:
        result = _create_and_copy(client, "backup.create", {"include_key": not args.without_key}, output)

    def human(r: dict[str, Any]) -> str:
        m = r["manifest"]
        lines = [
            f"backup written: {r['path']} ({r['size']} bytes, mode 0600)",
            f"  schema v{m['schema_version']}, made {m['created']}, key fingerprint {m['key_fingerprint']}",
            f"  sha256 {r['sha256']}",
        ]
        if not r.get("copied_from_node"):
            lines.append("  (it stays on the node; use --output PATH to copy it out and remove it there)")
        if r.get("warning"):
            lines.append(f"WARNING: {r['warning']}")
        else:
            lines.append(f"The key file is NOT in this backup: keep sovterm.key (fingerprint {m['key_fingerprint']}) "
                         "safe separately; a restore needs it.")
        return "\n".join(lines)

    core.emit(args, result, human)
    return 0


def cmd_config_export(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    document = core.call(args, environ, "config.export")
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output:
        from sovterm.ops import files

        with os.fdopen(files.create_private(Path(args.output)), "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"config export written: {args.output} ({len(document['kv'])} settings, "
              f"{sum(len(r) for r in document['tables'].values())} table rows, "
              f"{len(document['secrets'])} encrypted secrets; signed, key fingerprint {document['key_fingerprint']})",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def format_plan(result: dict[str, Any]) -> str:
    plan = result["plan"]
    lines: list[str] = []

    def group(title: str, g: dict[str, list[str]]) -> None:
        for verb in ("added", "changed"):
            for item in g[verb]:
                lines.append(f"  {'+' if verb == 'added' else '~'} {title} {item}")

    group("setting", plan["kv"])
    for table, g in plan["tables"].items():
        group(table, g)
    group("secret", plan["secrets"])
    if result["nothing_to_do"]:
        return f"nothing to change ({plan['unchanged']} entries already identical)"
    head = "applied:" if result["applied"] else "this import would change (+ add, ~ replace; nothing is removed):"
    tail = ("restart the daemon so every part reloads its settings (`systemctl restart sovterm`)"
            if result["applied"] else "run again with --yes to apply")
    skipped = [f"  (skipped {t}: no such table in this database)" for t in plan["skipped_tables"]]
    return "\n".join([head, *lines, *skipped, f"  {plan['unchanged']} entries unchanged", tail])


def cmd_config_import(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    try:
        document = json.loads(Path(args.path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {args.path}: {exc.strerror}") from None
    except ValueError:
        raise CommandError(f"{args.path} is not a JSON config export (was it edited or truncated?)") from None
    result = core.call(args, environ, "config.import", document=document, apply=args.yes)
    core.emit(args, result, format_plan)
    return 0


def cmd_diag(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    output = Path(args.output or f"sovterm-diag-{stamp}.tar.gz")
    path = core.socket_path(args, environ)
    try:
        with BlockingClient.connect(path) as client:
            result = _create_and_copy(client, "diag.create", {}, output)
        mode = "from the running daemon"
    except DaemonUnavailable as exc:
        result, mode = offline_diag(args, environ, output, exc.message), f"offline (daemon not reachable: {exc.message})"
    except CallFailed as exc:
        raise CommandError(exc.message) from None
    core.emit(args, {**result, "mode": mode}, lambda r: (
        f"support bundle written: {r['path']} ({mode})\n"
        "Secrets and personal data are redacted (see README.txt inside); look through it before sending it."
    ))
    return 0


def add_commands(sub: Any, add: core.Adder) -> None:
    group = core.group(sub, "backup", "back up and restore the database and key file")
    create = add("create", cmd_backup_create, "make a consistent backup while the daemon runs",
                 json_flag=True, parent=group)
    create.add_argument("--output", "-o", help="copy the backup to this path (default: keep it in <data_dir>/exports)")
    key = create.add_mutually_exclusive_group()
    key.add_argument("--include-key", action="store_true", default=True,
                     help="put the key file in the backup (default; store the backup safely)")
    key.add_argument("--without-key", action="store_true", help="leave the key file out (back it up separately)")
    restore = add("restore", cmd_backup_restore, "restore a backup into the data directory (daemon stopped)",
                  json_flag=True, parent=group)
    restore.add_argument("path", help="the backup file (.tar)")
    restore.add_argument("--data-dir", help="restore here instead of the configured data_dir")
    restore.add_argument("--force", action="store_true", help="move an existing database (and other key) aside")

    config = core.group(sub, "config", "configuration tools")
    export = add("export", cmd_config_export, "write settings and mappings as a signed JSON file", parent=config)
    export.add_argument("--output", "-o", help="write to this file (mode 0600) instead of standard output")
    imp = add("import", cmd_config_import, "show what a config export would change; apply with --yes",
              json_flag=True, parent=config)
    imp.add_argument("path", help="a file made by `sovterm config export`")
    imp.add_argument("--yes", action="store_true", help="apply the changes")

    d = add("diag", cmd_diag, "write a redacted support bundle (tar.gz)", json_flag=True)
    d.add_argument("--output", "-o", help="bundle path (default: ./sovterm-diag-<time>.tar.gz)")
