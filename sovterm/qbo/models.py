"""Plain data shapes shared by the QuickBooks connector, and JSON that keeps money exact.

Request and response bodies stay plain dicts with Intuit's own field names (checked against
`Finance.xsd` in the tests); money inside them is `Decimal`, written to JSON as a number without ever
passing through a float.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

Environment = Literal["sandbox", "production"]
ConnectionStatus = Literal["connected", "reconnect_required", "refresh_expiring", "disconnected"]


def dumps(value: Any) -> str:
    """JSON text where a `Decimal` is written as the exact number it holds (floats are refused)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        return format(value, "f")
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, float):
        raise TypeError("money must not be a float: use Decimal")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def loads(text: str) -> Any:
    """Parse a QuickBooks response; amounts come back as `Decimal`."""
    return json.loads(text, parse_float=Decimal)


@dataclass(frozen=True)
class Connection:
    """A connected QuickBooks company (no secrets here: tokens live in the SecretStore)."""

    realm_id: str
    environment: Environment
    sandbox: bool
    auto_sync: bool
    status: str
    access_expires_at: int
    refresh_expires_at: int
    refresh_hard_expires_at: int | None
    connected_at: int


@dataclass(frozen=True)
class ConnectionState:
    """What `/readyz` and the TUI show for one company."""

    realm_id: str
    status: ConnectionStatus
    days_left: int | None = None  # refresh token's remaining life, when known
    reason: str | None = None
    sandbox: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "realm_id": self.realm_id, "status": self.status, "days_left": self.days_left,
            "reason": self.reason, "sandbox": self.sandbox,
        }


BatchOperation = Literal["create", "update", "delete", "query"]


@dataclass(frozen=True)
class BatchItem:
    """One entry of a batch: `entity` + `body` for writes, `query` text for a query."""

    bid: str
    operation: BatchOperation
    entity: str | None = None
    body: dict[str, Any] | None = None
    query: str | None = None
    options: str | None = None  # "void" (with update) or "allowduplicatedocnum"

    def to_json(self) -> dict[str, Any]:
        if len(self.bid) > 10:
            raise ValueError("batch bId must be at most 10 characters")
        if self.operation == "query":
            return {"bId": self.bid, "Query": self.query}
        if not self.entity or self.body is None:
            raise ValueError(f"batch item {self.bid}: {self.operation} needs an entity and a body")
        item: dict[str, Any] = {"bId": self.bid, "operation": self.operation, self.entity: self.body}
        if self.options:
            item["optionsData"] = self.options
        return item


@dataclass
class BatchResult:
    """Per-item outcome: the entity dict, the query rows, or the typed error."""

    bid: str
    entity: str | None = None
    data: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
