"""`sovterm sync ...`, `sovterm setup mode` and `sovterm reconcile`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from sovterm.cli import core
from sovterm.formatting import age, sats_text, signed_sats_text


def status_text(st: dict[str, Any]) -> str:
    """`sovterm sync status` for a person (the `sync.status` result)."""
    bf = st.get("backfill") or {}
    lines = [
        f"sync {'PAUSED' if st.get('paused') else 'running'}: {st['queued']} queued, {st['running']} running, "
        f"{st['dead']} dead, {st['held']} held, {st['unmatched']} unmatched, {st.get('review', 0)} to review",
        f"  last BTCPay poll   {age(st['last_poll_age_s'])}",
        f"  last posting       {age(st['last_posting_age_s'])}",
        f"  backfill           {bf.get('state', 'none')}"
        + (f" since {bf['since']}: {bf.get('done', 0)}/{bf.get('total', 0)}" if bf.get("since") else "")
        + (f", {bf['waiting']} waiting for BTCPay to confirm a payment" if bf.get("waiting") else ""),
    ]
    if st.get("held") and st.get("held_reason"):
        lines.append(f"  held because       {st['held_reason']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    st = core.call(args, environ, "sync.status")
    core.emit(args, st, status_text)
    return 0 if not st["dead"] else core.EXIT_FAILED


def cmd_now(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "sync.now")
    core.emit(args, result, lambda r: f"polled BTCPay; {r['jobs']} job(s) worked\n" + status_text(r["status"]))
    return 0


def cmd_dead(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = core.call(args, environ, "sync.dead")
    core.emit(args, rows, lambda rs: "\n".join(
        f"job {r['job_id']:<6} invoice {r['invoice_id']}  ({r['attempts']} attempt(s))\n    {r['error']}" for r in rs
    ) or "no dead jobs")
    return 0


def cmd_retry(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if (args.job is None) == (not args.all):
        raise core.CommandError("give a job id or --all", core.EXIT_CONFIG)
    result = core.call(args, environ, "sync.retry", job_id=args.job, all=args.all)
    core.emit(args, result, lambda r: f"{r['retried']} job(s) back in the queue")
    return 0


def cmd_unmatched(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = core.call(args, environ, "sync.unmatched")
    core.emit(args, rows, lambda rs: "\n".join(
        f"{r['invoice_id']}  {r['amount'] or '?'} {r['currency'] or ''}  {r['reason']}" for r in rs
    ) or "nothing unmatched")
    return 0


def cmd_resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "sync.resolve", invoice_id=args.invoice, qbo_invoice=args.qbo_invoice,
                       as_deposit=args.as_deposit, ignore=args.ignore)
    core.emit(args, result, lambda r: f"{r['invoice_id']}: {r['resolution']} (queued for posting)")
    return 0


def cmd_review(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = core.call(args, environ, "sync.review", limit=args.limit)
    core.emit(args, rows, lambda rs: "\n".join(
        f"{r['txn_date']}  {r['invoice_id']:<24} {r['entity']:<13} {r['qbo_id'] or '-':>6} {r['amount']:>12} "
        f"{r['currency']}  {r['review']}" for r in rs
    ) or "nothing to review")
    return 0


def cmd_reviewed(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if (args.invoice is None) == (not args.all):
        raise core.CommandError("give an invoice id or --all", core.EXIT_CONFIG)
    result = core.call(args, environ, "sync.reviewed", invoice_id=args.invoice, all=args.all)
    core.emit(args, result, lambda r: f"{r['reviewed']} posting(s) marked reviewed")
    return 0


def cmd_recent(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    rows = core.call(args, environ, "sync.recent", limit=args.limit)
    core.emit(args, rows, lambda rs: "\n".join(
        f"{r['txn_date']}  {r['invoice_id']:<24} {r['entity']:<13} {r['qbo_id'] or '-':>6} {r['amount']:>12} "
        f"{r['currency']} {r['status']}" + (f"  REVIEW: {r['review']}" if r.get("review") else "")
        + (f"  ({r['void_reason']})" if r.get("void_reason") else "") for r in rs
    ) or "nothing posted yet")
    return 0


def cmd_simple(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, args.method)
    core.emit(args, result, lambda r: ", ".join(f"{k}: {v}" for k, v in r.items()))
    return 0


def cmd_backfill(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "sync.backfill", since=args.since)
    core.emit(args, result, lambda r: f"backfill since {r['since']} started: {r['total']} invoice(s) in the ledger "
              "to post, plus what BTCPay's history brings (`sovterm sync status` shows the progress)")
    return 0


def cmd_mode(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "setup.mode", mode=args.mode, store_id=args.store, deposit_as=args.deposit_as,
                       summary_from=args.summary_from, timezone=args.timezone, close_after_min=args.close_after)
    core.emit(args, result, lambda r: f"store {r['store_id']}: {r['mode']} mode"
              + (f" (as {r['deposit_as']})" if r["mode"] == "deposit" else "")
              + (f": one document per currency and day from {r['summary_from']} ({r['timezone']}), posted "
                 f"{r['close_after_s'] // 60} min after the day closes" if r["mode"] == "summary" else ""))
    return 0


def summary_text(r: dict[str, Any]) -> str:
    lines = [f"Daily summary {r['day']}" + (f" (store {r['store_id']})" if r["store_id"] else "") + ":"]
    for d in r["documents"]:
        what = "summary" if d["seq"] == 0 else f"adjustment #{d['seq']}"
        lines.append(f"  {d['currency']} {what}: {d['entity']} {d['amount']} {d['status']}"
                     + (f" (QuickBooks id {d['qbo_id']})" if d["qbo_id"] else ""))
    if not r["documents"]:
        lines.append("  no document yet (the day has not closed, or nothing was paid)")
    for e in r["invoices"]:
        where = "waiting for the day to close" if e["doc_seq"] is None else (
            "cancelled out" if e["doc_seq"] < 0 else "summary" if e["doc_seq"] == 0 else f"adjustment #{e['doc_seq']}")
        label = e["method"] or e["category"]
        lines.append(f"  {e['invoice_id']:<24} {label:<10} {e['amount']:>12} {e['currency']}  {where}")
    return "\n".join(lines)


def cmd_summary(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "sync.summary", day=args.day, store_id=args.store)
    core.emit(args, result, summary_text)
    return 0


def reconcile_text(data: dict[str, Any]) -> str:
    """`sovterm reconcile` for a person (the `reconcile` result): day totals, differences, wallet balances."""
    scope = f" for store {data['store_id']}" if data.get("store_id") else ""
    lines = [f"Reconciliation {data['from']} to {data['to']}{scope}: "
             + ("BOOKS MATCH" if data["ok"] else "BOOKS DIFFER"), "",
             (f"{'date':<12}{'cur':<5}{'BTCPay #':>9}{'sales':>12}{'refunds':>10}{'transfers':>11}"
              f"{'QBO #':>7}{'sales':>12}{'refunds':>10}{'transfers':>11}")]
    for d in data["days"]:
        same = all(d[f"btcpay_{k}"] == d[f"qbo_{k}"] for k in ("sales", "refunds", "transfers"))
        lines.append(f"{d['date']:<12}{d['currency']:<5}{d['btcpay_count']:>9}{d['btcpay_sales']:>12}"
                     f"{d['btcpay_refunds']:>10}{d['btcpay_transfers']:>11}{d['qbo_count']:>7}{d['qbo_sales']:>12}"
                     f"{d['qbo_refunds']:>10}{d['qbo_transfers']:>11}" + ("" if same else "  <-"))
    if data["differences"]:
        lines += ["", f"Differences ({len(data['differences'])}):"]
        for x in data["differences"]:
            lines.append(f"  {x['date']}  {x['invoice_id'] or '-'}: {x['problem']} "
                         f"(expected {x['expected']}, booked {x['booked']}) {' '.join(x['documents'])}")
    for w in data.get("wallets") or []:
        verdict = "DIFFERS" if not w["ok"] else "NOT CHECKED" if w["difference"] is None else "MATCHES"
        lines += ["", f"Bitcoin held, store {w['store_id']} (now): {verdict}"]
        for label, key, sign in (("received", "received", "+"), ("fees collected", "fees_collected", "+"),
                                 ("paid out", "paid_out", "-"), ("fees paid", "fees_paid", "-"),
                                 ("booked by hand", "booked", "+")):
            lines.append(f"  {sign} {label:<26}{sats_text(w[key]):>20}")
        lines.append(f"  = {'ledger balance':<26}{sats_text(w['ledger']):>20}")
        if w["confirming"]:
            lines.append(f"  + {'payments still confirming':<26}{sats_text(w['confirming']):>20}")
        lines.append(f"    {'wallet on-chain':<26}{sats_text(w['wallet_onchain']):>20}")
        lines.append(f"    {'wallet Lightning':<26}{sats_text(w['wallet_lightning']):>20}")
        lines.append(f"    {'wallet balance':<26}{sats_text(w['wallet']):>20}"
                     + (f"   difference {signed_sats_text(w['difference'])}" if w["difference"] else ""))
        lines += [f"  ({n})" for n in w["notes"]]
        if w["unexplained"]:
            lines.append("  Wallet transactions no document explains (book one: sovterm reconcile book TXID "
                         "--account ACCOUNT):")
            lines += [f"    {t['txid']}  {signed_sats_text(t['sats'])}" for t in w["unexplained"]]
    return "\n".join(lines)


def cmd_reconcile(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.date_from is None or args.date_to is None:
        raise core.CommandError("give the period: --from YYYY-MM-DD --to YYYY-MM-DD", core.EXIT_CONFIG)
    result = core.call(args, environ, "reconcile", date_from=args.date_from, date_to=args.date_to,
                       store_id=args.store)
    core.emit(args, result, reconcile_text)
    return 0 if result["ok"] else core.EXIT_FAILED


def cmd_book(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    result = core.call(args, environ, "reconcile.book", txid=args.txid, account=args.account, store_id=args.store)
    core.emit(args, result, lambda r: f"wallet transaction {r['txid']} ({signed_sats_text(r['sats'])}) booked "
              f"{'from' if r['direction'] == 'in' else 'to'} {r['account']}: the Transfer is queued for posting")
    return 0


def rollback_text(r: dict[str, Any]) -> str:
    """`sovterm sync rollback` for a person (the `sync.rollback` result)."""
    scope = f"{r['date_from']} to {r['date_to']}" + (f", store {r['store_id']}" if r.get("store_id") else "")
    verb = ({"void": "void", "delete": "delete"} if r["dry_run"] else
            {"void": "voided", "delete": "deleted", "refused": "REFUSED by QuickBooks, stays"})
    lines = [(f"rollback of {scope} (dry run: nothing changed)" if r["dry_run"]
              else f"rollback #{r['id']} of {scope}: {r['done']} document(s) taken back, their invoices, payouts and "
                   "days queued to be posted again")]
    for d in r["documents"]:
        lines.append(f"  {d['txn_date']}  {d['invoice_id']:<24} {d['entity']:<13} {d['qbo_id'] or '-':>6} "
                     f"{d['amount']:>12} {d['currency']}  {verb[d['action']]}"
                     + (f": {d['error']}" if d.get("error") else ""))
    if not r["documents"]:
        lines.append("  no document sovterm posted is dated in this range")
    if r.get("busy"):
        lines.append(f"  {r['busy']} document(s) in the range are still being written: wait for the sync")
    if r.get("unfinished"):
        lines.append(f"  note: {r['unfinished']}")
    if r["dry_run"] and r["documents"]:
        lines.append("run again with --yes to roll these back")
    return "\n".join(lines)


def cmd_rollback(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    dry_run = args.dry_run or not args.yes
    result = core.call(args, environ, "sync.rollback", date_from=args.date_from, date_to=args.date_to,
                       store_id=args.store, dry_run=dry_run)
    core.emit(args, result, rollback_text)
    return 0


def add_commands(sub: Any, add: core.Adder) -> None:
    grp = core.group(sub, "sync", "the BTCPay → QuickBooks sync")
    add("status", cmd_status, "queue, dead letters, unmatched, backfill (exit 1 with dead jobs)", json_flag=True,
        parent=grp)
    add("now", cmd_now, "poll BTCPay now and work the queue", json_flag=True, parent=grp)
    add("dead", cmd_dead, "dead-lettered jobs and why each failed", json_flag=True, parent=grp)
    p = add("retry", cmd_retry, "retry a dead job, or all of them", json_flag=True, parent=grp)
    p.add_argument("job", nargs="?", type=int)
    p.add_argument("--all", action="store_true")
    add("unmatched", cmd_unmatched, "invoicing-mode invoices without a QuickBooks invoice", json_flag=True, parent=grp)
    p = add("resolve", cmd_resolve, "decide what an unmatched invoice is", json_flag=True, parent=grp)
    p.add_argument("invoice")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--qbo-invoice", metavar="DOC", help="the QuickBooks invoice (DocNumber or Id) it pays")
    how.add_argument("--as-deposit", action="store_true", help="book it as a sale in deposit mode")
    how.add_argument("--ignore", metavar="REASON", help="book nothing, and say why")
    p = add("review", cmd_review, "postings flagged for review (overpaid, settled below the price)", json_flag=True,
            parent=grp)
    p.add_argument("--limit", type=int, default=200)
    p = add("reviewed", cmd_reviewed, "take an invoice's flagged postings (or --all) off the review list",
            json_flag=True, parent=grp)
    p.add_argument("invoice", nargs="?")
    p.add_argument("--all", action="store_true")
    p = add("summary", cmd_summary, "summary mode: a day's documents and the invoices in them", json_flag=True,
            parent=grp)
    p.add_argument("day", metavar="YYYY-MM-DD")
    p.add_argument("--store", metavar="ID", help="only this store")
    p = add("recent", cmd_recent, "recent postings with QuickBooks ids", json_flag=True, parent=grp)
    p.add_argument("--limit", type=int, default=50)
    for verb, method, text in (("pause", "sync.pause", "stop posting until resumed (survives restarts)"),
                               ("resume", "sync.resume", "resume posting")):
        add(verb, cmd_simple, text, json_flag=True, parent=grp).set_defaults(method=method)
    p = add("backfill", cmd_backfill, "post historical settled invoices since a date", json_flag=True, parent=grp)
    p.add_argument("--since", required=True, metavar="YYYY-MM-DD")
    p = add("rollback", cmd_rollback, "void (or delete) every document sovterm posted in a date range and post "
            "them again with the next sync (admin; lists only without --yes)", json_flag=True, parent=grp)
    p.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--store", metavar="ID", help="only this store's documents (default: every store)")
    p.add_argument("--dry-run", action="store_true", help="list what would be rolled back, change nothing")
    p.add_argument("--yes", action="store_true", help="roll back without asking (scripts)")
    p = add("mode", cmd_mode, "deposit, invoicing or daily summary mode", json_flag=True,
            parent=core.setup_group(sub))
    p.add_argument("mode", choices=["deposit", "invoicing", "summary"])
    p.add_argument("--store", help="only this store (default: every store without its own mode)")
    p.add_argument("--deposit-as", choices=["salesreceipt", "deposit"], dest="deposit_as")
    p.add_argument("--from", dest="summary_from", metavar="YYYY-MM-DD",
                   help="summary: the first day summarised, in the store's time zone (default today)")
    p.add_argument("--timezone", metavar="ZONE", help="summary: the store's time zone, e.g. Europe/Berlin "
                   "(default UTC, or the one set before)")
    p.add_argument("--close-after", type=int, dest="close_after", metavar="MINUTES",
                   help="summary: post a day this long after its local midnight (default 60)")
    p = add("reconcile", cmd_reconcile, "compare BTCPay with QuickBooks for a period, and the wallet's balance "
            "with the books (exit 1 when they differ)", json_flag=True)
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    p.add_argument("--store", metavar="ID", help="only this store's books (default: every followed store together)")
    verbs = p.add_subparsers(dest="reconcile_cmd", required=False, metavar="book")
    p = add("book", cmd_book, "book a wallet transaction no document explains as a Transfer to/from an account "
            "(admin)", json_flag=True, parent=verbs)
    p.add_argument("txid", help="the on-chain transaction id, as `sovterm reconcile` lists it")
    p.add_argument("--account", required=True, help="the QuickBooks balance-sheet account (name or Id) it went to "
                   "or came from")
    p.add_argument("--store", help="the BTCPay store (needed when several are followed)")
