"""The operator's BTCPay setup flows, run by the `setup.btcpay.*` and `btcpay.*` control methods on the
connection (`BTCPayService`): connect with a key, follow stores (each with our webhook, optionally its
own key), unfollow one, rotate a webhook secret, disconnect; and the permission reports they answer.

Each flow holds the connection's `admin_lock`, so two operators' flows never interleave.

BTCPay shows a webhook's secret only when it is created, so we choose the secret ourselves and send
it on create and on every repair (`ensure_webhook`): an orphan webhook left by a crash (created at
BTCPay, not recorded here) is found again by its URL and simply gets a fresh secret.

Where the setup wizard's proposed URL comes from, in this order, and only while nothing is connected:
1. the `btcpay.url` setting (config file, or `SOVTERM_BTCPAY__URL`, which the Umbrel and StartOS
   packages set to BTCPay's address on the box);
2. the legacy Umbrel variables `APP_BTCPAY_SERVER_IP` + `APP_BTCPAY_SERVER_PORT` (Umbrel's
   btcpay-server app exported them until late 2022; some boxes still carry them);
3. nothing: the operator types the URL.
"""

from __future__ import annotations

import logging
import secrets as token
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sovterm.btcpay import ledger
from sovterm.btcpay.client import BTCPayClient
from sovterm.btcpay.errors import BTCPayAuthError, BTCPayError, BTCPayNotFound, BTCPayUnavailable
from sovterm.btcpay.models import Store, Webhook
from sovterm.btcpay.permissions import (
    DEFAULT_FEATURES,
    FEATURE_PERMISSIONS,
    missing_permissions,
    permission_warnings,
)
from sovterm.btcpay.service import (
    API_KEY_SECRET,
    CONNECTION_KEY,
    CONNECTOR,
    SETUP_KEY,
    BTCPayService,
    store_key_name,
    webhook_path,
    webhook_secret_name,
)
from sovterm.btcpay.webhooks import SUBSCRIBED_EVENTS
from sovterm.config import Settings
from sovterm.errors import UserFacingError
from sovterm.store import kv
from sovterm.store.secrets import Secret, SecretStore

log = logging.getLogger(__name__)


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


async def ensure_webhook(
    db: Any, secret_store: SecretStore, client: BTCPayClient, store_id: str, public_url: str
) -> Webhook:
    """Make BTCPay's webhook for this store point at us, with our events, enabled, with a secret we hold."""
    url = public_url.rstrip("/") + webhook_path(store_id)
    row = await ledger.store_row(db, store_id)
    known_id = row["webhook_id"] if row else None
    hooks = await client.list_webhooks(store_id)
    ours = next((h for h in hooks if h.id == known_id), None) or next((h for h in hooks if h.url == url), None)
    secret = await secret_store.get(webhook_secret_name(store_id))
    if secret is None or ours is None:
        secret = Secret(token.token_urlsafe(32))
    if ours is None:
        hook = await client.create_webhook(store_id, url, secret=secret, events=SUBSCRIBED_EVENTS)
    else:
        hook = await client.update_webhook(store_id, ours.id, url, secret=secret, events=SUBSCRIBED_EVENTS)
    async with db.transaction() as conn:
        await secret_store.put(webhook_secret_name(store_id), secret, conn=conn)
        await ledger.upsert_store(conn, store_id, webhook_id=hook.id)
    return hook


