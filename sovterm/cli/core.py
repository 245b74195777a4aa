"""The spine's commands (status, logs, secrets, reload, audit, loops) and the helpers every command module
shares: `call` (one control-socket call with clear failures) and `emit`. The daemon, TUI, demo and
`config check` run in this process and live in `cli.local`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sovterm import config_source
from sovterm.control.blocking import BlockingClient
from sovterm.control.errors import CallFailed, DaemonUnavailable
from sovterm.errors import UserFacingError
from sovterm.formatting import age

Adder = Callable[..., argparse.ArgumentParser]

EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 1, 2, 3


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def socket_path(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    """The daemon's control socket, from --config, $SOVTERM_CONFIG or the defaults (nothing else of the
    configuration is validated here: the daemon does that)."""
    try:
        return config_source.socket_path(args.config, environ)
    except UserFacingError as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None


@contextmanager
def connected(args: argparse.Namespace, environ: Mapping[str, str]) -> Iterator[BlockingClient]:
    """A connection to the daemon; failures become a clear message and exit status."""
    path = socket_path(args, environ)
    try:
        with BlockingClient.connect(path) as client:
            yield client
    except DaemonUnavailable as exc:
        raise CommandError(str(exc), EXIT_UNREACHABLE) from None
    except CallFailed as exc:
        raise CommandError(exc.message) from None


def call(args: argparse.Namespace, environ: Mapping[str, str], method: str, **params: Any) -> Any:
    """One control-socket call, turning failures into a clear message and exit status."""
    with connected(args, environ) as client:
        return client.call(method, **params)


def group(sub: Any, name: str, help: str) -> Any:
    """A command with sub-commands (`sovterm setup btcpay`); a second call with the same name returns
    the same group, so several parts can add verbs to `setup` or `config`."""
    groups = sub.__dict__.setdefault("_sovterm_groups", {})
    if name not in groups:
        groups[name] = sub.add_parser(name, help=help, description=help).add_subparsers(
            dest=f"{name}_cmd", required=True, metavar="COMMAND"
        )
    return groups[name]


def setup_group(sub: Any) -> Any:
    """The shared `sovterm setup <step>` group; each part adds its steps to it."""
    return group(sub, "setup", "connect and configure (each step is also a wizard page in the TUI)")


def emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> None:
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else human(data))


# ---- formatting -------------------------------------------------------------------------------


def store_settings_text(store: dict[str, Any]) -> str:
    """One line on how a followed store is booked: mode, accounts and class, and which key serves it."""
    mode = store.get("mode") or "?"
    if mode == "deposit":
        mode += f" as {store.get('deposit_as')}"
    if store.get("mode_source") == "default":
        mode += " (the default mode)"
    mapping = store.get("mapping")
    if mapping:
        books = (f"into {mapping['deposit_account']!r}, income {mapping['income_account']!r}, "
                 + (f"class {mapping['class']!r}" if mapping.get("class") else "no class"))
    else:
        books = f"no QuickBooks mapping (`sovterm setup accounts --store {store['id']}`)"
    key = "its own API key" if store.get("api_key") == "own" else "the server-wide API key"
    if store.get("api_key_label"):
        key += f" {store['api_key_label']!r}"
    return f"{mode} mode, {books}; {key}"


def format_status(st: dict[str, Any]) -> str:
    checks = st["checks"]
    lines = [
        (f"sovterm {st['version']}  pid {st['pid']}  up {st['uptime_s']:.0f} s  "
         f"{'READY' if st['ready'] else 'NOT READY'}"),
        f"  data dir   {st['data_dir']}  (schema v{st['schema_version']})",
        f"  config     {st['config']}",
        f"  listener   {st['listener']}",
        f"  database   {checks.get('database')}",
        f"  disk free  {checks.get('disk_free_mb')} MB" + (f"  ({checks['disk']})" if "disk" in checks else ""),
    ]
    connectors = checks.get("connectors") or {}
    for name, c in sorted(connectors.items()):
        lines.append(f"  {name:<10} {c['state']}" + (f": {c['detail']}" if c.get("detail") else ""))
    for store in st.get("stores") or []:
        lines.append(f"  store      {store['name']!r} ({store['id']}): {store_settings_text(store)}"
                     + ("" if store.get("webhook") else ", no webhook (polling only)"))
        if store.get("error"):
            lines.append(f"             last poll failed: {store['error']}")
    for name, loop in sorted((checks.get("loops") or {}).items()):
        flag = "ok" if loop["fresh"] else "STALE"
        if loop.get("paused"):
            flag = "PAUSED"
        summary = st.get("last_runs", {}).get(name, {}).get("summary")
        lines.append(
            f"  loop {name:<8} {flag:<6} every {loop['interval_s']:.0f} s, last run "
            f"{age(loop['last_run_age_s'])}" + (f"  {json.dumps(summary)}" if summary else "")
        )
    lines += format_alerts(st["alerts"], time.time())
    return "\n".join(lines)


def format_alerts(alerts: list[dict[str, Any]], now: float) -> list[str]:
    """The daemon's alerts (worked out in `sovterm.alerts`), worst first, each with what to do."""
    if not alerts:
        return ["  alerts     none: nothing needs attention"]
    lines = [f"  alerts     {len(alerts)}:"]
    for a in alerts:
        lines.append(f"    {a['severity'].upper():<7} {a['text']}  (first seen {age(now - a['since'])})")
        lines.append(f"            {a['fix']}")
    return lines


