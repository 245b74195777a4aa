"""Render `docs/control-api.md` from the method registry, so the reference never drifts from the code.

`python -m sovterm.parts.docs > docs/control-api.md`; a test fails when the file is out of date.
Every method's summary is the first line of its handler's docstring; its parameters and its result come
from its pydantic models; its part and audit action from its declaration.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sovterm import __version__
from sovterm.config import load_settings
from sovterm.control.roles import RolePolicy
from sovterm.control.server import ControlServer, Method
from sovterm.logs import LogRing, LogSetup
from sovterm.loops import Loops
from sovterm.parts.core import register_core_methods
from sovterm.services import Services
from sovterm.systemd import Notifier

INTRO = """\
# The control API

The daemon's administrative interface: JSON-RPC 2.0 over a Unix socket (`[control] socket`), one JSON
object per line in each direction. Nothing administrative is served on TCP. The CLI and the TUI both use
`sovterm.control.client.ControlClient`; a script may use any language.

## Connecting
- The socket is mode 0660 in a 0750 directory: only root, the daemon's user and members of the socket's
  group can reach it at all.
- The daemon reads the caller's credentials from the socket (`SO_PEERCRED`, `SO_PEERGROUPS`):
  root and the daemon's own user are **admin**; members of `[control] admin_group` are admin; members of
  `[control] viewer_group` are **viewer**; anyone else is refused with an error and disconnected.
  The groups are the connecting process's own at connect time, never the user's entry in /etc/group.
- Slots: `[control] max_clients` in all, an eighth of them kept for admins, at most half per user. A
  client may have 16 requests unanswered; past that the daemon reads no more from it until it reads its
  replies, and one that reads nothing for `[control] client_stuck_s` is disconnected. At most 8 live
  subscriptions (`events.subscribe`, `logs.tail` with `follow`) per connection.
- Send `hello` first: `{"jsonrpc":"2.0","id":1,"method":"hello","params":{"client":"my-script","protocol":1}}`
  answers the daemon's version and your role. A client speaking another protocol version is refused.

## Calls and errors
A request carries `id`, `method` and `params` (an object); the reply carries the same `id` and either
`result` or `error` `{code, message, data?}`:

| code | meaning |
|---|---|
| -32700 | the line was not JSON, or JSON nested too deeply |
| -32600 | not a JSON-RPC 2.0 request, or a line over 1 MiB |
| -32601 | no such method |
| -32602 | invalid parameters (the message names each); an unknown parameter is refused with the valid names |
| -32000 | a user-facing error: the message (with its fix) is written for the operator; show it as is |
| -32001 | forbidden: the method needs a role the caller does not have |
| -32603 | internal error: the message carries a correlation id to find in the daemon log |

## Notifications
Messages without an `id` are pushed by the daemon after `events.subscribe` or `logs.tail` with
`follow`: `event` `{topic, ts, ...}`, `logs.line` `{seq, ts, level, component, msg, cid?}`, and
`events.missed` `{count}` when the client read too slowly and that many notifications were dropped for
it (replies are never dropped). Topics include `sync.progress` `{done, total, rate, eta_s}`, `sync.job`,
`invoice.updated`, `connector.state` `{connector, state, detail}`, `loop.run`, `loop.skipped`,
`qbo.connected`, `alert`, `btcpay.webhook`, `btcpay.invoice`.

