"""One health check of one mint: `GET /v1/info` and `GET /v1/keysets`, read-only, with a time limit and a
size limit, redirects not followed. Whatever the mint answers (garbage, a hang, a redirect, an error) is
a reading with a state, never an exception."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

MAX_ANSWER_BYTES = 256 * 1024  # a mint's info and keysets are a few KB
OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass
class Reading:
    url: str
    at: float
    state: str = DOWN  # ok | degraded | down
    problems: list[str] = field(default_factory=list)  # why it is not ok, for an operator
    latency_ms: int | None = None  # the slower of the two requests
    name: str | None = None
    version: str | None = None
    motd: str | None = None  # wallets must show it; so do we
    skew_s: float | None = None  # the mint's clock minus ours
    minting_disabled: bool | None = None
    melting_disabled: bool | None = None
    active_keysets: list[str] = field(default_factory=list)
    inactive_keysets: int = 0
    input_fee_ppk: int | None = None  # the highest of the active keysets

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_url(url: str) -> str:
    """The mint's base URL as stored and compared: scheme and host lower-case, no trailing slash."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r} is not a mint URL (https://mint.example.com, optionally with a path)")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


class BadAnswer(Exception):
    """The mint answered, but not with what NUT-06/NUT-02 describe (the text is for the operator)."""


async def _get_json(session: aiohttp.ClientSession, base: str, path: str) -> tuple[Any, float]:
    started = time.monotonic()
    async with session.get(base + path, allow_redirects=False, headers={"Accept": "application/json"}) as resp:
        if 300 <= resp.status < 400:
            raise BadAnswer(f"{path} redirects ({resp.status}) to {resp.headers.get('Location', '?')[:200]}")
        body = await resp.content.read(MAX_ANSWER_BYTES + 1)
        if len(body) > MAX_ANSWER_BYTES:
            raise BadAnswer(f"{path} answer larger than {MAX_ANSWER_BYTES // 1024} KB")
        if resp.status != 200:
            raise BadAnswer(f"{path} answers HTTP {resp.status}")
        try:
            data = json.loads(body)
        except ValueError:
            raise BadAnswer(f"{path} answers something that is not JSON") from None
    return data, time.monotonic() - started


async def probe(session: aiohttp.ClientSession, url: str, *, timeout_s: float, max_skew_s: float,
                clock: Any = time.time) -> Reading:
    reading = Reading(url=url, at=clock())
    try:
        async with asyncio.timeout(timeout_s):
            info, t_info = await _get_json(session, url, "/v1/info")
            keysets, t_keysets = await _get_json(session, url, "/v1/keysets")
    except TimeoutError:
        reading.problems.append(f"no answer within {timeout_s:g} s")
        return reading
    except BadAnswer as exc:
        reading.problems.append(str(exc))
        return reading
    except aiohttp.ClientError as exc:
        reading.problems.append(f"unreachable ({type(exc).__name__})")
        return reading
    reading.latency_ms = round(max(t_info, t_keysets) * 1000)
    usable = _read_info(reading, info, max_skew_s) & _read_keysets(reading, keysets)
    reading.state = DOWN if not usable else DEGRADED if reading.problems else OK
    return reading


def _read_info(reading: Reading, info: Any, max_skew_s: float) -> bool:
    """Fill the reading from NUT-06 info (every field optional); False when it is not an info object."""
    if not isinstance(info, dict):
        reading.problems.append("/v1/info is not an object")
        return False
    reading.name = _text(info.get("name"))
    reading.version = _text(info.get("version"))
    reading.motd = _text(info.get("motd")) or None
    if isinstance(info.get("time"), (int, float)):
        reading.skew_s = round(float(info["time"]) - reading.at, 1)
        if abs(reading.skew_s) > max_skew_s:
            reading.problems.append(f"clock off by {reading.skew_s:+.0f} s")
    nuts = info.get("nuts") if isinstance(info.get("nuts"), dict) else {}
    for nut, attr, word in (("4", "minting_disabled", "minting"), ("5", "melting_disabled", "melting")):
        entry = nuts.get(nut)
        if isinstance(entry, dict):
            disabled = bool(entry.get("disabled"))
            setattr(reading, attr, disabled)
            if disabled:
                reading.problems.append(f"{word} disabled")
    return True


def _read_keysets(reading: Reading, keysets: Any) -> bool:
    """Fill the reading from NUT-02 keysets; False when the mint cannot issue ecash (no active keyset)."""
    rows = keysets.get("keysets") if isinstance(keysets, dict) else None
    if not isinstance(rows, list):
        reading.problems.append("/v1/keysets has no keyset list")
        return False
    active = [k for k in rows if isinstance(k, dict) and k.get("active")]
    reading.active_keysets = sorted(str(k.get("id")) for k in active)
    reading.inactive_keysets = len(rows) - len(active)
    fees = [int(k["input_fee_ppk"]) for k in active if isinstance(k.get("input_fee_ppk"), int)]
    reading.input_fee_ppk = max(fees) if fees else None
    if not active:
        reading.problems.append("no active keyset (it cannot issue ecash)")
        return False
    return True


def _text(value: Any) -> str | None:
    return str(value)[:500] if isinstance(value, (str, int, float)) else None


def changes(before: Reading | None, after: Reading, last_up: Reading | None = None) -> list[str]:
    """What changed since the last reading that an operator should see in the history; version, keysets,
    fee and message are compared with `last_up`, the last reading that got answers (a mint that was down
    and comes back with a new message shows it)."""
    if before is None:
        return [f"first check: {after.state}"]
    out = []
    if before.state != after.state:
        out.append(f"{before.state} → {after.state}" + (f": {'; '.join(after.problems)}" if after.problems else ""))
    elif after.problems and before.problems != after.problems:
        out.append("; ".join(after.problems))
    before = last_up or before
    if after.state != DOWN and before.state != DOWN:
        if before.version and after.version and before.version != after.version:
            out.append(f"version {before.version} → {after.version}")
        if before.active_keysets and after.active_keysets and before.active_keysets != after.active_keysets:
            out.append(f"keyset rotated: active {', '.join(after.active_keysets)}")
        if before.input_fee_ppk != after.input_fee_ppk and before.input_fee_ppk is not None:
            out.append(f"input fee {before.input_fee_ppk} → {after.input_fee_ppk} ppk")
        if before.motd != after.motd:
            out.append(f"message: {after.motd}" if after.motd else "message removed")
    return out
