"""The BTCPay connection as the daemon runs it: the stored connection and the clients per store.

One connection serves the stores the operator selected: the URL (and what we learnt at connect) in
`kv` as `btcpay:connection`, the server-wide API key in the SecretStore as `btcpay:api_key`, one webhook
secret per store as `btcpay:webhook:<store>`. A store may have its own key (`btcpay:api_key:<store>`,
e.g. a key its owner scoped to that store alone): every call for that store then uses it, and its
permissions are checked against that store; stores without one use the server-wide key. BTCPay being
down or refusing the server-wide key is a connector state (`not_configured`, `checking`, `connected`,
`unreachable`, `unauthorized`) that /readyz, `sovterm status` and the TUI show, never a crash: the
daemon keeps accepting webhooks and retries on its own. BTCPay refusing a store's own key fails that
store's polls alone (`store_error`), not the connection.

The operator's setup flows (connect, select stores, rotate a secret, disconnect) live in
`btcpay.setup`, the status report in `btcpay.status`, webhook intake and polling in `btcpay.intake`
(built later, with the ports of the parts it feeds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from sovterm.btcpay import ledger
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayError, BTCPayUnavailable
from sovterm.btcpay.permissions import DEFAULT_FEATURES
from sovterm.config import Settings
from sovterm.errors import UserFacingError
from sovterm.events import EventBus
from sovterm.health import Connectors
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.group_commit import GroupCommit
from sovterm.store.secrets import Secret, SecretStore
from sovterm.tasks import Background

log = logging.getLogger(__name__)

CONNECTOR = "btcpay"
CONNECTION_KEY = "btcpay:connection"
SETUP_KEY = "setup:btcpay"
API_KEY_SECRET = "btcpay:api_key"
QUICK_TIMEOUT_S = 10.0  # status and setup answer an operator who is waiting: no retries, short timeout


def webhook_secret_name(store_id: str) -> str:
    return f"btcpay:webhook:{store_id}"


def store_key_name(store_id: str) -> str:
    """The secret holding a store's own API key (a key scoped to that store only), when it has one."""
    return f"btcpay:api_key:{store_id}"


def webhook_path(store_id: str) -> str:
    """The route the daemon serves for this store's deliveries."""
    return f"/webhooks/btcpay/{store_id}"


