"""Who is calling: roles from the peer's Unix credentials (SO_PEERCRED), never from what it claims."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    NONE = 0
    VIEWER = 1
    ADMIN = 2


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    user: str
    role: Role


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected AF_UNIX stream socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def resolve_group(name: str | None) -> int | None:
    """A group by name, or by number written as digits; None if unset or unknown on this host."""
    if not name:
        return None
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


@dataclass(frozen=True)
class RolePolicy:
    """root and the daemon's own user are admin; then admin group, then viewer group; else refused.

    Groups are the connecting process's own (its gid and supplementary groups at connect time), never
    the user's entry in /etc/group: a process that dropped the admin group is not an admin."""

    daemon_uid: int
    admin_gid: int | None
    viewer_gid: int | None

    @classmethod
    def from_names(cls, admin_group: str | None, viewer_group: str | None) -> RolePolicy:
        return cls(os.geteuid(), resolve_group(admin_group), resolve_group(viewer_group))

    def role_for(self, uid: int, gid: int, extra_gids: set[int] | None = None) -> Role:
        if uid in (0, self.daemon_uid):
            return Role.ADMIN
        groups = {gid} | (extra_gids or set())
        if self.admin_gid is not None and self.admin_gid in groups:
            return Role.ADMIN
        if self.viewer_gid is not None and self.viewer_gid in groups:
            return Role.VIEWER
        return Role.NONE

    def identify(self, sock: socket.socket) -> Peer:
        pid, uid, gid = peer_credentials(sock)
        extra = peer_groups(sock, pid)
        return Peer(pid, uid, gid, user_name(uid), self.role_for(uid, gid, extra))


SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13


def peer_groups(sock: socket.socket, pid: int) -> set[int]:
    """Supplementary groups the peer held at connect time: SO_PEERGROUPS (race-free), else, on a kernel
    without it, the `Groups:` line of /proc/<pid>/status read now, at accept; none when neither answers."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * 256)
    except OSError:
        return _proc_groups(pid)
    count = len(raw) // 4
    return set(struct.unpack(f"{count}I", raw[: count * 4]))


def _proc_groups(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()
