"""`GET /oauth/qbo/callback`: where Intuit sends the browser back after the operator consents.

The page says connected or why not, never more: a bad, expired or reused `state` is refused by
`QBOService.complete()` before anything is stored, and unexpected errors go to the log only.
"""

from __future__ import annotations

import logging

from aiohttp import web

from sovterm.errors import UserFacingError
from sovterm.qbo.callback_page import render_callback_page
from sovterm.qbo.models import Connection
from sovterm.store import audit
from sovterm.web.app import SERVICES, page_policy

log = logging.getLogger("sovterm.qbo.callback")

CALLBACK_PATH = "/oauth/qbo/callback"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": page_policy(render_callback_page(UserFacingError("sample"))[1])}


async def oauth_callback(request: web.Request) -> web.Response:
    service = request.app[SERVICES].qbo
    result: Connection | BaseException
    try:
        if service is None:
            raise UserFacingError("QuickBooks is not available in this daemon")
        result = await service.complete(request.query_string)
        await audit.record(service.db, "oauth-callback", "qbo.connect", result.realm_id,
                           {"environment": result.environment, "via": "callback"}, "ok")
    except UserFacingError as exc:
        log.warning("qbo callback refused: %s", exc.message)
        await request.app[SERVICES].security.write(
            "oauth-callback", "qbo.callback_refused", None, {"reason": exc.message[:200]}, burst=1)
        result = exc
    except Exception as exc:  # the browser sees a generic page; the details stay in the log
        log.exception("qbo callback failed")
        result = exc
    status, page = render_callback_page(result)
    return web.Response(status=status, text=page, content_type="text/html", headers=_HEADERS)


def add_routes(app: web.Application) -> None:
    app.router.add_get(CALLBACK_PATH, oauth_callback)
