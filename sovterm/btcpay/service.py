"""The BTCPay connection as the daemon runs it: the stored connection, the clients per store, setup.

One connection serves the stores the operator selected: the URL (and what we learnt at connect) in
`kv` as `btcpay:connection`, the server-wide API key in the SecretStore as `btcpay:api_key`, one webhook
secret per store as `btcpay:webhook:<store>`. A store may have its own key (`btcpay:api_key:<store>`,
e.g. a key its owner scoped to that store alone): every call for that store then uses it, and its
permissions are checked against that store; stores without one use the server-wide key. BTCPay being
down or refusing the server-wide key is a connector state (`not_configured`, `checking`, `connected`,
`unreachable`, `unauthorized`) that /readyz, `sovterm status` and the TUI show, never a crash: the
daemon keeps accepting webhooks and retries on its own. BTCPay refusing a store's own key fails that
store's polls alone (`store_error`), not the connection.

Webhook intake and polling live in `btcpay.intake` (built later, with the ports of the parts it feeds);
the status report in `btcpay.status`.

Where the setup wizard's proposed URL comes from, in this order, and only while nothing is connected:
1. the `btcpay.url` setting (config file, or `SOVTERM_BTCPAY__URL`, which the Umbrel and StartOS
   packages set to BTCPay's address on the box);
2. the legacy Umbrel variables `APP_BTCPAY_SERVER_IP` + `APP_BTCPAY_SERVER_PORT` (Umbrel's
   btcpay-server app exported them until late 2022; some boxes still carry them);
3. nothing: the operator types the URL.
"""

from __future__ import annotations

import asyncio
import logging
import secrets as token
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import aiohttp

from sovterm.btcpay import ledger
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import (
    BTCPayAuthError,
    BTCPayError,
    BTCPayNotFound,
    BTCPayUnavailable,
)
from sovterm.store.group_commit import GroupCommit
from sovterm.btcpay.models import Store
from sovterm.btcpay.permissions import (
    FEATURE_PERMISSIONS,
    missing_permissions,
    permission_warnings,
)
from sovterm.btcpay.setup import (
    ensure_webhook,
    store_key_name,
    webhook_path,
    webhook_secret_name,
)
from sovterm.btcpay.webhooks import SUBSCRIBED_EVENTS
from sovterm.config import Settings
from sovterm.errors import UserFacingError
from sovterm.events import EventBus
from sovterm.health import Connectors
from sovterm.store import kv
from sovterm.store.db import Database
from sovterm.store.secrets import Secret, SecretStore

log = logging.getLogger(__name__)

CONNECTOR = "btcpay"
CONNECTION_KEY = "btcpay:connection"
SETUP_KEY = "setup:btcpay"
API_KEY_SECRET = "btcpay:api_key"
DEFAULT_FEATURES = ("sync", "webhooks", "payouts")
QUICK_TIMEOUT_S = 10.0  # status and setup answer an operator who is waiting: no retries, short timeout


