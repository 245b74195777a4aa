"""The small HTML page the browser shows after Intuit redirects to `/oauth/qbo/callback`."""

from __future__ import annotations

import html

from sovterm.errors import UserFacingError
from sovterm.qbo.errors import OAuthError, OAuthStateError
from sovterm.qbo.models import Connection

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}}
.fix{{background:#f4f4f4;padding:.6em}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def render_callback_page(result: Connection | BaseException) -> tuple[int, str]:
    """(HTTP status, HTML) for the outcome of `QBOOAuth.complete()`; never shows internals."""
    if isinstance(result, Connection):
        sandbox = (
            "<p>This is a <strong>sandbox</strong> company: automatic sync stays off until you enable it.</p>"
            if result.sandbox else ""
        )
        body = (
            f"<p>QuickBooks company <code>{html.escape(result.realm_id)}</code> is connected to sovterm "
            f"({html.escape(result.environment)}).</p>{sandbox}<p>You can close this window.</p>"
        )
        return 200, _PAGE.format(title="QuickBooks connected", body=body)
    if isinstance(result, UserFacingError):
        status = 400 if isinstance(result, (OAuthStateError, OAuthError)) else 502
        fix = f'<p class="fix">{html.escape(result.fix)}</p>' if result.fix else ""
        body = f"<p>{html.escape(result.message)}</p>{fix}<p>Nothing was stored.</p>" if status == 400 else (
            f"<p>{html.escape(result.message)}</p>{fix}"
        )
        return status, _PAGE.format(title="QuickBooks not connected", body=body)
    return 500, _PAGE.format(
        title="QuickBooks not connected",
        body="<p>sovterm hit an internal error; details are in its log.</p>"
        '<p class="fix">Run <code>sovterm setup qbo</code> again.</p>',
    )
