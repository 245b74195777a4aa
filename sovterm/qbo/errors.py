"""Typed QuickBooks errors, parsed from Intuit `Fault` bodies (JSON or XML, on any HTTP status).

Each error carries Intuit's `code`, `message`, `detail`, `element` and the `intuit_tid` of the
response, so the operator and Intuit support can find the exact call. Messages never contain tokens.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from sovterm.errors import UserFacingError


class QBOError(UserFacingError):
    """Base for errors reported by QuickBooks (or its OAuth server)."""

    code = "qbo_error"

    def __init__(
        self,
        message: str,
        *,
        fault_code: str | None = None,
        detail: str | None = None,
        element: str | None = None,
        intuit_tid: str | None = None,
        http_status: int | None = None,
        fix: str | None = None,
    ) -> None:
        shown = message if not detail or detail == message else f"{message}: {detail}"
        if fault_code:
            shown = f"QuickBooks error {fault_code}: {shown}"
        if intuit_tid:
            shown = f"{shown} (intuit_tid {intuit_tid})"
        super().__init__(shown, fix=fix)
        self.fault_code = fault_code
        self.fault_message = message
        self.detail = detail
        self.element = element
        self.intuit_tid = intuit_tid
        self.http_status = http_status


class QBOValidationError(QBOError):
    code = "qbo_validation"


class QBODuplicateName(QBOValidationError):
    """6240: a list entity with this name exists; look it up and reuse it."""

    code = "qbo_duplicate_name"


class QBODuplicateDocNumber(QBOValidationError):
    """6140: the DocNumber is taken; for sovterm markers this means the document already exists."""

    code = "qbo_duplicate_docnumber"


class QBOStaleObject(QBOError):
    """5010: the SyncToken is old; re-read and retry."""

    code = "qbo_stale_object"


class QBOAuthError(QBOError):
    code = "qbo_auth"


class QBOWrongEnvironment(QBOAuthError):
    """A sandbox company called on the production URL or the other way round."""

    code = "qbo_wrong_environment"


class QBOThrottled(QBOError):
    code = "qbo_throttled"


class QBOServerError(QBOError):
    code = "qbo_server_error"


class QBOUnavailable(QBOServerError):
    """503, a timeout, or a dropped connection: the outcome of a write is unknown."""

    code = "qbo_unavailable"


class QBOReconnectRequired(UserFacingError):
    """The refresh token is dead (expired, revoked, rotated away): the operator must connect again."""

    code = "qbo_reconnect_required"

    def __init__(self, realm_id: str, reason: str) -> None:
        super().__init__(
            f"QuickBooks company {realm_id} must be reconnected: {reason}",
            fix="run `sovterm setup qbo` to connect the company again",
        )
        self.realm_id = realm_id
        self.reason = reason


class OAuthStateError(UserFacingError):
    """The OAuth callback's `state` is missing, unknown, already used or expired: nothing was stored."""

    code = "qbo_oauth_state"


class OAuthError(UserFacingError):
    """Intuit's authorization server refused (consent denied, bad code, wrong keys...)."""

    code = "qbo_oauth"


class QBOTokenStoreError(UserFacingError):
    """New tokens arrived but could not be saved; they are kept in memory and saved on the next call."""

    code = "qbo_token_store"


@dataclass(frozen=True)
class FaultItem:
    code: str
    message: str
    detail: str
    element: str


_THROTTLE_CODES = {"3001", "003001"}
_WRONG_ENV_CODES = {"3100", "130", "7001", "007001"}
_AUTH_CODES = {"100", "120", "3200", "3201", "3202"}
_ERROR_CODE_IN_MESSAGE = re.compile(r"errorCode=0*(\d+)")


def _norm_code(code: str, message: str) -> str:
    code = (code or "").strip().lstrip("0") or "0"
    if code == "0":
        found = _ERROR_CODE_IN_MESSAGE.search(message or "")
        if found:
            return found[1]
    return code


