"""What the TUI knows about the daemon, as plain objects testable without a terminal.

Widgets render from these; nothing here imports Textual or touches the socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ROLE_RANK = {"none": 0, "viewer": 1, "admin": 2}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LEVEL_RANK = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


@dataclass(frozen=True)
class Capabilities:
    """Which daemon methods exist and which the caller's role may use (from `hello` + `methods.list`)."""

    role: str = "none"
    user: str = "?"
    methods: dict[str, str] = field(default_factory=dict)  # name -> role it needs

    @classmethod
    def from_daemon(cls, hello: dict[str, Any], methods: Iterable[dict[str, Any]]) -> Capabilities:
        return cls(
            role=str(hello.get("role", "none")),
            user=str(hello.get("user", "?")),
            methods={str(m["name"]): str(m.get("role", "admin")) for m in methods},
        )

    def offers(self, method: str) -> bool:
        return method in self.methods

    def why_not(self, method: str) -> str | None:
        """None when the caller may call `method`, else the reason to show next to the disabled action."""
        need = self.methods.get(method)
        if need is None:
            return f"this daemon does not offer {method}"
        if ROLE_RANK.get(self.role, 0) < ROLE_RANK.get(need, 2):
            return f"needs the {need} role; {self.user} is {self.role}"
        return None


@dataclass(frozen=True)
class Alert:
    """One of the daemon's alerts (it works them out: `status` carries them; the TUI only shows them)."""

    severity: str  # "error" | "warning" | "info"
    text: str
    fix: str = ""


def alerts_from_status(status: dict[str, Any] | None) -> list[Alert]:
    """The daemon's alerts from its `status` answer, in its order (worst first)."""
    if not status:
        return []
    return [
        Alert(str(a.get("severity", "info")), str(a.get("text", "")), str(a.get("fix") or ""))
        for a in status.get("alerts") or []
    ]


SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int | Decimal]) -> str:
    """Bars for daily totals with exact arithmetic (money never goes through float)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    top = len(SPARK_BARS) - 1
    if span == 0:
        return SPARK_BARS[top if high > 0 else 0] * len(values)
    return "".join(SPARK_BARS[int((v - low) * top // span)] for v in values)


def format_log_line(line: dict[str, Any]) -> str:
    cid = f" [{line['cid']}]" if line.get("cid") else ""
    ts = str(line.get("ts", ""))[11:23]  # HH:MM:SS.mmm: the date wastes a narrow terminal
    return f"{ts} {line.get('level', ''):<7} {line.get('component', ''):<10}{cid} {line.get('msg', '')}"


@dataclass(frozen=True)
class LogFilter:
    level: str = "DEBUG"
    component: str = ""
    search: str = ""

    def keep(self, line: dict[str, Any]) -> bool:
        if LEVEL_RANK.get(str(line.get("level")), 20) < LEVEL_RANK[self.level]:
            return False
        if self.component and not str(line.get("component", "")).startswith(self.component):
            return False
        return not self.search or self.search.lower() in str(line.get("msg", "")).lower()


class LogBuffer:
    """The last `size` log lines the daemon sent, numbered locally (the daemon's seq restarts with it).

    Readers remember the number of the last line they saw and ask for what came after; a reader that fell
    more than `size` lines behind simply gets what is left.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._lines: deque[dict[str, Any]] = deque(maxlen=size)
        self.total = 0  # lines ever appended; the number of the newest line

    def __len__(self) -> int:
        return len(self._lines)

    def extend(self, lines: Iterable[dict[str, Any]]) -> int:
        before = self.total
        for line in lines:
            self._lines.append(line)
            self.total += 1
        return self.total - before

    def reset(self, lines: Iterable[dict[str, Any]]) -> None:
        """After a reconnect: the daemon's backlog replaces ours (readers see a jump and redraw)."""
        self._lines.clear()
        self.total += self.size + 1  # every reader is now "too far behind" and redraws everything
        self.extend(lines)

    def since(self, number: int) -> tuple[list[dict[str, Any]], bool]:
        """Lines appended after line `number`, and whether the reader missed some (must redraw)."""
        behind = self.total - number
        if behind <= 0:
            return [], False
        if behind > len(self._lines):
            return list(self._lines), True
        return [self._lines[i] for i in range(len(self._lines) - behind, len(self._lines))], False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._lines)


@dataclass
class DaemonState:
    """The app's view of the connection, replaced wholesale by connection messages."""

    socket_path: str = ""
    connected: bool = False
    hello: dict[str, Any] = field(default_factory=dict)
    caps: Capabilities = field(default_factory=Capabilities)
    status: dict[str, Any] | None = None
    feeds: dict[str, Any] = field(default_factory=dict)  # optional method -> last result
    error: str | None = None
    fix: str | None = None
    attempt: int = 0
    retry_in: float = 0.0
    missed_events: int = 0
