"""Typed QuickBooks errors, parsed from whatever Intuit answered, on any HTTP status.

Intuit answers in several shapes: the `Fault` envelope (JSON or XML), the same in lower case
(`{"fault": {"error": [{"message", "detail", "code"}]}}`, typical of 401s), the OAuth gateway's
`{"error": "...", "error_description": "..."}`, and plain text or an HTML page from a proxy. Each
error keeps Intuit's words (`code`, `message`, `detail`, `element`) and the `intuit_tid` of the
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


class QBOAccessRefused(QBOAuthError):
    """3100 ApplicationAuthorizationFailed: this app may not use this company, for one of several reasons."""

    code = "qbo_access_refused"


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
_ACCESS_REFUSED_CODES = {"3100"}
_WRONG_ENV_CODES = {"130", "7001", "007001"}
_AUTH_CODES = {"100", "120", "3200", "3201", "3202"}
_ERROR_CODE_IN_MESSAGE = re.compile(r"errorCode=0*(\d+)")


def _norm_code(code: str, message: str) -> str:
    """Intuit's code without leading zeros, from `errorCode=003100` in the message if need be; "" if none."""
    code = (code or "").strip().lstrip("0")
    if not code:
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


def _oauth_error(text: str) -> tuple[str, str] | None:
    """(error, description) of Intuit's OAuth gateway answer `{"error": "invalid_token", "error_description": ...}`."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None
    return data["error"], str(data.get("error_description") or "")


_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_TOKEN_LIKE = re.compile(r"""(?i)\b(bearer\s+|(?:access|refresh)_token["']?\s*[=:]\s*["']?)[^\s,;"'&]+""")
_PLAIN_TEXT_LIMIT = 200


def _plain_words(text: str) -> str:
    """What a non-JSON, non-XML body says (a proxy's HTML page, a bare "Unauthorized"), short."""
    words = _SPACE.sub(" ", _TAGS.sub(" ", text)).strip()
    return words if len(words) <= _PLAIN_TEXT_LIMIT else words[: _PLAIN_TEXT_LIMIT - 1] + "…"


def scrub(text: str, secret: str | None = None) -> str:
    """Intuit's words without the token sent or anything that looks like one (a body may echo it)."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _TOKEN_LIKE.sub(lambda m: f"{m[1]}[redacted]", text)


def _access_refused_fix(detail: str) -> str:
    """3100 is not only the wrong environment: name every cause Intuit and its SDK users report."""
    causes = [
        ("the company belongs to the other environment than qbo.environment (sandbox keys and URL for a sandbox "
         "company, production for production)"),
        ("the connection lacks the accounting scope (com.intuit.quickbooks.accounting): the app's keys or the "
         "consent did not include it"),
        "the token belongs to another company than this realm id",
        ("the company's QuickBooks subscription has lapsed, or the app was disconnected in QuickBooks "
         "(Settings > Apps)"),
    ]
    if "scope" in detail.lower():
        causes.insert(0, causes.pop(1))
    listed = "; ".join(f"({n}) {cause}" for n, cause in enumerate(causes, 1))
    return (f"QuickBooks refused this app access to the company; likely causes: {listed}. "
            "Fix the cause, then run `sovterm setup qbo` to connect again")


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
        fault_code=code or None, detail=detail or None, element=first.element or None,
        intuit_tid=intuit_tid, http_status=http_status,
    )
    cls: type[QBOError]
    fix = None
    if code in _THROTTLE_CODES or "throttleexceeded" in text or http_status == 429:
        cls = QBOThrottled
    elif code in _ACCESS_REFUSED_CODES:
        cls, fix = QBOAccessRefused, _access_refused_fix(first.detail)
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


def error_from_response(
    status: int, text: str, intuit_tid: str | None, *, secret: str | None = None
) -> QBOError | None:
    """The typed error a response stands for (a Fault body, or a failing status), else None.

    Whatever the body's shape, Intuit's own words reach the message: a failing status is never just
    "HTTP 401" when the body said why. `secret` (the access token sent) is cut out of those words."""
    parsed = parse_fault_body(text)
    if status < 400 and (parsed is None or not parsed[1]):
        return None
    text = scrub(text, secret)
    parsed = parse_fault_body(text)
    if parsed is not None and (parsed[1] or status >= 400):
        return fault_to_error(parsed[0], parsed[1], http_status=status, intuit_tid=intuit_tid)
    gateway = _oauth_error(text) if text.lstrip().startswith("{") else None
    if gateway is not None:
        item = FaultItem("", f"QuickBooks answered HTTP {status} {gateway[0]}", gateway[1], "")
        return fault_to_error("", [item], http_status=status, intuit_tid=intuit_tid)
    words = _plain_words(text) if parsed is None else ""
    item = FaultItem("", f"QuickBooks answered HTTP {status}" + (f": {words}" if words else ""), "", "")
    return fault_to_error("", [item], http_status=status, intuit_tid=intuit_tid)
