"""Redaction for support bundles: what a stranger helping you may see, and what they may not.

The rule (also in docs/operations.md):
- always removed: every stored secret (API keys, webhook secrets, OAuth tokens, link-signing keys, the
  QuickBooks client secret, the master key) wherever it appears, and any value under a key whose name
  says secret/token/password/key/authorization/cookie/signature;
- personal data removed: e-mail addresses, buyer names and postal addresses, phone numbers, Bitcoin
  destination addresses, Lightning invoices and LNURLs, extended public keys, public IP addresses and
  pay-link tokens;
- kept, because support needs them to follow one payment and they reveal no one: BTCPay invoice and
  store ids, QuickBooks document ids, transaction ids, amounts, timestamps, states.
Known values (secrets from the store, buyer e-mails, names and destinations from the database) are
replaced wherever they occur; the patterns catch the same kinds of value in free text such as logs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any

MASK = "[redacted]"

SENSITIVE_KEY = re.compile(
    r"(secret|token|passw|api_?key|apikey|authorization|cookie|signature|credential|private|"
    r"email|e_mail|buyer|customer_?name|phone|address|destination|postal|zip)",
    re.IGNORECASE,
)
# key names that match the above but hold nothing sensitive
SAFE_KEYS = {"key_fingerprint", "ip_address_family"}

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("lightning", re.compile(r"\b(?:lnbcrt|lntbs|lnbc|lntb|lnsb|lnurl)[0-9a-z]{20,}\b", re.IGNORECASE)),
    ("address", re.compile(r"\b(?:bc1|tb1|bcrt1)[02-9ac-hj-np-z]{8,87}\b", re.IGNORECASE)),
    ("address", re.compile(r"\b[13mn2][a-km-zA-HJ-NP-Z1-9]{25,34}\b")),
    ("xpub", re.compile(r"\b[xyztuvXYZUV](?:pub|prv)[1-9A-HJ-NP-Za-km-z]{100,}\b")),
    ("token", re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{16,}")),
    ("token", re.compile(r"\b[0-9a-f]{40}\b")),  # BTCPay API keys are 40 hex digits
    ("link", re.compile(r"(/pay/)[A-Za-z0-9._~-]{8,}")),
]
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b")
MIN_KNOWN_LEN = 4  # shorter known values would redact ordinary words
MIN_LEAF_LEN = 16  # inside a JSON secret only long strings are credentials ("bearer" is not)


class Redactor:
    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        for value in known:
            self.add(value)

    def add(self, value: str | None, *, min_len: int = MIN_KNOWN_LEN) -> None:
        """A value to remove wherever it occurs; JSON secrets (token sets) add their long string leaves too."""
        if not value or len(value) < min_len:
            return
        self._known.add(value)
        try:
            parsed = json.loads(value)
        except ValueError:
            return
        if isinstance(parsed, (dict, list)):
            for leaf in _leaves(parsed):
                self.add(leaf, min_len=MIN_LEAF_LEN)

    def text(self, value: str) -> str:
        for known in sorted(self._known, key=len, reverse=True):  # longest first: no half-redacted tails
            if known in value:
                value = value.replace(known, MASK)
        for kind, pattern in PATTERNS:
            if kind == "link":
                value = pattern.sub(r"\1" + MASK, value)
            else:
                value = pattern.sub(f"[redacted:{kind}]", value)
        value = IPV4.sub(_public_ip, value)
        return IPV6.sub(_public_ip, value)

    def data(self, value: Any, key: str | None = None) -> Any:
        """A JSON-like structure with sensitive keys masked and every string scrubbed."""
        if key is not None and key not in SAFE_KEYS and SENSITIVE_KEY.search(key) and value not in (None, "", [], {}):
            return MASK
        if isinstance(value, dict):
            return {k: self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _public_ip(match: re.Match[str]) -> str:
    try:
        ip = ipaddress.ip_address(match.group(0))
    except ValueError:
        return match.group(0)
    return "[redacted:ip]" if ip.is_global else match.group(0)


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, str):
        yield value
