"""A control server without a socket: the given parts running, the audit trail in a real database, and
calls by callers of our choosing. For tests of what a part's methods declare (part, audit row, answer)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sovterm.control import protocol as rpc
from sovterm.control.roles import Peer, Role, RolePolicy
from sovterm.control.server import Connection, ControlServer
from sovterm.store import audit
from sovterm.store.db import Database


class Dispatch:
    def __init__(self, db: Database, register: Callable[[ControlServer, Any], None], **services: Any) -> None:
        self.db = db
        self.running: dict[str, Any] = {name: s for name, s in services.items() if s is not None}

        async def write_audit(actor: str, action: str, subject: str | None, detail: dict[str, Any], outcome: str,
                              *, conn: Any = None) -> None:
            await audit.record(db, actor, action, subject, detail, outcome, conn=conn)

        self.server = ControlServer(None, RolePolicy(0, None, None), parts=self.running.get,  # type: ignore[arg-type]
                                    audit=write_audit, version="t")
        register(self.server, SimpleNamespace(require_db=lambda: db, **services))

    def stop(self, part: str) -> None:
        """The part stops (the daemon is shutting down, or it never started)."""
        del self.running[part]

    async def call(self, method: str, *, user: str = "alice", role: Role = Role.ADMIN, **params: Any) -> Any:
        conn = Connection(Peer(1, 1000, 1000, user, role), None, 10)  # type: ignore[arg-type]
        return await self.server.dispatch(conn, method, params)

    async def audit_rows(self) -> list[tuple[str, str, str | None, dict[str, Any], str]]:
        rows = await self.db.fetchall("SELECT actor, action, subject, detail, outcome FROM audit ORDER BY id")
        return [(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]


def wire(value: Any) -> Any:
    """What a service's answer looks like as JSON (what the method sent before it had a result model)."""
    return json.loads(rpc.encode({"value": value}))["value"]
