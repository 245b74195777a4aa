"""Which BTCPay permissions the operator's API key lacks for the features they enabled.

Pure functions over the key's own permission list (`GET /api/v1/api-keys/current`): we never probe
endpoints to guess. Rules follow BTCPay v2.4.1 `AddPolicyDefinitions` (what the code enforces, not
the spec where they differ — e.g. refunds need `cancreatenonapprovedpullpayments`, payouts use
`canviewpayouts`/`canmanagepayouts`, which `canmanagepullpayments` does NOT include).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

STORE = "btcpay.store."
UNRESTRICTED = "unrestricted"

#: permission -> permissions it directly includes (BTCPayServerServices.AddPolicyDefinitions).
IMPLIES: dict[str, tuple[str, ...]] = {
    STORE + "canmodifystoresettings": tuple(
        STORE + p
        for p in (
            "canmanagepullpayments", "canmodifyinvoices", "canviewstoresettings",
            "webhooks.canmodifywebhooks", "canmodifypaymentrequests", "canmanagepayouts",
            "canuselightningnode", "cansendstoreemails", "canmanagewallets",
        )
    ),
    # the Wallets plugin's policies (BTCPayServer/Plugins/Wallets/WalletsPlugin.cs)
    STORE + "canmanagewallets": (STORE + "canmanagewalletsettings", STORE + "canmanagewallettransactions"),
    STORE + "canmanagewalletsettings": (STORE + "canviewwallet",),
    STORE + "canmanagewallettransactions": tuple(
        STORE + p for p in ("cancreatetransactions", "cansigntransactions", "canbroadcasttransactions",
                            "cancanceltransactions")
    ),
    STORE + "cancreatetransactions": (STORE + "canviewwallet",),
    STORE + "cansigntransactions": (STORE + "canviewwallet",),
    STORE + "canbroadcasttransactions": (STORE + "canviewwallet",),
    STORE + "cancanceltransactions": (STORE + "canviewwallet",),
    STORE + "canviewstoresettings": tuple(
        STORE + p
        for p in (
            "canviewinvoices", "canviewpaymentrequests", "canviewreports",
            "canviewpullpayments", "canviewpayouts",
        )
    ),
    STORE + "canmodifyinvoices": tuple(
        STORE + p for p in ("canviewinvoices", "cancreateinvoice", "cancreatelightninginvoice")
    ),
    STORE + "canmanagepayouts": (STORE + "canviewpayouts",),
    STORE + "canmanagepullpayments": (STORE + "cancreatepullpayments", STORE + "canarchivepullpayments"),
    STORE + "cancreatepullpayments": (STORE + "cancreatenonapprovedpullpayments",),
    STORE + "cancreatenonapprovedpullpayments": (STORE + "canviewpullpayments",),
}

#: sovterm feature -> the permissions it calls endpoints with (see docs of each endpoint in the notes).
FEATURE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # list the store, list/get invoices and their payment methods
    "sync": (STORE + "canviewstoresettings", STORE + "canviewinvoices"),
    # register/repair our webhook, list deliveries, redeliver
    "webhooks": (STORE + "webhooks.canmodifywebhooks",),
    # mirror payouts and pull payments, approve/cancel/mark paid
    "payouts": (STORE + "canviewpayouts", STORE + "canmanagepayouts", STORE + "canviewpullpayments"),
    # create the invoice behind a pay-link click; invalidate (mark-status `Invalid`) the one a changed
    # QuickBooks balance superseded
    "paylinks": (STORE + "cancreateinvoice", STORE + "canmodifyinvoices"),
    # refund = pull payment; `cancreatepullpayments` (not just the non-approved variant) so claims are
    # auto-approved for RateThen/CurrentRate refunds
    "refunds": (STORE + "cancreatepullpayments",),
    # write the QuickBooks reference into invoice metadata
    "invoice_metadata": (STORE + "canmodifyinvoices",),
    # crowdfund app statistics (BTCPay has no view-only permission for apps)
    "apps": (STORE + "canmodifystoresettings",),
}

#: The features a connection enables when the operator names none (`sovterm setup btcpay --features`).
DEFAULT_FEATURES: tuple[str, ...] = ("sync", "webhooks", "payouts")

#: Features checked at setup even when the operator did not ask for them: pay links are optional (the sync
#: works without them), so a key lacking their permissions still connects, with a warning that names the
#: permission and what will not work, instead of a customer discovering it as a 503 on the pay page.
ADVISORY_FEATURES: tuple[str, ...] = ("paylinks",)

#: What breaks without a permission, in the words the setup warning uses.
CONSEQUENCES: dict[str, str] = {
    STORE + "cancreateinvoice": "pay links cannot create invoices",
    STORE + "canmodifyinvoices": "pay links cannot invalidate a superseded checkout (the customer is shown "
                                 "'temporarily unavailable' until it expires)",
}


class MissingPermission(NamedTuple):  # not a dataclass: the CLI reads this module and dataclasses costs 10 ms
    permission: str
    features: tuple[str, ...]

    def scoped(self, store_id: str) -> str:
        """The exact string to grant, scoped to the store (what the operator should add)."""
        return f"{self.permission}:{store_id}"


def parse_permission(text: str) -> tuple[str, str | None]:
    """`btcpay.store.canviewinvoices:STORE` → (`btcpay.store.canviewinvoices`, `STORE`)."""
    policy, sep, scope = text.strip().partition(":")
    return policy, (scope if sep and scope else None)


def _closure(policy: str) -> set[str]:
    seen = {policy}
    todo = [policy]
    while todo:
        for implied in IMPLIES.get(todo.pop(), ()):
            if implied not in seen:
                seen.add(implied)
                todo.append(implied)
    return seen


def effective_permissions(granted: Iterable[str], store_id: str) -> set[str] | None:
    """All policies the key holds for `store_id` (None means unrestricted)."""
    held: set[str] = set()
    for item in granted:
        policy, scope = parse_permission(item)
        if policy == UNRESTRICTED:
            return None
        if scope is not None and scope != store_id:
            continue
        held |= _closure(policy)
    return held


def missing_permissions(
    granted: Iterable[str], features: Iterable[str], store_id: str
) -> list[MissingPermission]:
    """The permissions the enabled features need and the key lacks for this store, in a stable order."""
    features = list(features)
    unknown = [f for f in features if f not in FEATURE_PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(FEATURE_PERMISSIONS)}")
    held = effective_permissions(granted, store_id)
    if held is None:
        return []
    needed: dict[str, list[str]] = {}
    for feature in features:
        for permission in FEATURE_PERMISSIONS[feature]:
            if permission not in held:
                needed.setdefault(permission, [])
                if feature not in needed[permission]:
                    needed[permission].append(feature)
    return [MissingPermission(p, tuple(f)) for p, f in needed.items()]


def has_permission(granted: Iterable[str], permission: str, store_id: str) -> bool:
    held = effective_permissions(granted, store_id)
    return held is None or permission in held


class _KeyReader(Protocol):
    async def current_api_key(self) -> Any: ...


async def check_key(client: _KeyReader, features: Iterable[str], store_id: str) -> list[MissingPermission]:
    """Ask BTCPay which permissions the configured key holds (`GET /api/v1/api-keys/current`) and
    report what the enabled features still need."""
    info = await client.current_api_key()
    return missing_permissions(info.permissions, features, store_id)


def permission_warnings(granted: Iterable[str], enabled: Iterable[str], store_id: str) -> list[dict[str, Any]]:
    """What the key lacks for the advisory features the operator did not enable (an enabled feature's
    permissions are required, not advised): each permission, the grant string, the consequence."""
    enabled = set(enabled)
    advisory = [f for f in ADVISORY_FEATURES if f not in enabled]
    return [
        {"permission": m.permission, "features": list(m.features), "grant": m.scoped(store_id),
         "consequence": CONSEQUENCES.get(m.permission, f"{', '.join(m.features)} will not work")}
        for m in missing_permissions(granted, advisory, store_id)
    ]