def format_log_line(line: dict[str, Any]) -> str:
    cids = [line["cid"]] if line.get("cid") else line.get("cids") or []
    extra = f" [{','.join(cids)}]" if cids else ""
    return f"{line.get('ts', '')} {line.get('level', ''):<7} {line.get('component', ''):<10}{extra} {line.get('msg', '')}"


# ---- commands -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    st = call(args, environ, "status")
    emit(args, st, format_status)
    return 0 if st["ready"] else EXIT_FAILED


def cmd_version(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from sovterm import __version__  # read from the package metadata only when asked (40 ms)

    print(f"sovterm {__version__}")
    return 0


def cmd_logs(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    params = {"lines": args.lines, "follow": args.follow, "level": args.level,
              "component": args.component, "search": args.grep, "cid": args.cid}

    def show(line: dict[str, Any]) -> None:
        print(json.dumps(line) if args.json else format_log_line(line), flush=True)

    try:
        with connected(args, environ) as client:
            for line in client.call("logs.tail", **params)["lines"]:
                show(line)
            if args.follow:
                for note in client.notifications():
                    if note["method"] == "logs.line":
                        show(note["params"])
                    elif note["method"] == "events.missed":
                        print(f"... {note['params']['count']} lines skipped (terminal too slow)", file=sys.stderr)
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_secrets_rotate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "secrets.rotate")
    emit(args, result, lambda r: (
        f"re-encrypted {r['reencrypted']} secret(s) under a new key.\n"
        f"Back up the new key file now: {r['key_file']} (old backups of the key no longer open this database)."
    ))
    return 0


def cmd_reload(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "daemon.reload")
    if result.get("error"):
        raise CommandError(f"reload refused: {result['error']}", EXIT_CONFIG)
    emit(args, result, lambda r: (
        f"applied: {', '.join(r['applied']) or 'nothing'}\n"
        f"needs a restart: {', '.join(r['restart_needed']) or 'nothing'}"
    ))
    return 0


def cmd_db_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "db.check")
    emit(args, result, lambda r: "database: ok (SQLite integrity_check)" if r["ok"] else (
        "database: DAMAGED\n" + "\n".join(f"  {p}" for p in r["problems"]) + f"\nfix: {r['fix']}"
    ))
    return 0 if result["ok"] else EXIT_FAILED


def cmd_audit(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = call(args, environ, "audit.list", limit=args.limit)
    emit(args, rows, lambda rs: "\n".join(
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['at']))}  {r['actor']:<12} "
        f"{r['action']:<18} {r['subject'] or '-':<24} {r['outcome']}  {json.dumps(r['detail'])}"
        for r in rs
    ) or "no audit entries")
    return 0


# ---- registration -------------------------------------------------------------------------------


def add_commands(sub: Any, add: Adder) -> None:
    add("status", cmd_status, "show the daemon's state (exit 1 when not ready)", json_flag=True)
    add("version", cmd_version, "print the version")
    logs = add("logs", cmd_logs, "show the daemon's recent log lines", json_flag=True)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=100, help="how many recent lines (default 100)")
    logs.add_argument("--level", default="DEBUG", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="lowest level shown")
    logs.add_argument("--component", help="only this component (btcpay, qbo, sync, ...)")
    logs.add_argument("--grep", help="only lines containing this text")
    logs.add_argument("--cid", help="only lines of one correlation id: an invoice id (its webhooks, re-reads and "
                                    "sync job), link:<id> (pay-link clicks), loop:<name> (loop runs)")
    secrets = group(sub, "secrets", "encrypted secrets")
    add("rotate", cmd_secrets_rotate, "re-encrypt every stored secret under a new key", json_flag=True, parent=secrets)
    add("reload", cmd_reload, "make the daemon re-read its configuration (same as SIGHUP)", json_flag=True)
    db = group(sub, "db", "the database")
    add("check", cmd_db_check, "full integrity check of the database (SQLite integrity_check)", json_flag=True,
        parent=db)
    audit = add("audit", cmd_audit, "show the audit trail (who did what)", json_flag=True)
    audit.add_argument("--limit", type=int, default=100)
    loops = group(sub, "loops", "the daemon's scheduled loops")
    for verb, method, text in (("run", "loops.run", "run a loop now"), ("pause", "loops.pause", "pause a loop"),
                               ("resume", "loops.resume", "resume a paused loop")):
        p = add(verb, cmd_loops, text, json_flag=True, parent=loops)
        p.add_argument("name", help="loop name (see `sovterm status`)")
        p.set_defaults(method=method)


def cmd_loops(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, args.method, name=args.name)
    emit(args, result, lambda r: ", ".join(f"{k}: {v}" for k, v in r.items()))
    return 0