def propose_url(settings: Settings, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(url, where it came from) for the setup wizard; see the module docstring for the order."""
    if settings.btcpay.url:
        return settings.btcpay.url, "setting btcpay.url (config file or SOVTERM_BTCPAY__URL)"
    ip, port = environ.get("APP_BTCPAY_SERVER_IP"), environ.get("APP_BTCPAY_SERVER_PORT")
    if ip and port and port.isdigit():
        return f"http://{ip}:{port}", "Umbrel environment (APP_BTCPAY_SERVER_IP, APP_BTCPAY_SERVER_PORT)"
    return None, None


def check_features(features: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(features or DEFAULT_FEATURES))
    unknown = [f for f in chosen if f not in FEATURE_PERMISSIONS]
    if unknown:
        raise UserFacingError(
            f"unknown feature(s): {', '.join(unknown)}", fix=f"choose from {', '.join(FEATURE_PERMISSIONS)}"
        )
    return chosen


def permission_report(granted: Sequence[str], features: Sequence[str], store_id: str) -> list[dict[str, Any]]:
    """What the key lacks for this store: each permission, the features needing it, the string to grant."""
    return [
        {"permission": m.permission, "features": list(m.features), "grant": m.scoped(store_id)}
        for m in missing_permissions(granted, features, store_id)
    ]


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) < 10:
        raise UserFacingError(
            f"{url!r} is not a BTCPay Server address", fix="give the full URL, e.g. https://btcpay.example.com"
        )
    return url


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
        self._tasks: set[asyncio.Task[Any]] = set()
        # concurrent deliveries (and the re-reads they cause) share one transaction, hence one fsync;
        # the sync engine's job writes share it too
        self.commit = GroupCommit(db, inline=True)
        self._admin_lock = asyncio.Lock()
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
        self._use_connection(connection, api_key)
        self._selected = set(await ledger.selected_stores(self.db))
        for store_id in self._selected:
            secret = await self.secrets.get(webhook_secret_name(store_id))
            if secret is not None:
                self._webhook_secrets[store_id] = [secret]
            own_key = await self.secrets.get(store_key_name(store_id))
            if own_key is not None:
                self._use_store_key(store_id, own_key)
        self.connectors.set(CONNECTOR, "checking", f"first contact with {self.url} pending", ready=True)
        self._spawn(self.probe())

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.commit.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Background work the service owns: tracked, so `stop()` cancels and awaits it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("BTCPay background task failed", exc_info=task.exception())

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

    def _use_connection(self, connection: dict[str, Any], api_key: Secret) -> None:
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

    def _use_store_key(self, store_id: str, api_key: Secret) -> None:
        self._store_keys[store_id] = api_key
        self._store_clients[store_id] = self._full_client(api_key)

    def _drop_store_key(self, store_id: str) -> None:
        self._store_keys.pop(store_id, None)
        self._store_clients.pop(store_id, None)

    def has_own_key(self, store_id: str) -> bool:
        return store_id in self._store_keys

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

    @property
    def key_label(self) -> str | None:
        return (self._connection or {}).get("key_label")

    def _quick_client(self, url: str | None = None, api_key: Secret | None = None) -> BTCPayClient:
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
        return self._quick_client(api_key=self._store_keys.get(store_id))

    def _require_connection(self) -> BTCPayClient:
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
        client = self._quick_client()
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

    # -- setup -----------------------------------------------------------------------------------

    async def connect(self, url: str, api_key: Secret, features: Sequence[str] | None = None) -> dict[str, Any]:
        """Check the server and the key, report missing permissions per visible store, and keep the
        connection. Nothing is selected yet: `select_stores` follows."""
        url = _check_url(url)
        chosen = check_features(features)
        client = self._quick_client(url, api_key)
        async with self._admin_lock:
            try:
                info = await client.server_info()
                key_info = await client.current_api_key()
                stores = await client.list_stores()
            except BTCPayAuthError as exc:
                if exc.status == 401:
                    raise UserFacingError(
                        f"BTCPay at {url} refused the API key", fix="copy the key again from BTCPay (Account > API keys)"
                    ) from None
                raise
            except BTCPayUnavailable as exc:
                raise UserFacingError(
                    f"cannot reach BTCPay at {url}: {exc.message}",
                    fix="check the URL and that BTCPay Server is running and reachable from this machine",
                ) from None
            connection = {
                "url": url, "features": chosen, "server_version": info.version, "key_label": key_info.label,
                "connected_at": int(time.time()),
            }
            # a store with its own key stays followed whatever the server-wide key sees
            visible = [s.id for s in stores] + list(self._store_keys)
            async with self.db.transaction() as conn:
                await kv.put(None, CONNECTION_KEY, conn=conn, value=connection)
                await kv.put(None, SETUP_KEY, conn=conn, value={"done": False, "step": "select_stores", "at": int(time.time())})
                await self.secrets.put(API_KEY_SECRET, api_key, conn=conn)
                placeholders = ",".join("?" for _ in visible)
                await conn.execute(
                    f"UPDATE btcpay_stores SET selected = 0 WHERE selected = 1 AND store_id NOT IN ({placeholders})",
                    visible,
                )
            for store_id in [s for s in self._webhook_secrets if s not in visible]:
                del self._webhook_secrets[store_id]
            self._selected &= set(visible)
            self._use_connection(connection, api_key)
            self.set_connected()
        log.info("connected to BTCPay %s at %s; %d store(s) visible", info.version, url, len(stores))
        return {
            "url": url,
            "server_version": info.version,
            "key_label": key_info.label,
            "granted": list(key_info.permissions),
            "features": chosen,
            "stores": [self._store_report(s, key_info.permissions, chosen) for s in stores],
            "selected": await ledger.selected_stores(self.db),
        }

    async def stores(self) -> dict[str, Any]:
        """The stores the stored key can see, with the same permission report as `connect` (so a
        resumed wizard can offer them without asking for the key again)."""
        if self._connection is None or self._api_key is None:
            raise UserFacingError("BTCPay is not connected", fix="run `sovterm setup btcpay` first")
        client = self._quick_client()
        try:
            key_info = await client.current_api_key()
            visible = await client.list_stores()
        except BTCPayUnavailable as exc:
            raise UserFacingError(f"cannot reach BTCPay at {self.url}: {exc.message}",
                                  fix="check that BTCPay Server is running and reachable") from None
        features = self._connection.get("features", [])
        reports = [self._store_report(s, key_info.permissions, features) for s in visible
                   if s.id not in self._store_keys]
        for store_id in self._store_keys:
            reports.append(await self._own_key_report(store_id, features))
        return {
            "url": self.url,
            "features": features,
            "stores": reports,
            "selected": await ledger.selected_stores(self.db),
        }

    @staticmethod
    def _store_report(store: Store, granted: Sequence[str], features: Sequence[str],
                      api_key: str = "server") -> dict[str, Any]:
        missing = permission_report(granted, features, store.id)
        return {"id": store.id, "name": store.name, "missing": missing, "ready": not missing, "api_key": api_key,
                "warnings": permission_warnings(granted, features, store.id)}

    async def _own_key_report(self, store_id: str, features: Sequence[str]) -> dict[str, Any]:
        """The permission report of a store with its own key, read with that key."""
        client = self.quick_client_for(store_id)
        try:
            key_info = await client.current_api_key()
            store = await client.get_store(store_id)
        except BTCPayError as exc:
            row = await ledger.store_row(self.db, store_id)
            return {"id": store_id, "name": row["name"] if row else store_id, "ready": False, "api_key": "own",
                    "missing": [], "problem": f"its own API key: {exc.message}"}
        return self._store_report(store, key_info.permissions, features, api_key="own")

    async def _check_access(self, client: BTCPayClient, store_id: str, features: Sequence[str],
                            own: bool) -> tuple[Store, str | None, list[dict[str, Any]]]:
        """The store as `client`'s key sees it, the key's label and what the key lacks for optional work (pay
        links). A key that cannot see the store or lacks a required permission for it is refused, named by
        its label (keys are never shown)."""
        whose = f"the API key given for store {store_id}" if own else "the server-wide API key"
        try:
            key_info = await client.current_api_key()
            visible = {s.id: s for s in await client.list_stores()}
        except BTCPayAuthError as exc:
            if exc.status == 401:
                raise UserFacingError(f"BTCPay at {self.url} refuses {whose}",
                                      fix="copy the key again from BTCPay (Account > API keys)") from None
            raise
        except BTCPayUnavailable as exc:
            raise UserFacingError(f"cannot reach BTCPay at {self.url}: {exc.message}",
                                  fix="check that BTCPay Server is running and reachable") from None
        named = f"{whose} ({key_info.label or 'no label'!r})"
        if store_id not in visible:
            raise UserFacingError(
                f"{named} cannot see store {store_id}",
                fix=f"check the id, grant btcpay.store.canviewstoresettings:{store_id} to that key, or give the "
                    "store its own key (`sovterm setup btcpay --store ID --store-key --api-key-file FILE`)",
            )
        missing = permission_report(key_info.permissions, features, store_id)
        if missing:
            lines = "; ".join(f"{m['grant']} (for {', '.join(m['features'])})" for m in missing)
            raise UserFacingError(
                f"{named} lacks permissions for store {store_id}: {lines}",
                fix="create a key with these permissions in BTCPay and connect again",
            )
        return visible[store_id], key_info.label, permission_warnings(key_info.permissions, features, store_id)

    async def select_stores(self, store_ids: Sequence[str], *, keep_others: bool = False,
                            api_key: Secret | None = None) -> dict[str, Any]:
        """Follow these stores: register (or adopt) our webhook at each. The wizard's list forgets the stores
        it does not name; `keep_others` (the CLI) only adds. `api_key` is the one store's own key: it is
        checked against that store, stored encrypted for it alone, and used for all its calls."""
        self._require_connection()
        wanted = list(dict.fromkeys(store_ids))
        if not wanted:
            raise UserFacingError("no store given", fix="name at least one store id (see `sovterm setup btcpay`)")
        if api_key is not None and len(wanted) != 1:
            raise UserFacingError("a store's own API key is for exactly one store",
                                  fix="name the one store it belongs to with --store")
        features = self.features
        async with self._admin_lock:
            found: dict[str, tuple[Store, str | None, list[dict[str, Any]]]] = {}
            for store_id in wanted:
                own = api_key is not None or store_id in self._store_keys
                client = self._quick_client(api_key=api_key or self._store_keys.get(store_id))
                found[store_id] = await self._check_access(client, store_id, features, own)
            if api_key is not None:
                async with self.db.transaction() as conn:
                    await self.secrets.put(store_key_name(wanted[0]), api_key, conn=conn)
                self._use_store_key(wanted[0], api_key)
            previous = await ledger.selected_stores(self.db)
            done = [await self._adopt(store, label, features, warnings) for store, label, warnings in found.values()]
            removed = [] if keep_others else [s for s in previous if s not in wanted]
            for store_id in removed:
                await self._forget_store(store_id)
            await self._record_followed()
            self.set_connected()
        log.info("following BTCPay store(s) %s", ", ".join(sorted(self._selected)))
        self.stores_selected.set()  # the intake fills the ledger now rather than at the next interval
        return {"stores": done, "removed": removed}

    async def _adopt(self, store: Store, key_label: str | None, features: Sequence[str],
                     warnings: list[dict[str, Any]]) -> dict[str, Any]:
        """Mark one store followed and make its webhook point at us."""
        store_id = store.id
        own = store_id in self._store_keys
        settings = {"features": list(features), "default_currency": store.default_currency,
                    "api_key": "own" if own else "server", "api_key_label": key_label if own else None,
                    "permission_warnings": warnings}
        async with self.db.transaction() as conn:
            await ledger.upsert_store(conn, store_id, name=store.name, selected=True, settings=settings)
        self._selected.add(store_id)
        self._store_errors.pop(store_id, None)
        entry: dict[str, Any] = {"id": store_id, "name": store.name, "webhook": None,
                                 "api_key": settings["api_key"], "api_key_label": settings["api_key_label"]}
        if "webhooks" in features:
            hook = await ensure_webhook(self.db, self.secrets, self.client_for_store(store_id), store_id,
                                        self.settings.btcpay_webhook_base)
            secret = await self.secrets.get(webhook_secret_name(store_id))
            assert secret is not None
            self._webhook_secrets[store_id] = [secret]
            entry["webhook"] = {"id": hook.id, "url": hook.url, "events": list(SUBSCRIBED_EVENTS)}
        return entry

    async def _record_followed(self) -> None:
        """The setup progress lists every followed store (the wizard and `sovterm status` read it)."""
        stores = await ledger.selected_stores(self.db)
        step = "done" if stores else "select_stores"
        await kv.put(self.db, SETUP_KEY, {"done": bool(stores), "step": step, "at": int(time.time()), "stores": stores})

    async def unfollow_store(self, store_id: str) -> dict[str, Any]:
        """Stop following one store (its webhook deleted at BTCPay, its own key forgotten); the others stay."""
        self._require_connection()
        async with self._admin_lock:
            if store_id not in await ledger.selected_stores(self.db):
                raise UserFacingError(f"store {store_id} is not followed",
                                      fix="see the followed stores with `sovterm btcpay stores`")
            gone = await self._forget_store(store_id)
            await self._record_followed()
            self.set_connected()
        log.info("no longer following BTCPay store %s", store_id)
        return {"store_id": store_id, "webhook_deleted": gone}

    async def _forget_store(self, store_id: str) -> bool:
        """Stop following a store; remove our webhook at BTCPay if we can. True if it is gone there."""
        client = self.quick_client_for(store_id)
        row = await ledger.store_row(self.db, store_id)
        gone = True
        if row is not None and row["webhook_id"]:
            try:
                await client.delete_webhook(store_id, row["webhook_id"])
            except BTCPayNotFound:
                pass
            except BTCPayError as exc:
                log.warning("could not delete our webhook at store %s: %s", store_id, exc.message)
                gone = False
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE btcpay_stores SET selected = 0, webhook_id = NULL, updated_at = ? WHERE store_id = ?",
                (int(time.time()), store_id),
            )
            await self.secrets.delete(webhook_secret_name(store_id), conn=conn)
            await self.secrets.delete(store_key_name(store_id), conn=conn)
        self._webhook_secrets.pop(store_id, None)
        self._selected.discard(store_id)
        self._store_errors.pop(store_id, None)
        self._drop_store_key(store_id)
        return gone

    async def rotate_webhook_secret(self, store_id: str) -> dict[str, Any]:
        """Give the store's webhook a new secret. Until BTCPay confirms, deliveries signed with either
        secret are accepted (BTCPay may already sign with the new one); after, only the new one."""
        client = self.client_for_store(store_id)
        async with self._admin_lock:
            row = await ledger.store_row(self.db, store_id)
            if row is None or not row["selected"] or not row["webhook_id"]:
                raise UserFacingError(
                    f"sovterm has no webhook at store {store_id}", fix="select the store first (`sovterm setup btcpay`)"
                )
            old = list(self._webhook_secrets.get(store_id, []))
            new = Secret(token.token_urlsafe(32))
            self._webhook_secrets[store_id] = old + [new]
            try:
                hook = await client.update_webhook(
                    store_id, row["webhook_id"], self.webhook_url(store_id), secret=new, events=SUBSCRIBED_EVENTS
                )
            except BTCPayNotFound:
                self._webhook_secrets[store_id] = old
                hook = await ensure_webhook(self.db, self.secrets, client, store_id, self.settings.btcpay_webhook_base)
                new = await self.secrets.get(webhook_secret_name(store_id)) or new
            except BaseException:
                self._webhook_secrets[store_id] = old
                raise
            else:
                await self.secrets.put(webhook_secret_name(store_id), new)
            self._webhook_secrets[store_id] = [new]
        log.info("rotated the webhook secret of store %s", store_id)
        return {"store_id": store_id, "webhook_id": hook.id, "rotated_at": int(time.time())}

    async def disconnect(self) -> dict[str, Any]:
        """Delete our webhooks at BTCPay (when reachable) and forget the key; the ledger is kept."""
        async with self._admin_lock:
            if self._client is None:
                return {"disconnected": False, "detail": "BTCPay was not connected", "webhooks_left": []}
            rows = await self.db.fetchall("SELECT store_id FROM btcpay_stores WHERE webhook_id IS NOT NULL")
            left = [r[0] for r in rows if not await self._forget_store(r[0])]
            own_keys = await self.secrets.names(store_key_name(""))
            async with self.db.transaction() as conn:
                await conn.execute("UPDATE btcpay_stores SET selected = 0")
                await conn.execute("DELETE FROM kv WHERE key IN (?, ?)", (CONNECTION_KEY, SETUP_KEY))
                await self.secrets.delete(API_KEY_SECRET, conn=conn)
                for name in own_keys:
                    await self.secrets.delete(name, conn=conn)
            url = self.url
            self._connection = self._api_key = self._client = None
            self._webhook_secrets.clear()
            self._selected.clear()
            self._store_keys.clear()
            self._store_clients.clear()
            self._store_errors.clear()
            self.connectors.set(CONNECTOR, "not_configured", "disconnected; run `sovterm setup btcpay`", ready=True)
        log.info("disconnected from BTCPay at %s", url)
        return {"disconnected": True, "url": url, "webhooks_left": left}

    def connection_failure(self, store_id: str, exc: BTCPayError) -> bool:
        """BTCPay down, or the server-wide key refused: the whole connection fails. A store's own key
        refused (401) concerns that store alone; its neighbours keep being polled."""
        if isinstance(exc, BTCPayUnavailable):
            return True
        return isinstance(exc, BTCPayAuthError) and exc.status == 401 and not self.has_own_key(store_id)
