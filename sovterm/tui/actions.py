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


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("reload", "r", "Reload config", "daemon.reload",
               "re-read the configuration file (as SIGHUP does)", _describe_reload),
    ActionSpec("rotate_key", "R", "Rotate key", "secrets.rotate",
               "re-encrypt every stored secret under a new key file", _describe_rotate,
               confirm="Re-encrypt every stored secret under a new key file?\n"
                       "Backups of the old key file will no longer open this database."),
)
ACTIONS_BY_NAME = {a.name: a for a in ACTIONS}

# Optional methods polled with `status` when the daemon offers them. Shapes the dashboard expects:
#   sync.status -> {"queued": int, "dead": int, "last_poll_age_s": float|None, "last_posting_age_s": float|None}
#   sync.totals -> {"currency": str, "today": str, "d7": str, "d30": str, "daily": [str, ...]}
#                  (amounts as exact decimal strings, `daily` oldest first)
FEEDS: tuple[str, ...] = ("sync.status", "sync.totals")
