"""Configuration: a TOML file, overridden by `SOVTERM_<SECTION>__<KEY>` environment variables.

Settings are built explicitly (`load_settings(path, environ)`) and passed down; nothing reads the
process environment behind the caller's back, so tests build what they need without touching globals.
A bad value is reported with its key, the value given and what would be valid.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sovterm.config_source import default_socket, read_raw
from sovterm.errors import ConfigError
from sovterm.store.secrets import Secret


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = ""  # defaults to http://<host>:<port>
    max_body_bytes: int = Field(1_048_576, ge=1024)
    request_timeout_s: float = Field(30.0, gt=0)
    # connections (#19): a request head must arrive within idle_timeout_s of connecting or of the last answer
    idle_timeout_s: float = Field(15.0, gt=0)
    max_connections: int = Field(4096, ge=8)  # also kept below the open-file limit, minus a reserve
    max_connections_per_address: int = Field(64, ge=1)  # a trusted proxy's own address is exempt
    # addresses (or networks, "10.21.0.0/16") whose X-Forwarded-For names the real client
    trusted_proxies: list[str] = []
    # requests per minute per client address, by route (429 with Retry-After beyond)
    rate_limit_webhook_per_min: int = Field(6000, ge=1)  # bursts of as many: a backlog BTCPay flushes after an outage
    rate_limit_callback_per_min: int = Field(30, ge=1)
    rate_limit_status_per_min: int = Field(120, ge=1)
    rate_limit_metrics_per_min: int = Field(120, ge=1)
    rate_limit_health_per_min: int = Field(600, ge=1)
    rate_limit_paywall_per_min: int = Field(60, ge=1)  # 402 challenges (each a BTCPay invoice) and refusals

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, v: Any) -> Any:
        if isinstance(v, str):  # from the environment: "10.21.0.0/16, 127.0.0.1"
            v = [item for item in v.replace(",", " ").split() if item]
        for item in v if isinstance(v, list) else ():
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.21.0.1 or 10.21.0.0/16)") from None
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class ControlSettings(_Section):
    socket: Path | None = None  # defaults to $RUNTIME_DIRECTORY/control.sock
    socket_group: str | None = None  # group owning the socket and its directory; default: ours
    admin_group: str | None = "sovterm-admin"
    viewer_group: str | None = "sovterm-viewer"
    max_clients: int = Field(64, ge=1)
    client_queue: int = Field(1000, ge=10)
    client_stuck_s: float = Field(60.0, gt=0)  # a client reading no reply this long is disconnected


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file_max_bytes: int = Field(10 * 1024 * 1024, ge=64 * 1024)
    file_count: int = Field(5, ge=1, le=100)
    ring_size: int = Field(5000, ge=100)


class BTCPaySettings(_Section):
    url: str | None = None  # proposed in setup; the connected URL is stored by the daemon
    webhook_url: str | None = None  # where BTCPay posts webhooks, if not <public_url> (e.g. an internal address)
    request_timeout_s: float = Field(30.0, gt=0)
    poll_interval_s: int = Field(300, ge=10)
    poll_window_days: int = Field(3, ge=1)
    retry_attempts: int = Field(4, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v


class QBOSettings(_Section):
    client_id: str | None = None
    client_secret: Secret | None = None
    client_secret_file: Path | None = None
    environment: Literal["sandbox", "production"] = "sandbox"
    redirect_uri: str | None = None  # defaults to <public_url>/oauth/qbo/callback
    authorize_url: str = "https://appcenter.intuit.com/connect/oauth2"
    token_url: str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    revoke_url: str = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
    api_base: str | None = None  # defaults per environment
    request_timeout_s: float = Field(60.0, gt=0)
    requests_per_min: int = Field(450, ge=1, le=500)  # Intuit allows 500 per realm; keep headroom
    batches_per_min: int = Field(36, ge=1, le=40)
    concurrency: int = Field(4, ge=1, le=10)

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="after")
    def _one_secret(self) -> QBOSettings:
        if self.client_secret and self.client_secret_file:
            raise ValueError("set client_secret or client_secret_file, not both")
        return self

    def resolved_api_base(self) -> str:
        if self.api_base:
            return self.api_base.rstrip("/")
        if self.environment == "production":
            return "https://quickbooks.api.intuit.com"
        return "https://sandbox-quickbooks.api.intuit.com"

    def resolved_client_secret(self) -> Secret | None:
        if self.client_secret:
            return self.client_secret
        if self.client_secret_file:
            try:
                return Secret(self.client_secret_file.read_text().strip())
            except OSError as exc:
                raise ConfigError(
                    f"qbo.client_secret_file: cannot read {self.client_secret_file}: {exc.strerror}",
                    fix="point it at a readable file holding only the client secret",
                ) from exc
        return None


class SyncSettings(_Section):
    workers: int = Field(4, ge=1, le=64)
    max_attempts: int = Field(8, ge=1)
    backoff_base_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(3600.0, gt=0)
    lease_s: int = Field(60, ge=5)
    interval_s: int = Field(5, ge=1)


class LinksSettings(_Section):
    checkout_minutes: int = Field(30, ge=5, le=1440)  # life of the BTCPay invoice a click creates
    default_expiry_days: int = Field(30, ge=1)
    write_to_qbo_memo: bool = False  # put the link in the QBO invoice's customer memo
    rate_limit_per_min: int = Field(30, ge=1)  # pay-page requests per client address


class PayoutsSettings(_Section):
    four_eyes_above_sats: int | None = Field(None, ge=1)  # approvals above this need a second admin
    poll_interval_s: int = Field(120, ge=10)


class BooksSettings(_Section):
    rates_interval_s: int = Field(3600, ge=60)  # how often to check that today's BTCPay rate is recorded
    remeasure_month_end: bool = False  # post the fair-value JournalEntries after each month's end


class ReaperSettings(_Section):
    interval_s: int = Field(30, ge=1)
    retention_days: int = Field(90, ge=1)


class HealthSettings(_Section):
    min_free_disk_mb: int = Field(500, ge=0)
    heartbeat_grace_s: int = Field(120, ge=5)


class AnalyticsSettings(_Section):
    crowdfund_refresh_s: int = Field(300, ge=30)  # how often Crowdfund apps and their invoice lists are re-read
    # The days of reports by default, and of the per-day aggregates that make them fast (a change
    # rebuilds them at the next start; a report asked for in another zone reads raw rows, slower).
    timezone: str = Field("UTC", max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: set [analytics] timezone to an IANA name such as "
                             "'Europe/Berlin' or 'UTC'") from None
        return value


class StatusPageSettings(_Section):
    # The page at / is public wherever the platform does not put a login in front of it (StartOS): by
    # default it shows counts and rates only; an operator whose page is behind a login may show money too.
    show_amounts: bool = False
    analytics_days: int = Field(30, ge=1, le=366)


class NotifySettings(_Section):
    """Notifications of alerts (sovterm/notify/); destinations are added with `sovterm notify add`."""

    check_interval_s: int = Field(30, ge=1)  # how often the daemon works out its alerts for notifications
    max_per_hour: int = Field(20, ge=1)  # per destination; more are held back and counted
    dedupe_s: int = Field(900, ge=0)  # the same alert starting (or clearing) again within this is not resent
    retry_base_s: float = Field(10.0, gt=0)  # first retry after a failed delivery; doubles each time
    retry_max_s: float = Field(1800.0, gt=0)
    max_attempts: int = Field(8, ge=1)  # then the message is given up (logged, counted)
    timeout_s: float = Field(30.0, gt=0)  # one delivery attempt


class AlertsSettings(_Section):
    """Thresholds of the upkeep alerts (docs/alerts.md): payouts waiting, the books-match check, backups."""

    payout_wait_min: int = Field(10, ge=0)  # a payout awaiting approval this long is an alert (0: at once)
    books_check_interval_s: int = Field(6 * 3600, ge=300)  # how often the books-match report runs in the background
    books_check_days: int = Field(7, ge=1, le=92)  # the closed days it covers, ending yesterday (UTC)
    backup_max_age_days: int = Field(7, ge=0)  # no backup for this long is an alert (0: the platform backs up)


class MintsSettings(_Section):
    """Trusted Cashu mints checked for health (sovterm/mints/); more are added with `sovterm mints add`."""

    trusted: list[str] = Field(default_factory=list)  # base URLs, e.g. https://mint.example.com
    check_interval_s: int = Field(60, ge=5)
    timeout_s: float = Field(10.0, gt=0)  # one check of one mint (both requests)
    max_skew_s: float = Field(60.0, gt=0)  # the mint's clock this far from ours is a problem

    @field_validator("trusted")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{url!r} is not a mint URL; give base URLs such as https://mint.example.com")
        return value


#: Paths sovterm itself answers on the listener: a priced path may not shadow them.
RESERVED_PATHS = ("/pay/", "/webhooks/", "/oauth/", "/healthz", "/readyz", "/metrics", "/status.json")


class PaywallEntry(_Section):
    """One `[[paywall]]` entry: a path prefix sold to machines over HTTP 402 (sovterm/paywall/)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")  # also the BTCPay item code `paywall:<name>`
    path: str  # a prefix such as /api/weather/
    price: str | None = None  # fiat price, exact decimal, with `currency`
    currency: str | None = None
    price_sats: int | None = Field(None, ge=1, le=100_000_000)
    access_s: int = Field(3600, ge=1, le=366 * 86_400)  # how long one payment grants access
    upstream: str | None = None  # http://127.0.0.1:PORT/... (loopback only): requests are proxied there
    directory: Path | None = None  # or files served from this directory
    store_id: str | None = None  # the BTCPay store selling it (default: the one selected store)
    description: str = Field("", max_length=200)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or v == "/" or "//" in v or any(seg in (".", "..") for seg in v.split("/")):
            raise ValueError("must be an absolute path prefix such as /api/weather/ (not / itself, no . or ..)")
        if any(v.startswith(r) or r.startswith(v) for r in RESERVED_PATHS):
            raise ValueError(f"overlaps sovterm's own routes ({', '.join(RESERVED_PATHS)}); choose another prefix")
        return v

    @field_validator("price")
    @classmethod
    def _price(cls, v: str | None) -> str | None:
        from decimal import Decimal, InvalidOperation

        try:
            if v is not None and not Decimal(v) > 0:
                raise ValueError
        except (InvalidOperation, ValueError):
            raise ValueError("must be a positive decimal amount such as \"0.25\" (in `currency`)") from None
        return v

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, v: str | None) -> str | None:
        from urllib.parse import urlsplit

        if v is None:
            return v
        url = urlsplit(v)
        host = url.hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if url.scheme != "http" or not loopback:
            raise ValueError("must be an http:// URL on this machine (127.0.0.1, ::1 or localhost), "
                             "e.g. http://127.0.0.1:9000/")
        return v.rstrip("/")

    @field_validator("directory")
    @classmethod
    def _directory(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_absolute():
            raise ValueError("must be an absolute path to a directory, e.g. /srv/reports")
        return v

    @model_validator(mode="after")
    def _one_price_one_target(self) -> PaywallEntry:
        if (self.price is None) == (self.price_sats is None):
            raise ValueError(f"paywall {self.name!r}: give either price (with currency) or price_sats")
        if self.price is not None and not (self.currency and len(self.currency) == 3 and self.currency.isalpha()):
            raise ValueError(f"paywall {self.name!r}: a fiat price needs currency, e.g. currency = \"USD\"")
        if (self.upstream is None) == (self.directory is None):
            raise ValueError(f"paywall {self.name!r}: give either upstream (a loopback URL) or directory")
        return self


def _unique_paywalls(entries: list[PaywallEntry]) -> list[PaywallEntry]:
    for what in ("name", "path"):
        seen = [getattr(e, what) for e in entries]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            raise ValueError(f"two [[paywall]] entries have the same {what}: {', '.join(twice)}; make each unique")
    return entries
class AngorSettings(_Section):
    """Angor projects (sovterm/angor/): the indexer and the Nostr relays they are read from. Nothing is
    contacted until a project is followed (`sovterm angor follow`)."""

    indexer_url: str = "https://fulcrum.angor.online"  # an indexer serving Angor's api/v1/query/Angor routes
    relays: list[str] = Field(default_factory=lambda: ["wss://relay.angor.io", "wss://relay2.angor.io"])
    refresh_s: int = Field(300, ge=10)  # how often the followed projects are re-read
    timeout_s: float = Field(10.0, gt=0)  # one source's answer; slower is shown as "slow"

    @field_validator("indexer_url")
    @classmethod
    def _indexer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an indexer URL; give one such as https://fulcrum.angor.online")
        return value.rstrip("/")

    @field_validator("relays")
    @classmethod
    def _relays(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one relay, e.g. [\"wss://relay.angor.io\"]")
        for url in value:
            if not url.startswith(("wss://", "ws://")):
                raise ValueError(f"{url!r} is not a relay URL; give websocket URLs such as wss://relay.angor.io")
        return value


class Settings(_Section):
    data_dir: Path
    listener: ListenerSettings = ListenerSettings()
    control: ControlSettings = ControlSettings()
    logging: LoggingSettings = LoggingSettings()
    btcpay: BTCPaySettings = BTCPaySettings()
    qbo: QBOSettings = QBOSettings()
    sync: SyncSettings = SyncSettings()
    links: LinksSettings = LinksSettings()
    payouts: PayoutsSettings = PayoutsSettings()
    books: BooksSettings = BooksSettings()
    reaper: ReaperSettings = ReaperSettings()
    health: HealthSettings = HealthSettings()
    status_page: StatusPageSettings = StatusPageSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    notify: NotifySettings = NotifySettings()
    mints: MintsSettings = MintsSettings()
    alerts: AlertsSettings = AlertsSettings()
    paywall: list[PaywallEntry] = []  # [[paywall]] entries (docs/paywall.md)
    angor: AngorSettings = AngorSettings()
    source: str = "defaults"  # where the settings came from, for `config check`

    @field_validator("paywall")
    @classmethod
    def _paywalls(cls, v: list[PaywallEntry]) -> list[PaywallEntry]:
        return _unique_paywalls(v)

    @property
    def public_url(self) -> str:
        return self.listener.public_url or f"http://{self.listener.host}:{self.listener.port}"

    @property
    def socket_path(self) -> Path:
        assert self.control.socket is not None  # filled in by load_settings
        return self.control.socket

    @property
    def qbo_redirect_uri(self) -> str:
        return self.qbo.redirect_uri or f"{self.public_url}/oauth/qbo/callback"

    @property
    def btcpay_webhook_base(self) -> str:
        return (self.btcpay.webhook_url or self.public_url).rstrip("/")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "sovterm.db"

    log_directory: Path | None = None  # systemd's $LOGS_DIRECTORY when set; else <data_dir>/logs

    @property
    def log_dir(self) -> Path:
        return self.log_directory or self.data_dir / "logs"


def _describe(error: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    """One line per problem: key, value given (never a secret, never a whole section), what is valid."""
    key = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (misspelt? see docs/configuration.md for the valid keys)"
    node: Any = raw
    for part in error["loc"]:
        if isinstance(node, list) and isinstance(part, int):  # an array of tables: [[paywall]]
            node = node[part] if part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
    msg = str(error["msg"]).removeprefix("Value error, ")
    if isinstance(node, (Mapping, list)) or error["type"] == "missing":
        return f"{key}: {msg}"
    shown = "(hidden)" if "secret" in key else repr(node)
    return f"{key} = {shown}: {msg}"


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    client: bool = False,
) -> Settings:
    """Read the file (if any) and the environment (`config_source.read_raw`), validate, and fill
    derived defaults."""
    environ = dict(os.environ if environ is None else environ)
    raw = read_raw(path, environ, client=client)
    source = raw["source"]
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e, raw) for e in exc.errors()]
        raise ConfigError(
            f"invalid configuration ({source}):\n  " + "\n  ".join(lines),
            fix="correct the values above in the file or the SOVTERM_* environment variables",
        ) from None
    if settings.control.socket is None:
        control = settings.control.model_copy(
            update={"socket": default_socket(environ, settings.data_dir)}
        )
        settings = settings.model_copy(update={"control": control})
    if settings.qbo.client_secret_file:
        settings.qbo.resolved_client_secret()  # fail now, naming the key, rather than at connect
    return settings
