"""Wire format shared by the control server and its clients."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sovterm.amounts import plain

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
USER_ERROR = -32000  # message written for the operator, shown as is
FORBIDDEN = -32001  # the caller's role may not call this method
UNAVAILABLE = -32002  # the part this method needs is not configured/connected yet


class RpcError(Exception):
    """An error reply; `message` is shown to the caller, `data` carries structured detail."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def _text(value: Any) -> str:
    """What JSON cannot carry travels as text; a Decimal as plain digits, never `1E-8`."""
    return plain(value) if isinstance(value, Decimal) else str(value)


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_text).encode() + b"\n"


def request(req_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    return encode({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}})


def notification(method: str, params: dict[str, Any]) -> bytes:
    return encode({"jsonrpc": "2.0", "method": method, "params": params})
