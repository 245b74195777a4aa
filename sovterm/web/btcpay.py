"""`POST /webhooks/btcpay/{store_id}`: BTCPay's deliveries, one URL per followed store.

The answer is only a status and our own outcome word, never anything from the request: a forged
delivery learns nothing. 200 comes only after the delivery is on disk; 5xx makes BTCPay retry.
"""

from __future__ import annotations

from aiohttp import web

from sovterm.btcpay.webhooks import read_limited
from sovterm.web.app import SERVICES
from sovterm.web.clients import client_address


async def btcpay_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    intake = services.intake
    if intake is None:  # only while starting or stopping: BTCPay retries a 503
        services.metrics.count_webhook("not_ready")
        return web.Response(status=503, text="not_ready\n")
    raw = await read_limited(request.content, services.settings.listener.max_body_bytes)
    result = await intake.handle_webhook(request.match_info["store_id"], raw, request.headers,
                                         client_address(request))
    outcome = result.reason.split(":", 1)[0]  # "unreadable: <detail>" counts as "unreadable"
    services.metrics.count_webhook(outcome)
    if 400 <= result.status < 500:
        await services.security.webhook_refused(request.match_info["store_id"], outcome)
    return web.Response(status=result.status, text=outcome + "\n")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/btcpay/{store_id}", btcpay_webhook)
