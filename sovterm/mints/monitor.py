"""The trusted mints and their health: the list (the config's, the operator's, and the ones BTCNutServer's
store settings trust, read from BTCPay at each check), one reading per mint kept in memory, and a history
row whenever something an operator should see changed (state, version, keyset, fee, message), trimmed per
mint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from sovterm.errors import UserFacingError
from sovterm.mints.probe import Reading, changes, normalise_url, probe
from sovterm.store.db import Database

HISTORY_KEEP = 200  # rows per mint
MAX_FROM_BTCPAY = 50  # mints taken from BTCPay's store settings, all stores together


class MintError(UserFacingError):
    code = "mints"


# {mint url: its source ("btcpay:<store id>")} and notes on what could not be read (a permission missing)
ListedInBTCPay = Callable[[], Awaitable[tuple[dict[str, str], list[str]]]]


class MintMonitor:
    def __init__(self, db: Database, http: aiohttp.ClientSession, *, configured: list[str], timeout_s: float,
                 max_skew_s: float, on_change: Callable[[str, Reading, list[str]], None] | None = None,
                 listed_in_btcpay: ListedInBTCPay | None = None, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._http = http
        self._configured = [normalise_url(u) for u in configured]
        self._timeout_s = timeout_s
        self._max_skew_s = max_skew_s
        self._on_change = on_change
        self._clock = clock
        self.readings: dict[str, Reading] = {}
        self._last_up: dict[str, Reading] = {}  # the last reading with answers, per mint
        self._listed_in_btcpay = listed_in_btcpay
        self.in_btcpay: dict[str, str] = {}  # the last list read from BTCPay (kept when a read fails)
        self.btcpay_notes: list[str] = []

    async def trusted(self) -> dict[str, str]:
        """{url: source}: the config's and the operator's, and those only BTCPay's store settings list."""
        rows = await self._db.fetchall("SELECT url, source FROM mints ORDER BY url")
        out = dict(sorted(self.in_btcpay.items()))
        out.update({url: "config" for url in self._configured})
        out.update({r[0]: r[1] for r in rows})
        return out

    async def add(self, url: str) -> str:
        try:
            url = normalise_url(url)
        except ValueError as exc:
            raise MintError(str(exc), fix="give the mint's base URL, as wallets use it") from None
        await self._db.write("INSERT INTO mints(url, source, added_at) VALUES(?, 'operator', ?) "
                             "ON CONFLICT(url) DO NOTHING", (url, int(self._clock())))
        return url

    async def remove(self, url: str) -> str:
        url = normalise_url(url)
        if url in self.in_btcpay and url not in self._configured:
            raise MintError(f"{url} is trusted in BTCPay's Cashu settings of store {self.in_btcpay[url][7:]}",
                            fix="remove it there (Store > Cashu settings > trusted mints)")
        if url in self._configured:
            raise MintError(f"{url} is trusted in the configuration file", fix="remove it from [mints] trusted")
        if await self._db.write("DELETE FROM mints WHERE url = ?", (url,)) == 0:
            raise MintError(f"{url} is not a trusted mint", fix="`sovterm mints` lists them")
        await self._db.write("DELETE FROM mint_history WHERE url = ?", (url,))
        self.readings.pop(url, None)
        self._last_up.pop(url, None)
        return url

    async def check(self) -> dict[str, Any]:
        """Read BTCPay's list, probe every trusted mint at once (each bounded by the timeout); record what
        changed."""
        await self._read_btcpay()
        urls = list(await self.trusted())
        for gone in set(self.readings) - set(urls):
            del self.readings[gone]
            self._last_up.pop(gone, None)
        readings = await asyncio.gather(*(probe(self._http, u, timeout_s=self._timeout_s,
                                                max_skew_s=self._max_skew_s, clock=self._clock) for u in urls))
        for reading in readings:
            await self._record(reading)
        counts: dict[str, int] = {}
        for r in readings:
            counts[r.state] = counts.get(r.state, 0) + 1
        notes = {"btcpay_notes": self.btcpay_notes} if self.btcpay_notes else {}
        return {"mints": len(readings), **counts, **notes}

    async def _read_btcpay(self) -> None:
        if self._listed_in_btcpay is None:
            return
        try:
            listed, self.btcpay_notes = await self._listed_in_btcpay()
        except Exception as exc:  # BTCPay down: keep the last list; the connector's own alert says why
            self.btcpay_notes = [f"BTCPay's Cashu settings not read ({type(exc).__name__}); the last list is kept"]
            return
        found: dict[str, str] = {}
        for url, source in list(listed.items())[:MAX_FROM_BTCPAY]:
            try:
                found.setdefault(normalise_url(url), source)
            except ValueError:
                self.btcpay_notes.append(f"BTCPay lists {url[:100]!r}, not a mint URL; skipped")
        self.in_btcpay = found

    async def _record(self, reading: Reading) -> None:
        what = changes(self.readings.get(reading.url), reading, self._last_up.get(reading.url))
        self.readings[reading.url] = reading
        if reading.state != "down":
            self._last_up[reading.url] = reading
        if not what:
            return
        async with self._db.transaction() as conn:
            for detail in what:
                await conn.execute("INSERT INTO mint_history(url, at, state, detail) VALUES(?, ?, ?, ?)",
                                   (reading.url, int(reading.at), reading.state, detail[:1000]))
            await conn.execute(
                "DELETE FROM mint_history WHERE url = ? AND id NOT IN "
                "(SELECT id FROM mint_history WHERE url = ? ORDER BY id DESC LIMIT ?)",
                (reading.url, reading.url, HISTORY_KEEP))
        if self._on_change is not None:
            self._on_change(reading.url, reading, what)

    async def history(self, url: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self._db.fetchall("SELECT at, state, detail FROM mint_history WHERE url = ? "
                                       "ORDER BY id DESC LIMIT ?", (url, limit))
        return [{"at": r[0], "state": r[1], "detail": r[2]} for r in rows]

    async def listing(self, history: int = 10) -> list[dict[str, Any]]:
        out = []
        for url, source in (await self.trusted()).items():
            reading = self.readings.get(url)
            out.append({"url": url, "source": source, "checked": reading is not None,
                        **(reading.as_dict() if reading else {"state": "unchecked"}),
                        "history": await self.history(url, history)})
        return out

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each checked mint's state and problems, for the readiness checks and the alerts."""
        return {url: {"state": r.state, "problems": r.problems, "motd": r.motd}
                for url, r in sorted(self.readings.items())}
