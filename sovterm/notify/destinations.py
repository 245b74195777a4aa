"""Notification destinations: an apprise URL (secret), a name the operator picks and the least severity
it wants. Only the name and the service (the URL's scheme) are ever shown."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import apprise

from sovterm.errors import UserFacingError
from sovterm.store.secrets import Secret, SecretStore

SEVERITIES = ("error", "warning", "info")
SECRET_PREFIX = "notify.url."
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class DestinationError(UserFacingError):
    code = "notify_destination"


@dataclass(frozen=True)
class Destination:
    name: str
    service: str  # the URL's scheme: ntfy, mailto, json, tgram, matrix, nostr...
    min_severity: str
    url: Secret

    def wants(self, severity: str) -> bool:
        return SEVERITIES.index(severity) <= SEVERITIES.index(self.min_severity)


def service_of(url: str) -> str:
    """The scheme of an apprise URL, checked by apprise itself: an URL it cannot use is refused now, not at
    the first alert."""
    scheme = url.partition("://")[0].lower()
    if not scheme or "://" not in url:
        raise DestinationError("the destination is not an apprise URL (scheme://...)",
                               fix="see https://github.com/caronc/apprise/wiki for the URL of each service, "
                                   "e.g. ntfy://ntfy.sh/mytopic or mailtos://user:pass@example.com")
    if apprise.Apprise.instantiate(url) is None:
        raise DestinationError(f"apprise cannot use this {scheme}:// URL (unknown service or a part missing)",
                               fix="check the URL against the service's page in the apprise wiki")
    return scheme


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise DestinationError(f"bad destination name {name!r}",
                               fix="use 1-32 lowercase letters, digits, - or _, starting with a letter or digit")
    return name


def check_severity(severity: str) -> str:
    if severity not in SEVERITIES:
        raise DestinationError(f"bad severity {severity!r}", fix=f"use one of {', '.join(SEVERITIES)}")
    return severity


async def add(secrets: SecretStore, name: str, url: str, min_severity: str) -> Destination:
    """Store a destination (its URL encrypted); replaces one of the same name."""
    check_name(name)
    check_severity(min_severity)
    service = service_of(url.strip())
    async with secrets.db.transaction() as conn:
        await secrets.put(SECRET_PREFIX + name, url.strip(), conn=conn)
        await conn.execute(
            "INSERT INTO notify_destinations(name, service, min_severity, created_at) VALUES(?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET service = excluded.service, min_severity = excluded.min_severity",
            (name, service, min_severity, int(time.time())))
    return Destination(name, service, min_severity, Secret(url.strip()))


async def remove(secrets: SecretStore, name: str) -> None:
    async with secrets.db.transaction() as conn:
        async with conn.execute("DELETE FROM notify_destinations WHERE name = ?", (name,)) as cur:
            if cur.rowcount == 0:
                raise DestinationError(f"no notification destination named {name!r}",
                                       fix="`sovterm notify list` shows the names")
        await secrets.delete(SECRET_PREFIX + name, conn=conn)


async def load(secrets: SecretStore) -> list[Destination]:
    out = []
    rows: list[Any] = await secrets.db.fetchall(
        "SELECT name, service, min_severity FROM notify_destinations ORDER BY name")
    for name, service, min_severity in rows:
        url = await secrets.get(SECRET_PREFIX + name)
        if url is not None:
            out.append(Destination(name, service, min_severity, url))
    return out
