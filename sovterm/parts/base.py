"""How a part (btcpay, qbo, sync, links, payouts, intake, ops) plugs into the daemon.

A part contributes, in its own modules: a service started and stopped as one `cleanup_ctx` stage, the
scheduled loops it needs, its public HTTP routes, and its control methods. `sovterm.parts.PARTS` lists
them in start order; a part may use the services of the parts before it, and is handed them in its
service's constructor (a part that hands work on to others, like BTCPay intake, therefore starts after
them). Nothing is registered into a running service after it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SerializerFunctionWrapHandler, model_serializer

from sovterm.control.server import Result

if TYPE_CHECKING:
    from aiohttp import web

    from sovterm.control.server import CallContext, ControlServer
    from sovterm.loops import LoopSpec
    from sovterm.services import Services
    from sovterm.store.audit import Recorder


class CaseResult(Result):
    """An answer whose keys depend on the case (a fixed-amount link has no QuickBooks invoice): a key is on
    the wire only when the answer has it, so a field of one case defaults to None without appearing."""

    @model_serializer(mode="wrap")
    def _given_keys_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if key in self.model_fields_set}


def audit_recorder(ctx: CallContext) -> Recorder:
    """The call's audit row as a service writes it: the subject and outcome it names (a refusal's too,
    which the server alone would write as plain "refused"), written at once, inside the service's
    transaction when it passes one. One call of it is the call's one row."""

    async def record(subject: str | None, detail: dict[str, Any], outcome: str, *, conn: Any = None) -> None:
        ctx.audit(subject=subject, detail=detail, outcome=outcome)
        await ctx.write_audit(conn)

    return record


@dataclass(frozen=True)
class Part:
    name: str
    # start the part's service (set it on `services`), yield while the daemon runs, then stop it
    stage: Callable[[Services], AbstractAsyncContextManager[None]] | None = None
    loops: Callable[[Services], list[LoopSpec]] = field(default=lambda services: [])
    routes: Callable[[web.Application], None] | None = None
    methods: Callable[[ControlServer, Services], None] | None = None