def _field(err: dict[str, object], key: str) -> str:
    """Intuit's JSON faults spell keys in either case (`code`/`Code`, `Message`/`message`)."""
    return str(err.get(key) or err.get(key.lower()) or err.get(key[0].upper() + key[1:]) or "")


def _items_from_json(data: object) -> tuple[str, list[FaultItem]] | None:
    if not isinstance(data, dict):
        return None
    fault = data.get("Fault") or data.get("fault")
    if not isinstance(fault, dict):
        return None
    errors = fault.get("Error") or fault.get("error") or []
    items = []
    for err in errors if isinstance(errors, list) else [errors]:
        if not isinstance(err, dict):
            continue
        items.append(FaultItem(*(_field(err, k) for k in ("code", "Message", "Detail", "element"))))
    return str(fault.get("type") or ""), items


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _items_from_xml(text: str) -> tuple[str, list[FaultItem]] | None:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    fault = root if _local(root.tag) == "Fault" else next(
        (el for el in root.iter() if _local(el.tag) == "Fault"), None
    )
    if fault is None:
        return None
    items = []
    for err in fault:
        if _local(err.tag) != "Error":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in err}
        items.append(
            FaultItem(err.get("code", ""), fields.get("Message", ""), fields.get("Detail", ""), err.get("element", ""))
        )
    return fault.get("type", ""), items


def parse_fault_body(text: str) -> tuple[str, list[FaultItem]] | None:
    """(fault type, errors) if the body is an Intuit Fault in JSON or XML, else None."""
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return _items_from_xml(stripped)
    if stripped.startswith("{"):
        try:
            return _items_from_json(json.loads(stripped))
        except ValueError:
            return None
    return None


def fault_to_error(
    fault_type: str, items: list[FaultItem], *, http_status: int | None, intuit_tid: str | None
) -> QBOError:
    """Pick the typed error for a Fault: the first error decides, the others go into `detail`."""
    first = items[0] if items else FaultItem("", fault_type or f"HTTP {http_status}", "", "")
    code = _norm_code(first.code, first.message)
    detail = "; ".join(filter(None, [first.detail] + [f"{i.code}: {i.message}" for i in items[1:]]))
    kind = fault_type.lower()
    text = f"{first.message} {first.detail}".lower()
    kwargs = dict(
        fault_code=code, detail=detail or None, element=first.element or None,
        intuit_tid=intuit_tid, http_status=http_status,
    )
    cls: type[QBOError]
    fix = None
    if code in _THROTTLE_CODES or "throttleexceeded" in text or http_status == 429:
        cls = QBOThrottled
    elif code in _WRONG_ENV_CODES or "wrong cluster" in text or "sandbox url" in text:
        cls, fix = QBOWrongEnvironment, (
            "the company belongs to the other environment: set qbo.environment to match the key set "
            "used to connect, then run `sovterm setup qbo` again"
        )
    elif code == "5010":
        cls = QBOStaleObject
    elif code == "6140":
        cls = QBODuplicateDocNumber
    elif code == "6240":
        cls = QBODuplicateName
    elif kind.startswith(("authentication", "authorization")) or code in _AUTH_CODES or http_status in (401, 403):
        cls, fix = QBOAuthError, "run `sovterm setup qbo` to connect the company again"
    elif http_status == 503:
        cls = QBOUnavailable
    elif kind.startswith("system") or (http_status or 0) >= 500:
        cls = QBOServerError
    else:
        cls = QBOValidationError
    return cls(first.message or fault_type or "QuickBooks fault", fix=fix, **kwargs)  # type: ignore[arg-type]


def error_from_response(status: int, text: str, intuit_tid: str | None) -> QBOError | None:
    """The typed error a response stands for (a Fault body, or a failing status), else None."""
    parsed = parse_fault_body(text)
    if parsed is not None and (parsed[1] or status >= 400):
        return fault_to_error(parsed[0], parsed[1], http_status=status, intuit_tid=intuit_tid)
    if status >= 400:
        return fault_to_error("", [], http_status=status, intuit_tid=intuit_tid)
    return None