async def connect(btcpay: BTCPayService, url: str, api_key: Secret,
                  features: Sequence[str] | None = None) -> dict[str, Any]:
    """Check the server and the key, report missing permissions per visible store, and keep the
    connection. Nothing is selected yet: `select_stores` follows."""
    url = _check_url(url)
    chosen = check_features(features)
    client = btcpay.quick_client(url, api_key)
    async with btcpay.admin_lock:
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
        visible = [s.id for s in stores] + btcpay.own_key_stores()
        async with btcpay.db.transaction() as conn:
            await kv.put(None, CONNECTION_KEY, conn=conn, value=connection)
            await kv.put(None, SETUP_KEY, conn=conn, value={"done": False, "step": "select_stores", "at": int(time.time())})
            await btcpay.secrets.put(API_KEY_SECRET, api_key, conn=conn)
            placeholders = ",".join("?" for _ in visible)
            await conn.execute(
                f"UPDATE btcpay_stores SET selected = 0 WHERE selected = 1 AND store_id NOT IN ({placeholders})",
                visible,
            )
        btcpay.keep_only(visible)
        btcpay.use_connection(connection, api_key)
        btcpay.set_connected()
    log.info("connected to BTCPay %s at %s; %d store(s) visible", info.version, url, len(stores))
    return {
        "url": url,
        "server_version": info.version,
        "key_label": key_info.label,
        "granted": list(key_info.permissions),
        "features": chosen,
        "stores": [_store_report(s, key_info.permissions, chosen) for s in stores],
        "selected": await ledger.selected_stores(btcpay.db),
    }


async def stores(btcpay: BTCPayService) -> dict[str, Any]:
    """The stores the stored key can see, with the same permission report as `connect` (so a
    resumed wizard can offer them without asking for the key again)."""
    if not btcpay.connected:
        raise UserFacingError("BTCPay is not connected", fix="run `sovterm setup btcpay` first")
    client = btcpay.quick_client()
    try:
        key_info = await client.current_api_key()
        visible = await client.list_stores()
    except BTCPayUnavailable as exc:
        raise UserFacingError(f"cannot reach BTCPay at {btcpay.url}: {exc.message}",
                              fix="check that BTCPay Server is running and reachable") from None
    features = (btcpay.connection or {}).get("features", [])
    reports = [_store_report(s, key_info.permissions, features) for s in visible
               if not btcpay.has_own_key(s.id)]
    for store_id in btcpay.own_key_stores():
        reports.append(await _own_key_report(btcpay, store_id, features))
    return {
        "url": btcpay.url,
        "features": features,
        "stores": reports,
        "selected": await ledger.selected_stores(btcpay.db),
    }


def _store_report(store: Store, granted: Sequence[str], features: Sequence[str],
                  api_key: str = "server") -> dict[str, Any]:
    missing = permission_report(granted, features, store.id)
    return {"id": store.id, "name": store.name, "missing": missing, "ready": not missing, "api_key": api_key,
            "warnings": permission_warnings(granted, features, store.id)}


async def _own_key_report(btcpay: BTCPayService, store_id: str, features: Sequence[str]) -> dict[str, Any]:
    """The permission report of a store with its own key, read with that key."""
    client = btcpay.quick_client_for(store_id)
    try:
        key_info = await client.current_api_key()
        store = await client.get_store(store_id)
    except BTCPayError as exc:
        row = await ledger.store_row(btcpay.db, store_id)
        return {"id": store_id, "name": row["name"] if row else store_id, "ready": False, "api_key": "own",
                "missing": [], "problem": f"its own API key: {exc.message}"}
    return _store_report(store, key_info.permissions, features, api_key="own")


