"""Public pay pages: `GET /pay/{token}` (303 to BTCPay's checkout, or a plain page saying why not) and
`GET /pay/{token}/qr.png` (the link as a printable QR code).

Pages are plain HTML and CSS (no JavaScript), every value escaped, and never carry internal detail: the
reason a link was refused goes to the log only. Requests are rate-limited per client address (the
forwarded one behind a trusted proxy, see `web.clients`).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable

from aiohttp import web

from sovterm import qr
from sovterm.burstlog import BurstLog
from sovterm.formatting import money_text
from sovterm.links.pay import EXPIRED, NOT_FOUND, PayOutcome, PayPage
from sovterm.links.tokens import TokenGone, TokenInvalid
from sovterm.web.app import page_policy
from sovterm.web.clients import RateLimiter, client_address
from sovterm.web.paywall import machine_pay, wants_machine

log = logging.getLogger("sovterm.web.links")
#: Tampered or unknown tokens come from whoever wants to: the first of a burst is logged, the rest summed up.
REFUSED_LOG = BurstLog(log, "refused pay link", level=logging.INFO)
#: Link previews (chat apps unfurling a pasted link) fetch the page nobody clicked: they get the page
#: without a BTCPay invoice being reserved, like a HEAD request.
PREVIEWERS = re.compile(
    r"facebookexternalhit|Facebot|Twitterbot|Slackbot|Discordbot|TelegramBot|WhatsApp|LinkedInBot|SkypeUriPreview|"
    r"Googlebot|bingbot|Applebot|Mastodon|Iframely|Embedly|redditbot|Pinterest|vkShare|Signal",
    re.IGNORECASE,
)

PayPageFor = Callable[[web.Request], PayPage | None]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{refresh}<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f6f6f4; color: #222; margin: 0; }}
main {{ max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px;
        box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
.amount {{ font-size: 2rem; font-weight: 600; margin: 1rem 0; }}
a.button {{ display: inline-block; background: #f7931a; color: #fff; padding: .7rem 1.2rem; border-radius: 6px;
           text-decoration: none; font-weight: 600; }}
.small {{ color: #666; font-size: .85rem; }}
</style></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>
"""


def render(title: str, body_html: str, *, refresh_to: str | None = None) -> str:
    refresh = f'<meta http-equiv="refresh" content="0; url={html.escape(refresh_to, quote=True)}">\n' if refresh_to else ""
    return PAGE.format(title=html.escape(title), body=body_html, refresh=refresh)


POLICY = page_policy(render("", ""))


def outcome_response(outcome: PayOutcome) -> web.Response:
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": POLICY, "X-Frame-Options": "DENY"}
    if outcome.location is not None:
        assert outcome.amount is not None and outcome.currency is not None
        amount = money_text(outcome.amount, outcome.currency)
        body = (f'<p>Amount due</p><p class="amount">{html.escape(amount)}</p>'
                f'<p><a class="button" href="{html.escape(outcome.location, quote=True)}">Pay in bitcoin</a></p>'
                '<p class="small">You are being taken to the checkout page.</p>')
        headers["Location"] = outcome.location
        return web.Response(status=outcome.status, text=render("Pay in bitcoin", body, refresh_to=outcome.location),
                            content_type="text/html", headers=headers)
    if outcome.retry_after_s is not None:
        headers["Retry-After"] = str(outcome.retry_after_s)
    return web.Response(status=outcome.status, text=render(outcome.title, f"<p>{html.escape(outcome.message)}</p>"),
                        content_type="text/html", headers=headers)


UNAVAILABLE = PayOutcome(503, "Temporarily unavailable",
                         "Payments are not available right now. Please try again in a few minutes.", retry_after_s=120)
PREVIEW = PayOutcome(200, "Pay in bitcoin", "Open this link to pay in bitcoin.")
TOO_MANY = PayOutcome(429, "Too many requests", "Please wait a minute and try again.", retry_after_s=60)


def add_routes(app: web.Application, page_for: PayPageFor, limiter: RateLimiter | None = None) -> None:
    lim = limiter or RateLimiter()

    def limited(request: web.Request, page: PayPage) -> bool:
        return not lim.allow(client_address(request), page.links.settings().links.rate_limit_per_min)

    async def pay(request: web.Request) -> web.Response:
        page = page_for(request)
        if page is None:
            return outcome_response(UNAVAILABLE)
        if limited(request, page):
            return outcome_response(TOO_MANY)
        if wants_machine(request):  # HTTP 402 (L402 / x402): web/paywall.py
            return await machine_pay(request, page)
        if PREVIEWERS.search(request.headers.get("User-Agent", "")):
            return await look(request, page)
        outcome = await page.pay(request.match_info["token"])
        if outcome.status == 404:
            REFUSED_LOG.note(outcome.reason, f"{outcome.reason} ({outcome.status})", client_address(request))
        else:
            log.info("pay page: %s (%d)", outcome.reason, outcome.status)
        return outcome_response(outcome)

    async def look(request: web.Request, page: PayPage) -> web.Response:
        """A HEAD request or a link preview: whether the link is valid, and never a BTCPay invoice (only
        a person's click reserves one)."""
        try:
            await page.links.keys.verify(request.match_info["token"])
        except TokenGone:
            return outcome_response(EXPIRED)
        except TokenInvalid as exc:
            REFUSED_LOG.note(exc.reason, f"{exc.reason} ({request.method})", client_address(request))
            return outcome_response(NOT_FOUND)
        return outcome_response(PREVIEW)

    async def pay_head(request: web.Request) -> web.Response:
        page = page_for(request)
        if page is None:
            return outcome_response(UNAVAILABLE)
        if limited(request, page):
            return outcome_response(TOO_MANY)
        return await look(request, page)

    async def qr_png(request: web.Request) -> web.Response:
        page = page_for(request)
        if page is None:
            return outcome_response(UNAVAILABLE)
        if limited(request, page):
            return outcome_response(TOO_MANY)
        links = page.links
        token = request.match_info["token"]
        try:
            await links.keys.verify(token)
        except (TokenGone, TokenInvalid) as exc:
            REFUSED_LOG.note(exc.reason, f"QR {exc.reason}", client_address(request))
            return outcome_response(NOT_FOUND)
        url = f"{links.settings().public_url}/pay/{token}"
        return web.Response(body=qr.png(url), content_type="image/png", headers={"Cache-Control": "no-store"})

    app.router.add_get("/pay/{token}", pay, allow_head=False)
    app.router.add_route("HEAD", "/pay/{token}", pay_head)
    app.router.add_get("/pay/{token}/qr.png", qr_png)

