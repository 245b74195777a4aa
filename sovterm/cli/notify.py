"""`sovterm notify ...`: where alerts are sent (apprise URLs, stored encrypted and never shown)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from sovterm.cli.core import Adder, CommandError, call, emit, group


def format_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no notification destinations (add one: sovterm notify add NAME URL)"
    lines = []
    for r in rows:
        last = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last_sent_at"])) if r.get("last_sent_at") else "never"
        extra = [f"last sent {last}", f"{r['sent']} sent"]
        for key, label in (("queued", "queued"), ("held_back", "held back by the hourly limit"),
                           ("given_up", "given up"), ("dropped", "dropped from a full queue")):
            if r.get(key):
                extra.append(f"{r[key]} {label}")
        if r.get("last_error"):
            extra.append(f"last error: {r['last_error']}")
        lines.append(f"{r['name']:<16} {r['service'] + '://…':<14} {r['min_severity'] + ' and worse':<18} "
                     f"{r['state']:<9} {'; '.join(extra)}")
    return "\n".join(lines)


def _url(value: str) -> str:
    """`-` reads the URL from standard input, so its tokens stay out of the shell history and `ps`."""
    url = sys.stdin.readline().strip() if value == "-" else value.strip()
    if not url:
        raise CommandError("no URL given (pass it, or - and the URL on standard input)", 2)
    return url


def cmd_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    row = call(args, environ, "notify.add", name=args.name, url=_url(args.url), min_severity=args.min_severity)
    emit(args, row, lambda r: f"added {r['name']} ({r['service']}://…, {r['min_severity']} and worse); "
                              f"try it: sovterm notify test {r['name']}")
    return 0


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "notify.list"), format_list)
    return 0


def cmd_remove(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    emit(args, call(args, environ, "notify.remove", name=args.name), lambda r: f"removed {r['removed']}")
    return 0


def cmd_test(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = call(args, environ, "notify.test", name=args.name)
    emit(args, result, lambda r: f"{r['name']}: delivered" if r["delivered"] else f"{r['name']}: NOT delivered "
                                 f"({r['error']})")
    return 0 if result["delivered"] else 1


def add_commands(sub: Any, add: Adder) -> None:
    notify = group(sub, "notify", "where alerts are sent: phone, mail, chat (apprise URLs)")
    p = add("add", cmd_add, "add or replace a destination (its URL is stored encrypted)", json_flag=True,
            parent=notify)
    p.add_argument("name", help="a short name for it (phone, ops-mail...)")
    p.add_argument("url", help="apprise URL (ntfy://..., mailtos://..., tgram://..., json://...), or - to read it "
                               "from standard input")
    p.add_argument("--min-severity", default="warning", choices=("error", "warning", "info"),
                   help="the least severe alert sent there (default: warning)")
    add("list", cmd_list, "list the destinations and how delivery goes (never their URLs)", json_flag=True,
        parent=notify)
    p = add("remove", cmd_remove, "remove a destination", json_flag=True, parent=notify)
    p.add_argument("name")
    p = add("test", cmd_test, "send a test message to a destination now", json_flag=True, parent=notify)
    p.add_argument("name")
