"""Daemon actions the UI offers, and the optional feeds it polls; extended by later parts (see catalog)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActionSpec:
    name: str  # screens bind `run('<name>')`; the palette lists it too
    key: str
    title: str
    method: str
    help: str
    describe: Callable[[Any], tuple[str, str]]  # result -> (message, severity)
    confirm: str | None = None
    screen: str = "dashboard"  # the screen that binds `key`; "palette": only in ctrl+p (key unused)


def _describe_reload(result: dict[str, Any]) -> tuple[str, str]:
    if result.get("error"):
        return f"reload refused: {result['error']}", "error"
    applied = ", ".join(result.get("applied") or []) or "nothing"
    restart = ", ".join(result.get("restart_needed") or []) or "nothing"
    return f"configuration reloaded; applied: {applied}; needs a restart: {restart}", "information"


def _describe_rotate(result: dict[str, Any]) -> tuple[str, str]:
    return (
        f"re-encrypted {result.get('reencrypted', 0)} secret(s). Back up the new key file now: "
        f"{result.get('key_file')}",
        "warning",
    )


def _describe_sync_now(result: dict[str, Any]) -> tuple[str, str]:
    status = result.get("status") or {}
    return (f"polled BTCPay and worked {result.get('jobs', 0)} job(s); queue {status.get('queued', '?')}, "
            f"dead {status.get('dead', '?')}", "information")


def _describe_disconnect(side: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    def describe(result: dict[str, Any]) -> tuple[str, str]:
        if side == "BTCPay":
            if not result.get("disconnected"):
                return result.get("detail") or "BTCPay was not connected", "warning"
            left = result.get("webhooks_left") or []
            tail = f"; could not delete the webhook at {', '.join(left)}" if left else ""
            return f"disconnected from BTCPay; the API key is forgotten{tail}", "warning" if left else "information"
        if result.get("revoked"):
            return f"QuickBooks company {result.get('realm_id')} disconnected and access revoked", "information"
        return (f"QuickBooks company {result.get('realm_id')} forgotten, but Intuit did not confirm the "
                "revocation; remove the app under Apps > My apps in QuickBooks", "warning")

    return describe


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("reload", "r", "Reload config", "daemon.reload",
               "re-read the configuration file (as SIGHUP does)", _describe_reload),
    ActionSpec("rotate_key", "R", "Rotate key", "secrets.rotate",
               "re-encrypt every stored secret under a new key file", _describe_rotate,
               confirm="Re-encrypt every stored secret under a new key file?\n"
                       "Backups of the old key file will no longer open this database."),
    ActionSpec("sync_now", "n", "Sync now", "sync.now", "poll BTCPay now, then work the queue",
               _describe_sync_now, screen="sync"),
    ActionSpec("sync_pause", "z", "Pause sync", "sync.pause", "stop posting to QuickBooks until resumed",
               lambda r: ("sync paused: nothing is posted until you resume", "warning"), screen="sync"),
    ActionSpec("sync_resume", "u", "Resume sync", "sync.resume", "resume posting to QuickBooks",
               lambda r: ("sync resumed", "information"), screen="sync"),
    ActionSpec("btcpay_disconnect", "", "Disconnect BTCPay", "btcpay.disconnect",
               "delete sovterm's webhooks at BTCPay and forget the API key (reconnect: setup wizard)",
               _describe_disconnect("BTCPay"), screen="palette",
               confirm="Disconnect BTCPay?\nsovterm deletes its webhooks and forgets the API key; the invoice "
                       "ledger stays. Reconnect later from the setup wizard (w)."),
    ActionSpec("qbo_disconnect", "", "Disconnect QuickBooks", "qbo.disconnect",
               "revoke sovterm's access at Intuit and forget the tokens (reconnect: setup wizard)",
               _describe_disconnect("QuickBooks"), screen="palette",
               confirm="Disconnect QuickBooks?\nsovterm revokes its access and stops posting until you connect "
                       "a company again from the setup wizard (w)."),
)
ACTIONS_BY_NAME = {a.name: a for a in ACTIONS}


def actions_for(screen: str) -> tuple[ActionSpec, ...]:
    return tuple(a for a in ACTIONS if a.screen == screen)


# Optional methods polled with `status` when the daemon offers them. Shapes the screens use:
#   sync.status -> {"queued", "running", "dead", "held", "unmatched", "review": int, "paused": bool,
#                   "last_poll_age_s", "last_posting_age_s": float|None, "backfill": {"state", "done", "total", ...},
#                   "held_reason": str|None}
#   sync.totals -> {"currency": str, "today": str, "d7": str, "d30": str, "daily": [str, ...]}
#                  (amounts as exact decimal strings, `daily` oldest first)
FEEDS: tuple[str, ...] = ("sync.status", "sync.totals")
