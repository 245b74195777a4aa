"""Files the daemon makes for an operator (backups, support bundles) and the data-directory lock.

The daemon writes them into `<data_dir>/exports/`, where only it can write (under systemd it may write
nowhere else); the CLI then copies them out in chunks over the control socket, so an operator who
cannot read the data directory still gets the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sovterm.errors import UserFacingError
from sovterm.store import lock

EXPORTS_DIR = "exports"
ARTEFACT_NAME = re.compile(r"^sovterm-(backup|diag)-\d{8}T\d{6}Z(-\d+)?\.tar(\.gz)?$")
CHUNK_BYTES = 256 * 1024  # base64 of this stays well under the control socket's 1 MiB line limit


def exports_dir(data_dir: Path) -> Path:
    path = data_dir / EXPORTS_DIR
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def artefact_path(data_dir: Path, name: str) -> Path:
    """The path of an artefact by name; refuses anything that is not one of ours (no path tricks)."""
    if not ARTEFACT_NAME.match(name):
        raise UserFacingError(f"{name!r} is not a sovterm backup or support bundle name")
    path = data_dir / EXPORTS_DIR / name
    if not path.is_file():
        raise UserFacingError(f"no file {name} in {data_dir / EXPORTS_DIR}", fix="create it again")
    return path


def unique_name(directory: Path, kind: str, stamp: str, suffix: str) -> str:
    name = f"sovterm-{kind}-{stamp}{suffix}"
    n = 1
    while (directory / name).exists():
        name = f"sovterm-{kind}-{stamp}-{n}{suffix}"
        n += 1
    return name


def read_chunk(path: Path, offset: int, length: int = CHUNK_BYTES) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(min(length, CHUNK_BYTES))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_private(path: Path) -> int:
    """A new file only its owner can read; never replaces an existing one."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise UserFacingError(f"{path} already exists", fix="choose another --output path or remove it") from None


@contextmanager
def daemon_stopped(data_dir: Path) -> Iterator[None]:
    """Hold the daemon's data-directory lock: refuses while a daemon runs, and keeps one from starting."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = lock.acquire(data_dir)
    except lock.DataDirBusy as busy:
        raise UserFacingError(
            f"the sovterm daemon (pid {busy.pid}) is running on {data_dir}; a restore needs it stopped",
            fix="stop it first (`systemctl stop sovterm`, or stop the app/container), then run the restore again",
        ) from None
    try:
        yield
    finally:
        os.close(fd)  # closing releases the flock
