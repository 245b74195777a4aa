"""Nostr events as Angor publishes them, read from relays over aiohttp websockets (NIP-01), each verified
before use: the id must be the hash of the event's own fields and the signature a valid BIP-340 Schnorr
signature by its author over that id. An event failing either is dropped and counted, never shown.

Schnorr verification uses coincurve (libsecp256k1's own BIP-340 code, wheels for every platform we ship):
signature checks are the one place a hand-written curve would be a security bug. npub decoding uses the
`bech32` package (BIP-173's reference implementation, no dependencies)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import bech32
from coincurve import PublicKeyXOnly

HEX64 = frozenset("0123456789abcdef")
MAX_EVENTS = 500  # per query: a relay that never stops sending is cut off here
MAX_MESSAGE = 256 * 1024  # bytes per websocket message; Angor's events are a few kilobytes


class RelayProblem(Exception):
    """The relay could not be read: `state` is down | slow | garbage, the message says why."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


def npub_to_hex(npub: str) -> str:
    """A NIP-19 npub to the 32-byte public key in hex; ValueError if it is not one."""
    hrp, data = bech32.bech32_decode(npub.strip().lower())
    words = bech32.convertbits(data, 5, 8, False) if data is not None else None
    if hrp != "npub" or words is None or len(words) != 32:
        raise ValueError(f"{npub!r} is not an npub (a NIP-19 public key, npub1...)")
    return bytes(words).hex()


def hex_to_npub(pubkey: str) -> str:
    return bech32.bech32_encode("npub", bech32.convertbits(bytes.fromhex(pubkey), 8, 5))


def is_hex32(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= HEX64


def event_id(event: dict[str, Any]) -> str:
    """NIP-01: sha256 of [0, pubkey, created_at, kind, tags, content] serialised without spaces, UTF-8."""
    body = [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]]
    return hashlib.sha256(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def verified(event: Any) -> bool:
    """True when the event is well formed, its id is its own hash and its signature is its author's."""
    try:
        if not (isinstance(event, dict) and is_hex32(event.get("id")) and is_hex32(event.get("pubkey"))
                and isinstance(event.get("sig"), str) and len(event["sig"]) == 128
                and isinstance(event.get("created_at"), int) and isinstance(event.get("kind"), int)
                and isinstance(event.get("content"), str) and isinstance(event.get("tags"), list)
                and all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in event["tags"])):
            return False
        if event_id(event) != event["id"]:
            return False
        return bool(PublicKeyXOnly(bytes.fromhex(event["pubkey"])).verify(bytes.fromhex(event["sig"]),
                                                                         bytes.fromhex(event["id"])))
    except (ValueError, TypeError):
        return False


def tag(event: dict[str, Any], name: str) -> str | None:
    for t in event["tags"]:
        if len(t) >= 2 and t[0] == name:
            return str(t[1])
    return None


@dataclass
class Fetched:
    events: list[dict[str, Any]] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)  # what events with a bad id or signature claimed as id


async def query(http: aiohttp.ClientSession, url: str, filters: Sequence[dict[str, Any]], *,
                timeout_s: float) -> Fetched:
    """One REQ on a fresh connection, read until EOSE (or the relay closes the subscription), then CLOSE.
    Every event is verified here; raises RelayProblem when the relay is down, too slow or speaks garbage."""
    sub = "sovterm-" + secrets.token_hex(4)
    out = Fetched()
    try:
        async with asyncio.timeout(timeout_s), http.ws_connect(
                url, timeout=aiohttp.ClientWSTimeout(ws_close=2.0), heartbeat=None, max_msg_size=MAX_MESSAGE) as ws:
            await ws.send_str(json.dumps(["REQ", sub, *filters]))
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RelayProblem("garbage" if msg.type == aiohttp.WSMsgType.ERROR else "down",
                                       f"the relay closed the connection before the end of the stored events "
                                       f"({msg.type.name.lower()})")
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    raise RelayProblem("garbage", "the relay sent something that is not JSON") from None
                if not isinstance(frame, list) or not frame or not isinstance(frame[0], str):
                    raise RelayProblem("garbage", "the relay sent a message that is not a NIP-01 message")
                if frame[0] == "EOSE" or (frame[0] == "CLOSED" and frame[1:2] == [sub]):
                    break
                if frame[0] == "EVENT" and len(frame) == 3 and frame[1] == sub:
                    if verified(frame[2]):
                        out.events.append(frame[2])
                    else:
                        out.dropped.add(str(frame[2].get("id") if isinstance(frame[2], dict) else frame[2])[:64])
                    if len(out.events) + len(out.dropped) >= MAX_EVENTS:
                        break
            await ws.send_str(json.dumps(["CLOSE", sub]))
    except TimeoutError:
        raise RelayProblem("slow", f"no complete answer within {timeout_s:g} s") from None
    except aiohttp.WSServerHandshakeError as exc:
        raise RelayProblem("garbage", f"not a websocket relay (HTTP {exc.status})") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise RelayProblem("down", f"unreachable ({type(exc).__name__})") from None
    return out
