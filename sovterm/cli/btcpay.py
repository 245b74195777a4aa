"""`sovterm setup btcpay` and `sovterm btcpay ...`: the BTCPay connection from a script or a shell.

The API key never goes on the command line if you can help it: `--api-key-file FILE` or
`--api-key -` (read from stdin) keep it out of shell history and `ps`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sovterm.btcpay.permissions import DEFAULT_FEATURES, FEATURE_PERMISSIONS
from sovterm.cli import core
from sovterm.cli.core import EXIT_CONFIG, EXIT_FAILED, CommandError

SETUP_HELP = "connect BTCPay Server: check the API key's permissions, follow stores, register their webhooks"
SETUP_EPILOG = f"""\
The API key: create it in BTCPay under Account > API keys, scoped to your store. To keep it out of
your shell history, prefer --api-key-file FILE or --api-key - (reads one line from stdin, e.g.
`pass show btcpay | sovterm setup btcpay --url URL --api-key -`).

Features (--features, comma separated; default {','.join(DEFAULT_FEATURES)}) decide which
permissions (btcpay.store.*) the key needs:
{chr(10).join(f"  {f:<17} {', '.join(p.removeprefix('btcpay.store.') for p in ps)}"
              for f, ps in FEATURE_PERMISSIONS.items())}

Several stores: each --store is added to the stores already followed (none is dropped; stop following one
with `sovterm btcpay unfollow STORE`). Once connected, `sovterm setup btcpay --store ID` alone adds a store
with the stored key. A store may have its own key, e.g. one its owner scoped to that store alone:
`sovterm setup btcpay --store ID --store-key --api-key-file FILE` checks that key against that store,
keeps it encrypted for it, and uses it for every call about it; the other stores keep the server-wide key.
Each store then gets its own mode (`sovterm setup mode MODE --store ID`) and its own accounts and class
(`sovterm setup accounts --store ID ...`).