async def _check_access(btcpay: BTCPayService, client: BTCPayClient, store_id: str, features: Sequence[str],
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
            raise UserFacingError(f"BTCPay at {btcpay.url} refuses {whose}",
                                  fix="copy the key again from BTCPay (Account > API keys)") from None
        raise
    except BTCPayUnavailable as exc:
        raise UserFacingError(f"cannot reach BTCPay at {btcpay.url}: {exc.message}",
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


async def select_stores(btcpay: BTCPayService, store_ids: Sequence[str], *, keep_others: bool = False,
                        api_key: Secret | None = None) -> dict[str, Any]:
    """Follow these stores: register (or adopt) our webhook at each. The wizard's list forgets the stores
    it does not name; `keep_others` (the CLI) only adds. `api_key` is the one store's own key: it is
    checked against that store, stored encrypted for it alone, and used for all its calls."""
    btcpay.require_connection()
    wanted = list(dict.fromkeys(store_ids))
    if not wanted:
        raise UserFacingError("no store given", fix="name at least one store id (see `sovterm setup btcpay`)")
    if api_key is not None and len(wanted) != 1:
        raise UserFacingError("a store's own API key is for exactly one store",
                              fix="name the one store it belongs to with --store")
    features = btcpay.features
    async with btcpay.admin_lock:
        found: dict[str, tuple[Store, str | None, list[dict[str, Any]]]] = {}
        for store_id in wanted:
            own = api_key is not None or btcpay.has_own_key(store_id)
            client = btcpay.quick_client(api_key=api_key or btcpay.store_key(store_id))
            found[store_id] = await _check_access(btcpay, client, store_id, features, own)
        if api_key is not None:
            async with btcpay.db.transaction() as conn:
                await btcpay.secrets.put(store_key_name(wanted[0]), api_key, conn=conn)
            btcpay.use_store_key(wanted[0], api_key)
        previous = await ledger.selected_stores(btcpay.db)
        done = [await _adopt(btcpay, store, label, features, warnings) for store, label, warnings in found.values()]
        removed = [] if keep_others else [s for s in previous if s not in wanted]
        for store_id in removed:
            await _forget_store(btcpay, store_id)
        await _record_followed(btcpay)
        btcpay.set_connected()
    log.info("following BTCPay store(s) %s", ", ".join(sorted(btcpay.followed)))
    btcpay.stores_selected.set()  # the intake fills the ledger now rather than at the next interval
    return {"stores": done, "removed": removed}


async def _adopt(btcpay: BTCPayService, store: Store, key_label: str | None, features: Sequence[str],
                 warnings: list[dict[str, Any]]) -> dict[str, Any]:
    """Mark one store followed and make its webhook point at us."""
    store_id = store.id
    own = btcpay.has_own_key(store_id)
    settings = {"features": list(features), "default_currency": store.default_currency,
                "api_key": "own" if own else "server", "api_key_label": key_label if own else None,
                "permission_warnings": warnings}
    async with btcpay.db.transaction() as conn:
        await ledger.upsert_store(conn, store_id, name=store.name, selected=True, settings=settings)
    btcpay.follow(store_id)
    entry: dict[str, Any] = {"id": store_id, "name": store.name, "webhook": None,
                             "api_key": settings["api_key"], "api_key_label": settings["api_key_label"]}
    if "webhooks" in features:
        hook = await ensure_webhook(btcpay.db, btcpay.secrets, btcpay.client_for_store(store_id), store_id,
                                    btcpay.settings.btcpay_webhook_base)
        secret = await btcpay.secrets.get(webhook_secret_name(store_id))
        assert secret is not None
        btcpay.set_webhook_secrets(store_id, [secret])
        entry["webhook"] = {"id": hook.id, "url": hook.url, "events": list(SUBSCRIBED_EVENTS)}
    return entry


async def _record_followed(btcpay: BTCPayService) -> None:
    """The setup progress lists every followed store (the wizard and `sovterm status` read it)."""
    stores = await ledger.selected_stores(btcpay.db)
    step = "done" if stores else "select_stores"
    await kv.put(btcpay.db, SETUP_KEY, {"done": bool(stores), "step": step, "at": int(time.time()), "stores": stores})


async def unfollow_store(btcpay: BTCPayService, store_id: str) -> dict[str, Any]:
    """Stop following one store (its webhook deleted at BTCPay, its own key forgotten); the others stay."""
    btcpay.require_connection()
    async with btcpay.admin_lock:
        if store_id not in await ledger.selected_stores(btcpay.db):
            raise UserFacingError(f"store {store_id} is not followed",
                                  fix="see the followed stores with `sovterm btcpay stores`")
        gone = await _forget_store(btcpay, store_id)
        await _record_followed(btcpay)
        btcpay.set_connected()
    log.info("no longer following BTCPay store %s", store_id)
    return {"store_id": store_id, "webhook_deleted": gone}


async def _forget_store(btcpay: BTCPayService, store_id: str) -> bool:
    """Stop following a store; remove our webhook at BTCPay if we can. True if it is gone there."""
    client = btcpay.quick_client_for(store_id)
    row = await ledger.store_row(btcpay.db, store_id)
    gone = True
    if row is not None and row["webhook_id"]:
        try:
            await client.delete_webhook(store_id, row["webhook_id"])
        except BTCPayNotFound:
            pass
        except BTCPayError as exc:
            log.warning("could not delete our webhook at store %s: %s", store_id, exc.message)
            gone = False
    async with btcpay.db.transaction() as conn:
        await conn.execute(
            "UPDATE btcpay_stores SET selected = 0, webhook_id = NULL, updated_at = ? WHERE store_id = ?",
            (int(time.time()), store_id),
        )
        await btcpay.secrets.delete(webhook_secret_name(store_id), conn=conn)
        await btcpay.secrets.delete(store_key_name(store_id), conn=conn)
    btcpay.unfollow(store_id)
    return gone


async def rotate_webhook_secret(btcpay: BTCPayService, store_id: str) -> dict[str, Any]:
    """Give the store's webhook a new secret. Until BTCPay confirms, deliveries signed with either
    secret are accepted (BTCPay may already sign with the new one); after, only the new one."""
    client = btcpay.client_for_store(store_id)
    async with btcpay.admin_lock:
        row = await ledger.store_row(btcpay.db, store_id)
        if row is None or not row["selected"] or not row["webhook_id"]:
            raise UserFacingError(
                f"sovterm has no webhook at store {store_id}", fix="select the store first (`sovterm setup btcpay`)"
            )
        old = list(btcpay.webhook_secrets(store_id) or [])
        new = Secret(token.token_urlsafe(32))
        btcpay.set_webhook_secrets(store_id, old + [new])
        try:
            hook = await client.update_webhook(
                store_id, row["webhook_id"], btcpay.webhook_url(store_id), secret=new, events=SUBSCRIBED_EVENTS
            )
        except BTCPayNotFound:
            btcpay.set_webhook_secrets(store_id, old)
            hook = await ensure_webhook(btcpay.db, btcpay.secrets, client, store_id, btcpay.settings.btcpay_webhook_base)
            new = await btcpay.secrets.get(webhook_secret_name(store_id)) or new
        except BaseException:
            btcpay.set_webhook_secrets(store_id, old)
            raise
        else:
            await btcpay.secrets.put(webhook_secret_name(store_id), new)
        btcpay.set_webhook_secrets(store_id, [new])
    log.info("rotated the webhook secret of store %s", store_id)
    return {"store_id": store_id, "webhook_id": hook.id, "rotated_at": int(time.time())}


async def disconnect(btcpay: BTCPayService) -> dict[str, Any]:
    """Delete our webhooks at BTCPay (when reachable) and forget the key; the ledger is kept."""
    async with btcpay.admin_lock:
        if not btcpay.connected:
            return {"disconnected": False, "detail": "BTCPay was not connected", "webhooks_left": []}
        rows = await btcpay.db.fetchall("SELECT store_id FROM btcpay_stores WHERE webhook_id IS NOT NULL")
        left = [r[0] for r in rows if not await _forget_store(btcpay, r[0])]
        own_keys = await btcpay.secrets.names(store_key_name(""))
        async with btcpay.db.transaction() as conn:
            await conn.execute("UPDATE btcpay_stores SET selected = 0")
            await conn.execute("DELETE FROM kv WHERE key IN (?, ?)", (CONNECTION_KEY, SETUP_KEY))
            await btcpay.secrets.delete(API_KEY_SECRET, conn=conn)
            for name in own_keys:
                await btcpay.secrets.delete(name, conn=conn)
        url = btcpay.url
        btcpay.forget_connection()
        btcpay.connectors.set(CONNECTOR, "not_configured", "disconnected; run `sovterm setup btcpay`", ready=True)
    log.info("disconnected from BTCPay at %s", url)
    return {"disconnected": True, "url": url, "webhooks_left": left}
