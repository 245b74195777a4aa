"""Typed BTCPay errors, so callers can react to the kind of failure rather than parse messages.

Every message is built from BTCPay's own `code`/`message` and the request's method and path (never
headers), so it is safe to show the operator and to log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovterm.errors import UserFacingError


@dataclass(frozen=True)
class FieldError:
    """One entry of BTCPay's 422 body `[{"path": ..., "message": ...}]`."""

    path: str
    message: str


class BTCPayError(UserFacingError):
    """A BTCPay call failed; `status` is the HTTP status (None if no response), `code` BTCPay's code."""

    code = "btcpay_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        btcpay_code: str | None = None,
        btcpay_message: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.status = status
        self.btcpay_code = btcpay_code  # `code` is taken by UserFacingError (our error category)
        self.btcpay_message = btcpay_message


class BTCPayAuthError(BTCPayError):
    """401 (bad/unknown key) or 403 (missing permission, or a store the key cannot see)."""

    code = "btcpay_auth"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        btcpay_code: str | None = None,
        btcpay_message: str | None = None,
        missing_permission: str | None = None,
    ) -> None:
        if missing_permission:
            fix = f"give the API key the permission {missing_permission} in BTCPay (Account > API keys)"
        elif status == 401:
            fix = "check the API key: it may have been deleted or mistyped"
        else:
            fix = "check that the API key has access to this store (BTCPay answers 403 for unknown stores too)"
        super().__init__(message, status=status, btcpay_code=btcpay_code, btcpay_message=btcpay_message, fix=fix)
        self.missing_permission = missing_permission


class BTCPayNotFound(BTCPayError):
    code = "btcpay_not_found"


class BTCPayValidationError(BTCPayError):
    """422: BTCPay rejected fields of the request."""

    code = "btcpay_validation"

    def __init__(self, message: str, *, errors: list[FieldError], status: int = 422) -> None:
        super().__init__(message, status=status, btcpay_code="validation")
        self.errors = errors


class BTCPayRateLimited(BTCPayError):
    """429 (from BTCPay's own limiter or a proxy in front of it)."""

    code = "btcpay_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        super().__init__(message, status=429, btcpay_code="rate-limited", fix="wait and retry")
        self.retry_after_s = retry_after_s


class BTCPayUnavailable(BTCPayError):
    """No usable answer: network error, timeout, or 5xx. Transient by nature."""

    code = "btcpay_unavailable"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(
            message,
            status=status,
            btcpay_code="unavailable",
            fix="check that BTCPay Server is running and reachable at the configured URL",
        )


class BTCPayBadResponse(BTCPayError):
    """BTCPay answered 2xx with a body we cannot read (not JSON, or not the expected shape)."""

    code = "btcpay_bad_response"
