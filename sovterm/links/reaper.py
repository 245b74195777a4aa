"""The reaper's link work (loop `links.reaper`): follow open reservations at BTCPay and expire links past
their date. A reservation rarely waits for it: the click and the BTCPay intake's invoice port close most
as soon as their invoice settles, expires or turns invalid."""

from __future__ import annotations

import logging
from typing import Any

from sovterm.btcpay.errors import BTCPayError
from sovterm.links.service import RES_COLUMNS, LinkService

log = logging.getLogger("sovterm.links")


async def reap(links: LinkService) -> dict[str, Any]:
    """Follow every open reservation's invoice (few: each lives minutes): close those that can no longer be
    paid or were paid, keep Processing ones open, and expire links past their date."""
    now = links.now()
    rows = await links.db.fetchall(
        f"SELECT {', '.join(RES_COLUMNS)} FROM link_reservations "
        "WHERE state IN ('open', 'processing')")
    counts = {"reservations_expired": 0, "reservations_paid": 0, "reservations_processing": 0, "check_failed": 0}
    for row in rows:
        res = dict(zip(RES_COLUMNS, row, strict=True))
        try:
            new = await links.refresh_reservation(res)
        except BTCPayError as exc:
            counts["check_failed"] += 1
            log.warning("reaper: cannot check BTCPay invoice %s: %s", res["btcpay_invoice_id"], exc)
            continue
        key = {"expired": "reservations_expired", "paid": "reservations_paid",
               "processing": "reservations_processing"}.get(new["state"])
        if key:
            counts[key] += 1
    counts["links_expired"] = await links.db.write(
        "UPDATE pay_links SET state = 'expired', ended_at = ? WHERE state = 'active' AND expires_at <= ?", (now, now))
    return counts