## Methods
Generated from the daemon's registry (`python -m sovterm.parts.docs`). Role is the least role that
may call the method. Part is the daemon part the method needs: while it is not running (the daemon is
starting or stopping) the call is refused with a user-facing error. "Audited as" is the action of the
one audit row every call writes (`audit.list`): outcome "ok" (or what the method says it did),
"refused" with the error's message, or "failed" with the error's type. Result lists the fields of the
answer.
"""


def registry() -> dict[str, Method]:
    """Every method the daemon registers, built without starting anything."""
    from sovterm.parts import PARTS

    settings = load_settings(None, {"SOVTERM_DATA_DIR": "/nonexistent", "HOME": "/nonexistent"})
    services = Services(settings, {}, Notifier({}), LogSetup(LogRing(size=100), []))
    async def no_audit(*row: Any, conn: Any = None) -> None:
        raise AssertionError("the registry is never called")

    server = ControlServer(
        Path("/nonexistent"), RolePolicy(0, None, None), parts=lambda name: None, audit=no_audit, version=__version__
    )

    async def no_reload() -> dict[str, Any]:
        return {}

    register_core_methods(server, services, reload=no_reload, loops=Loops(services))
    for part in PARTS:
        if part.methods is not None:
            part.methods(server, services)
    return server.methods


def _type_name(kind: Any) -> str:
    """`list[StoreStatus] \\| None` rather than `typing.Optional[list[sovterm.parts.btcpay.StoreStatus]]`."""
    if isinstance(kind, type) and not get_args(kind):
        text = kind.__name__
    else:
        text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", str(kind))
    return text.replace("NoneType", "None").replace("|", "\\|")


def _fields(model: type[BaseModel], *, defaults: bool) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        default = "" if not defaults or field.is_required() else f" = {field.default!r}"
        out.append(f"`{field.alias or name}`: {_type_name(field.annotation)}{default}")
    return out


def _params(method: Method) -> str:
    if method.params is None:
        return "none"
    return "<br>".join(_fields(method.params, defaults=True)) or "none"


def _result(method: Method) -> str:
    """The result models' fields (which list or variant they are), else the plain type."""
    models = method.result_models
    if not models:
        kind = method.result
        return "none" if kind in (None, type(None)) else f"`{_type_name(kind)}`"
    if models == [method.result]:
        return "<br>".join(_fields(models[0], defaults=False))
    how = "list of" if get_origin(method.result) is list else "one of"
    return "<br>".join(f"{how} {m.__name__}:<br>" + "<br>".join(_fields(m, defaults=False)) for m in models)


def _nested(kind: Any) -> list[type]:
    """The models and dataclasses named inside a field's type."""
    if isinstance(kind, type) and (issubclass(kind, BaseModel) or dataclasses.is_dataclass(kind)):
        return [kind]
    return [found for arg in get_args(kind) for found in _nested(arg)]


def _result_types(methods: dict[str, Method]) -> list[str]:
    """Every model or dataclass found inside a result (its fields, its why), for the closing section."""
    seen: set[type] = set()
    todo = [model for m in methods.values() for model in m.result_models]
    while todo:
        kind = todo.pop()
        hints = (kind.model_fields.items() if issubclass(kind, BaseModel)
                 else ((f.name, f) for f in dataclasses.fields(kind)))
        for _, field in hints:
            annotation = field.annotation if isinstance(field, FieldInfo) else get_type_hints(kind)[field.name]
            for inner in _nested(annotation):
                if inner not in seen:
                    seen.add(inner)
                    todo.append(inner)
    lines = ["\n## Result types\n", "The types named in the results above.\n",
             "| type | fields | what it is |", "|---|---|---|"]
    for kind in sorted(seen, key=lambda kind: (kind.__name__, kind.__module__)):  # a name two parts use: stable
        name = kind.__name__
        if issubclass(kind, BaseModel):
            fields = _fields(kind, defaults=False)
        else:
            hints = get_type_hints(kind)
            fields = [f"`{f.name}`: {_type_name(hints[f.name])}" for f in dataclasses.fields(kind)]
        own = kind.__dict__.get("__doc__") or ""  # not the base class's, nor a dataclass's generated signature
        why = "" if own.startswith(f"{name}(") else inspect.cleandoc(own).split("\n")[0]
        lines.append(f"| `{name}` | {'<br>'.join(fields)} | {why.replace('|', chr(92) + '|')} |")
    return lines


def render() -> str:
    methods = registry()
    lines = [INTRO]
    groups: dict[str, list[Method]] = {}
    for m in methods.values():
        groups.setdefault(m.name.split(".")[0], []).append(m)
    for group in sorted(groups):
        lines.append(f"\n### `{group}`\n")
        lines.append("| method | role | part | audited as | params | result | what it does |")
        lines.append("|---|---|---|---|---|---|---|")
        for m in sorted(groups[group], key=lambda m: m.name):
            summary = m.summary.replace("|", "\\|")
            part = f"`{m.part}`" if m.part else "-"
            audited = f"`{m.audit}`" if m.audit else "-"
            lines.append(f"| `{m.name}` | {m.role.name.lower()} | {part} | {audited} | {_params(m)} | {_result(m)} "
                         f"| {summary} |")
    lines += _result_types(methods)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
