"""Errors shared across parts.

`UserFacingError` carries a message written for the operator; it is shown as is by the CLI, the TUI
and the control socket. Anything else that escapes is internal: logged with a correlation id, and the
caller sees only that id.
"""


class UserFacingError(Exception):
    """An error whose message is safe and useful to show to the operator as is."""

    code = "user_error"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class ConfigError(UserFacingError):
    """The configuration is invalid; the message names the key, the value and what would be valid."""

    code = "config_error"


class StartupRefused(UserFacingError):
    """The daemon must not start (unsafe key file, newer database, another instance...)."""

    code = "startup_refused"