Exit status: 0 connected; 1 a required permission is missing or BTCPay refused; 2 several stores and
no --store (they are listed), or bad usage; 3 the daemon is not running."""


def _key_given(args: argparse.Namespace) -> bool:
    return bool(args.api_key or args.api_key_file)


def _read_api_key(args: argparse.Namespace) -> str:
    if args.api_key_file and args.api_key:
        raise CommandError("give --api-key or --api-key-file, not both", EXIT_CONFIG)
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"cannot read the API key file {args.api_key_file}: {exc.strerror}", EXIT_CONFIG) from None
    elif args.api_key == "-":
        key = sys.stdin.readline().strip()
    elif args.api_key:
        key = args.api_key.strip()
    else:
        raise CommandError("the API key is required: --api-key-file FILE, --api-key - (stdin) or --api-key KEY", EXIT_CONFIG)
    if not key:
        raise CommandError("the API key is empty", EXIT_CONFIG)
    return key


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"BTCPay Server {report.get('server_version') or '?'} at {report['url']}: reachable, "
        f"API key {report.get('key_label') or '(no label)'!r} accepted",
        "Permissions granted to the key:",
        *(f"  {p}" for p in report["granted"] or ["(none)"]),
        f"Features: {', '.join(report['features'])}",
    ]
    if not report["stores"]:
        lines.append("The key sees no store (it needs btcpay.store.canviewstoresettings on your store).")
    for store in report["stores"]:
        lines.append(f"Store {store['name']!r} ({store['id']}): "
                     + ("all required permissions granted" if store["ready"] else "permissions missing"))
        for m in store["missing"]:
            lines.append(f"  missing {m['permission']} (needed for: {', '.join(m['features'])})")
            lines.append(f"    add to the key: {m['grant']}")
        lines += _warning_lines(store.get("warnings") or [], "  ")
    return "\n".join(lines)


def _warning_lines(warnings: list[dict[str, Any]], indent: str) -> list[str]:
    """Permissions an optional feature (pay links) lacks: setup goes on, the operator is told what breaks."""
    return [f"{indent}warning: the key lacks {w['permission']}: {w['consequence']} (add to the key: {w['grant']})"
            for w in warnings]


def format_selection(result: dict[str, Any]) -> str:
    lines = []
    for store in result["stores"]:
        lines.append(f"Following store {store['name']!r} ({store['id']})")
        hook = store.get("webhook")
        if hook:
            lines.append(f"  webhook {hook['id']} registered at BTCPay -> {hook['url']}")
            lines.append(f"  events: {', '.join(hook['events'])}")
            lines.append("  webhook secret stored encrypted")
        else:
            lines.append("  no webhook (feature 'webhooks' not enabled): polling only")
        if store.get("api_key") == "own":
            label = store.get("api_key_label")
            lines.append(f"  its own API key{f' {label!r}' if label else ''} stored encrypted; every call "
                         "about this store uses it")
    for store_id in result["removed"]:
        lines.append(f"No longer following store {store_id}")
    lines.append("The first poll of the invoice history has started (`sovterm btcpay status` shows progress).")
    return "\n".join(lines)


def _follow(args: argparse.Namespace, environ: Mapping[str, str], stores: list[str], api_key: str | None) -> int:
    """Add stores on the stored connection (with `api_key`: the one store's own key)."""
    result = core.call(args, environ, "setup.btcpay.select_stores", store_ids=stores, keep_others=True,
                       api_key=api_key)
    core.emit(args, {"connect": None, "select": result}, lambda r: format_selection(r["select"]))
    return 0


def cmd_setup(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    chosen = list(dict.fromkeys(args.store or []))
    if args.store_key:
        if len(chosen) != 1:
            raise CommandError("--store-key needs exactly one --store: the store the key belongs to", EXIT_CONFIG)
        if args.url:
            raise CommandError("--store-key adds a store's own key to the connected BTCPay; connect the server "
                               "first without --store-key", EXIT_CONFIG)
        return _follow(args, environ, chosen, _read_api_key(args))
    if chosen and not _key_given(args) and not args.url:
        return _follow(args, environ, chosen, None)
    api_key = _read_api_key(args)
    url = args.url
    if not url:
        proposed = core.call(args, environ, "btcpay.status").get("proposed_url")
        if not proposed:
            raise CommandError("--url is required (no BTCPay address was found on this box)", EXIT_CONFIG)
        print(f"Using the BTCPay address found on this box: {proposed}")
        url = proposed
    features = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
    report = core.call(args, environ, "setup.btcpay.connect", url=url, api_key=api_key, features=features)
    if not args.json:
        print(format_report(report))
    stores = {s["id"]: s for s in report["stores"]}
    if not chosen:
        if len(stores) == 1:
            chosen = list(stores)
        elif not stores:
            _emit_json(args, report, None)
            raise CommandError("the API key sees no store; nothing to select", EXIT_FAILED)
        else:
            _emit_json(args, report, None)
            listing = "\n".join(f"  {s['id']}  {s['name']}" for s in stores.values())
            raise CommandError(f"the key sees {len(stores)} stores; choose with --store ID:\n{listing}", EXIT_CONFIG)
    unknown = [s for s in chosen if s not in stores]
    if unknown:
        _emit_json(args, report, None)
        raise CommandError(f"the key cannot see store(s) {', '.join(unknown)}", EXIT_FAILED)
    lacking = [s for s in chosen if not stores[s]["ready"]]
    if lacking:
        _emit_json(args, report, None)
        raise CommandError(
            f"required permissions are missing for store(s) {', '.join(lacking)} (see above); create a key "
            "with them in BTCPay and run this again", EXIT_FAILED,
        )
    result = core.call(args, environ, "setup.btcpay.select_stores", store_ids=chosen, keep_others=True)
    if args.json:
        _emit_json(args, report, result)
    else:
        print(format_selection(result))
    return 0


def _emit_json(args: argparse.Namespace, report: dict[str, Any], selection: dict[str, Any] | None) -> None:
    if args.json:
        core.emit(args, {"connect": report, "select": selection}, str)


def _when(ts: int | None) -> str:
    return "never" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def format_status(st: dict[str, Any]) -> str:
    if st["state"] == "not_configured":
        lines = ["BTCPay: not configured"]
        if st.get("proposed_url"):
            lines.append(f"  found {st['proposed_url']} (from {st['proposed_source']})")
            lines.append("  connect: sovterm setup btcpay --api-key-file FILE")
        else:
            lines.append("  connect: sovterm setup btcpay --url URL --api-key-file FILE")
        return "\n".join(lines + _refusal_lines(st))
    lines = [
        f"BTCPay: {st['state']}" + (f" ({st['detail']})" if st.get("detail") else ""),
        f"  server     {st['url']}  version {st.get('server_version') or '?'}"
        + ("" if st.get("synchronized") is None else f"  synchronized {st['synchronized']}"),
        f"  features   {', '.join(st['features'])}",
    ]
    setup = st.get("setup") or {}
    if not setup.get("done"):
        lines.append("  setup      not finished: choose the store(s) with `sovterm setup btcpay --store ID`")
    for store in st["stores"]:
        lines.append(f"  store {store['name']!r} ({store['id']}): {store['invoices']} invoices, "
                     f"polled until {_when(store['polled_until'])}")
        lines.append(f"    {core.store_settings_text(store)}")
        if store.get("error"):
            lines.append(f"    last poll failed: {store['error']}")
        hook = store.get("webhook")
        if hook:
            last = hook.get("last_delivery") or {}
            lines.append(f"    webhook {hook['health']}" + (
                f", last delivery {_when(last.get('at'))} {last.get('status')}" if last else ""))
        lines.append(f"    deliveries received {store['deliveries_received']} (last {_when(store['last_delivery_received_at'])}),"
                     f" refused in 24 h {store['refused_last_24h']}")
        lines += _warning_lines(store.get("permission_warnings") or [], "    ")
    return "\n".join(lines + _refusal_lines(st))


def _refusal_lines(st: dict[str, Any]) -> list[str]:
    """Who knocked and why: refused webhooks of the last 24 h by reason, then the latest few."""
    refused = st.get("refusals") or {}
    if not refused.get("last_24h"):
        return []
    lines = ["  refused webhooks in 24 h: "
             + ", ".join(f"{reason} {count}" for reason, count in refused["last_24h"].items())]
    for r in refused["recent"]:
        lines.append(f"    {_when(r['at'])} {r['http_status']} {r['reason']} store {r['store_id']} from {r['client']}")
    return lines


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    st = core.call(args, environ, "btcpay.status")
    core.emit(args, st, format_status)
    return EXIT_FAILED if st["state"] in ("unreachable", "unauthorized") else 0


def cmd_rotate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "btcpay.rotate_webhook_secret", store_id=args.store)
    core.emit(args, result, lambda r: f"new webhook secret in place for store {r['store_id']} (webhook {r['webhook_id']});"
                                      " deliveries signed with the old one are now refused")
    return 0


def format_stores(r: dict[str, Any]) -> str:
    followed = set(r["selected"])
    lines = [f"Stores at {r['url']} (features: {', '.join(r['features'])}):"]
    for store in r["stores"]:
        state = "followed" if store["id"] in followed else "not followed"
        key = "own key" if store.get("api_key") == "own" else "server-wide key"
        ready = "ready" if store["ready"] else (store.get("problem") or "permissions missing")
        lines.append(f"  {store['id']}  {store['name']!r}: {state}, {key}, {ready}")
        for m in store.get("missing") or []:
            lines.append(f"    add to the key: {m['grant']} (for {', '.join(m['features'])})")
    if not r["stores"]:
        lines.append("  the key sees no store (it needs btcpay.store.canviewstoresettings on your store)")
    lines.append("Follow one more: sovterm setup btcpay --store ID [--store-key --api-key-file FILE]")
    return "\n".join(lines)


def cmd_stores(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "btcpay.stores")
    core.emit(args, result, format_stores)
    return 0


def cmd_unfollow(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "btcpay.unfollow", store_id=args.store)
    core.emit(args, result, lambda r: f"no longer following store {r['store_id']}; its invoice history is kept"
              + ("" if r["webhook_deleted"] else "\nour webhook there could not be deleted (BTCPay unreachable, or "
                 "the key refused): delete it in BTCPay (Store > Settings > Webhooks)"))
    return 0


def cmd_disconnect(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "btcpay.disconnect")

    def human(r: dict[str, Any]) -> str:
        if not r["disconnected"]:
            return r["detail"]
        text = f"disconnected from {r['url']}: API key forgotten, invoice history kept"
        if r["webhooks_left"]:
            text += ("\nBTCPay could not be reached to delete our webhook at store(s) "
                     f"{', '.join(r['webhooks_left'])}: delete it in BTCPay (Store > Settings > Webhooks)")
        return text

    core.emit(args, result, human)
    return 0


def cmd_import_history(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "btcpay.import_history", since=args.since)
    core.emit(args, result, lambda r: f"invoices created since {r['since']}:\n" + "\n".join(
        f"  store {sid}: {s['listed']} read, {s['changed']} new or changed" for sid, s in r["stores"].items()
    ))
    return 0


def cmd_poll(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "btcpay.poll_now")

    def human(r: dict[str, Any]) -> str:
        if r.get("error"):
            return f"BTCPay {r['state']}: {r['error']}"
        lines = [f"BTCPay {r['state']}"]
        stores = r.get("stores")
        for store_id, s in (stores.items() if isinstance(stores, dict) else ()):
            lines.append(f"  {store_id}: " + (s["error"] if "error" in s else
                                              f"{s['listed']} listed, {s['reread']} re-read, {s['changed']} changed"))
        return "\n".join(lines)

    core.emit(args, result, human)
    return 0 if result.get("state") == "connected" else EXIT_FAILED


def add_commands(sub: Any, add: core.Adder) -> None:
    setup = add("btcpay", cmd_setup, SETUP_HELP, json_flag=True, parent=core.setup_group(sub))
    setup.formatter_class = argparse.RawDescriptionHelpFormatter
    setup.epilog = SETUP_EPILOG
    setup.add_argument("--url", help="BTCPay Server address, e.g. https://btcpay.example.com "
                                     "(default: the address found on this box, if any)")
    setup.add_argument("--api-key", metavar="KEY", help="the API key, or - to read it from stdin (keeps it out of history)")
    setup.add_argument("--api-key-file", metavar="FILE", help="read the API key from this file")
    setup.add_argument("--store", action="append", metavar="ID",
                       help="store id to follow, added to those already followed (repeat for several); needed "
                            "when the key sees several stores")
    setup.add_argument("--store-key", action="store_true",
                       help="the key given belongs to the one --store: kept for that store only and used for "
                            "all its calls (the others keep the server-wide key)")
    setup.add_argument("--features", metavar="LIST",
                       help=f"comma-separated, from {','.join(FEATURE_PERMISSIONS)} (default {','.join(DEFAULT_FEATURES)})")
    group = core.group(sub, "btcpay", "the BTCPay Server connection")
    add("status", cmd_status, "reachability, followed stores and webhook health (exit 1 if unreachable)",
        json_flag=True, parent=group)
    add("stores", cmd_stores, "the stores the API key(s) see: followed or not, which key, missing permissions",
        json_flag=True, parent=group)
    unfollow = add("unfollow", cmd_unfollow, "stop following one store (the others stay)", json_flag=True,
                   parent=group)
    unfollow.add_argument("store", metavar="STORE", help="store id")
    rotate = add("rotate-webhook-secret", cmd_rotate, "give a store's webhook a new secret", json_flag=True, parent=group)
    rotate.add_argument("store", metavar="STORE", help="store id")
    add("disconnect", cmd_disconnect, "delete our webhooks at BTCPay and forget the API key", json_flag=True, parent=group)
    add("poll", cmd_poll, "poll every followed store now", json_flag=True, parent=group)
    history = add("import-history", cmd_import_history,
                  "read every invoice created since a date into the ledger (sync then posts what is owed)",
                  json_flag=True, parent=group)
    history.add_argument("--since", required=True, help="first day, YYYY-MM-DD")
