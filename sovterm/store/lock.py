"""The data directory's single-owner lock: an exclusive flock the kernel releases if the holder dies,
so it is never stale. The daemon holds it while it runs; an offline restore holds it while it works."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "sovterm.lock"


class DataDirBusy(Exception):
    def __init__(self, pid: str) -> None:
        super().__init__(f"data directory locked by pid {pid}")
        self.pid = pid


def acquire(data_dir: Path) -> int:
    """Take the lock and record our pid in it; raises DataDirBusy with the holder's pid."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DataDirBusy(pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
