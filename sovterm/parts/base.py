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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from sovterm.control.server import ControlServer
    from sovterm.loops import LoopSpec
    from sovterm.services import Services


@dataclass(frozen=True)
class Part:
    name: str
    # start the part's service (set it on `services`), yield while the daemon runs, then stop it
    stage: Callable[[Services], AbstractAsyncContextManager[None]] | None = None
    loops: Callable[[Services], list[LoopSpec]] = field(default=lambda services: [])
    routes: Callable[[web.Application], None] | None = None
    methods: Callable[[ControlServer, Services], None] | None = None