class BTCPayService:
    """`services.btcpay`: the connection every part calls BTCPay through (`client_for_store`), and setup.

    Started first, before the parts that call BTCPay; it hands nothing on to them. What BTCPay sends us
    (webhooks, polls) goes through `btcpay.intake.BTCPayIntake`, built once those parts exist.
    """

    def __init__(
        self,
        *,
        db: Database,
        secrets: SecretStore,
        http: aiohttp.ClientSession,
        connectors: Connectors,
        settings: Settings,
        environ: Mapping[str, str],
        bus: EventBus | None = None,
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.http = http
        self.connectors = connectors
        self.settings = settings
        self.environ = environ
        self.bus = bus
        self._connection: dict[str, Any] | None = None
        self._api_key: Secret | None = None
        self._client: BTCPayClient | None = None
        # store -> the secrets a delivery may be signed with (two only while a rotation is in flight)
        self._webhook_secrets: dict[str, list[Secret]] = {}
        self._selected: set[str] = set()
        # stores with their own API key: the key and a client built on it
        self._store_keys: dict[str, Secret] = {}
        self._store_clients: dict[str, BTCPayClient] = {}
        # store -> why its last poll failed (a store-level refusal that leaves the others polled)
        self._store_errors: dict[str, str] = {}
        self._background = Background(log)
        # concurrent deliveries (and the re-reads they cause) share one transaction, hence one fsync;
        # the sync engine's job writes share it too
        self.commit = GroupCommit(db, inline=True)
        #: setup flows (btcpay.setup) change the connection one at a time
        self.admin_lock = asyncio.Lock()
        #: set when the operator selects stores: the intake polls them at once
        self.stores_selected = asyncio.Event()

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the stored connection; check BTCPay in the background (start-up never waits on it)."""
        connection = await kv.get(self.db, CONNECTION_KEY)
        api_key = await self.secrets.get(API_KEY_SECRET)
        if connection is None or api_key is None:
            self.connectors.set(CONNECTOR, "not_configured", "run `sovterm setup btcpay`", ready=True)
            return
        self.use_connection(connection, api_key)
        self._selected = set(await ledger.selected_stores(self.db))
        for store_id in self._selected:
            secret = await self.secrets.get(webhook_secret_name(store_id))
            if secret is not None:
                self._webhook_secrets[store_id] = [secret]
            own_key = await self.secrets.get(store_key_name(store_id))
            if own_key is not None:
                self.use_store_key(store_id, own_key)
        self.connectors.set(CONNECTOR, "checking", f"first contact with {self.url} pending", ready=True)
        self._background.spawn(self.probe())

    async def stop(self) -> None:
        await self._background.cancel()
        await self.commit.close()

    # -- connection ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def url(self) -> str | None:
        return None if self._connection is None else self._connection["url"]

    @property
    def features(self) -> list[str]:
        return list((self._connection or {}).get("features") or DEFAULT_FEATURES)

    def use_connection(self, connection: dict[str, Any], api_key: Secret) -> None:
        self._connection = connection
        self._api_key = api_key
        self._client = self._full_client(api_key)
        for store_id, key in self._store_keys.items():
            self._store_clients[store_id] = self._full_client(key)

    def _full_client(self, api_key: Secret) -> BTCPayClient:
        """A client for the daemon's own work (polls, re-reads): normal timeout, reads retried."""
        cfg = self.settings.btcpay
        assert self.url is not None
        return BTCPayClient(self.url, api_key, self.http, timeout_s=cfg.request_timeout_s,
                            retry_attempts=cfg.retry_attempts)

    def use_store_key(self, store_id: str, api_key: Secret) -> None:
        self._store_keys[store_id] = api_key
        self._store_clients[store_id] = self._full_client(api_key)

    def has_own_key(self, store_id: str) -> bool:
        return store_id in self._store_keys

    def store_key(self, store_id: str) -> Secret | None:
        """The store's own API key, if it has one."""
        return self._store_keys.get(store_id)

    def own_key_stores(self) -> list[str]:
        return list(self._store_keys)

    @property
    def connection(self) -> dict[str, Any] | None:
        """What we learnt at connect (url, features, server version, key label), as stored in `kv`."""
        return self._connection

    @property
    def followed(self) -> set[str]:
        return set(self._selected)

    def follow(self, store_id: str) -> None:
        self._selected.add(store_id)
        self._store_errors.pop(store_id, None)

    def unfollow(self, store_id: str) -> None:
        """Forget a store: its webhook secrets, its own key and client, its last poll error."""
        self._webhook_secrets.pop(store_id, None)
        self._selected.discard(store_id)
        self._store_errors.pop(store_id, None)
        self._store_keys.pop(store_id, None)
        self._store_clients.pop(store_id, None)

    def keep_only(self, visible: Sequence[str]) -> None:
        """After a new key: only the stores it (or their own key) can see stay followed."""
        for store_id in [s for s in self._webhook_secrets if s not in visible]:
            del self._webhook_secrets[store_id]
        self._selected &= set(visible)

    def forget_connection(self) -> None:
        """Disconnected: no key, no client, no store followed."""
        self._connection = self._api_key = self._client = None
        self._webhook_secrets.clear()
        self._selected.clear()
        self._store_keys.clear()
        self._store_clients.clear()
        self._store_errors.clear()

    def store_error(self, store_id: str) -> str | None:
        """Why the store's last poll failed, if it did."""
        return self._store_errors.get(store_id)

    def set_store_error(self, store_id: str, problem: str | None) -> None:
        """The intake's poll records why a store failed (None: it was polled fine)."""
        if problem is None:
            self._store_errors.pop(store_id, None)
        else:
            self._store_errors[store_id] = problem

    def webhook_secrets(self, store_id: str) -> list[Secret] | None:
        """The secrets a delivery for this store may be signed with (two only while a rotation is in flight)."""
        return self._webhook_secrets.get(store_id)

    def set_webhook_secrets(self, store_id: str, secrets: list[Secret]) -> None:
        self._webhook_secrets[store_id] = secrets

    @property
    def key_label(self) -> str | None:
        return (self._connection or {}).get("key_label")

    def quick_client(self, url: str | None = None, api_key: Secret | None = None) -> BTCPayClient:
        key = api_key or self._api_key
        target = url or self.url
        assert key is not None and target is not None
        return BTCPayClient(
            target, key, self.http, timeout_s=min(QUICK_TIMEOUT_S, self.settings.btcpay.request_timeout_s),
            retry_attempts=0,
        )

    def client_for_store(self, store_id: str) -> BTCPayClient:
        """The client for a store's calls: on the store's own key if it has one, else the server-wide key."""
        if self._client is None:
            raise UserFacingError("BTCPay is not connected", fix="run `sovterm setup btcpay`")
        return self._store_clients.get(store_id, self._client)

    def quick_client_for(self, store_id: str) -> BTCPayClient:
        return self.quick_client(api_key=self._store_keys.get(store_id))

    def require_connection(self) -> BTCPayClient:
        if self._client is None:
            raise UserFacingError(
                "BTCPay is not connected yet", fix="connect first: `sovterm setup btcpay --url URL --api-key-file FILE`"
            )
        return self._client

    def webhook_url(self, store_id: str) -> str:
        return self.settings.btcpay_webhook_base + webhook_path(store_id)

    # -- connector state -------------------------------------------------------------------------

    def set_connected(self) -> None:
        n = len(self._selected)
        following = f"following {n} store(s)" if n else "no store selected yet"
        self.connectors.set(CONNECTOR, "connected", f"{self.url}: {following}", ready=True)

    def set_failure(self, exc: BTCPayError) -> str:
        """Record a BTCPay failure as the connector state; returns the state's name."""
        if isinstance(exc, BTCPayAuthError) and exc.status == 401:
            self.connectors.set(
                CONNECTOR, "unauthorized",
                f"BTCPay at {self.url} refuses the API key (HTTP 401); connect again with a valid key "
                "(`sovterm setup btcpay`)",
                ready=False,
            )
            return "unauthorized"
        self.connectors.set(CONNECTOR, "unreachable", f"BTCPay at {self.url}: {exc.message}", ready=False)
        return "unreachable"

    async def probe(self) -> dict[str, Any]:
        """One quick look at BTCPay (health + server info) that also sets the connector state."""
        client = self.quick_client()
        try:
            health = await client.health()
            info = await client.server_info()
        except BTCPayAuthError as exc:
            return {"reachable": True, "state": self.set_failure(exc)}
        except BTCPayError as exc:
            return {"reachable": False, "state": self.set_failure(exc), "error": exc.message}
        self.set_connected()
        return {"reachable": True, "state": "connected", "server_version": info.version,
                "synchronized": health.synchronized}

    def connection_failure(self, store_id: str, exc: BTCPayError) -> bool:
        """BTCPay down, or the server-wide key refused: the whole connection fails. A store's own key
        refused (401) concerns that store alone; its neighbours keep being polled."""
        if isinstance(exc, BTCPayUnavailable):
            return True
        return isinstance(exc, BTCPayAuthError) and exc.status == 401 and not self.has_own_key(store_id)
