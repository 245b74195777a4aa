"""The commands that do their work in this process instead of asking the daemon: run the daemon, the TUI,
the demo, check the configuration, restore a backup, write a support bundle without a daemon.

Only these need the daemon's stack (pydantic settings, the store, aiohttp, Textual), and each imports it
inside the command, so that every other command, and `sovterm --help`, answers at once. The import
contract "The CLI's daemon-talking commands ..." in pyproject.toml lets this module alone reach them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sovterm.cli.core import EXIT_CONFIG, Adder, CommandError, emit, group, socket_path
from sovterm.errors import UserFacingError

if TYPE_CHECKING:
    from sovterm.config import Settings


def settings_from(args: argparse.Namespace, environ: Mapping[str, str], *, client: bool = True) -> Settings:
    """The whole validated configuration, for the commands that act on it here."""
    from sovterm.config import load_settings

    try:
        return load_settings(args.config, environ, client=client)
    except UserFacingError as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None


def cmd_daemon(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from sovterm.daemon import run

    return run(args.config, environ)


def cmd_tui(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    path = socket_path(args, environ)
    from sovterm.tui.app import run_tui

    return run_tui(path)


def cmd_demo(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from sovterm.demo import run_demo

    return run_demo(environ, headless=args.no_tui, seconds=args.seconds)


def cmd_config_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    settings = settings_from(args, environ, client=False)
    if args.json:
        print(json.dumps({"ok": True, "source": settings.source, "settings": settings.model_dump(mode="json")}, indent=2))
    else:
        print(f"configuration OK ({settings.source})")
        print(f"  data dir        {settings.data_dir}")
        print(f"  listener        {settings.listener.host}:{settings.listener.port} (public {settings.public_url})")
        print(f"  control socket  {settings.socket_path}")
        print(f"  btcpay          {settings.btcpay.url or 'not set (configure with `sovterm setup btcpay`)'}")
        print(f"  qbo             {settings.qbo.environment}, client id {'set' if settings.qbo.client_id else 'not set'}")
    return 0


def cmd_backup_restore(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from sovterm.ops import backup

    data_dir = Path(args.data_dir) if args.data_dir else settings_from(args, environ, client=False).data_dir
    result = backup.restore_backup(Path(args.path), data_dir, force=args.force)
    emit(args, result, lambda r: "\n".join([
        f"restored {r['database']} (schema v{r['schema_version']}, backup of {r['created']})",
        f"  key: {r['key']} (fingerprint {r['key_fingerprint']})",
        *([f"  the previous files were moved to {r['moved_aside']}"] if r["moved_aside"] else []),
        "Start the daemon now (`systemctl start sovterm`, or start the app); it migrates the database if needed.",
    ]))
    return 0


def offline_diag(args: argparse.Namespace, environ: Mapping[str, str], output: Path, reason: str) -> dict[str, Any]:
    """A support bundle made here from the files, for when the daemon cannot be reached (`reason`)."""
    import os

    from sovterm.ops import diag, files

    settings = settings_from(args, environ)
    with os.fdopen(files.create_private(output), "wb") as fh:
        fh.write(diag.offline_bundle(settings, reason))
    return {"path": str(output)}


def add_commands(sub: Any, add: Adder) -> None:
    add("daemon", cmd_daemon, "run the daemon in the foreground (systemd runs this)")
    add("tui", cmd_tui, "open the terminal UI attached to the running daemon")
    demo = add("demo", cmd_demo, "run everything on simulated BTCPay and QuickBooks in a temporary directory")
    demo.add_argument("--no-tui", action="store_true", help="print sync progress instead of opening the TUI")
    demo.add_argument("--seconds", type=float, default=None, help="with --no-tui: stop after this long")
    config = group(sub, "config", "configuration tools")
    add("check", cmd_config_check, "validate the configuration and show what it resolves to", json_flag=True,
        parent=config)
