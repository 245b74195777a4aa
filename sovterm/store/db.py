"""The SQLite database: two writer connections sharing one lock, a reader, numbered migrations.

Writes go through `transaction()`, which serialises writers on an asyncio lock and runs
`BEGIN IMMEDIATE ... COMMIT` so that a job row and the event that caused it land together or not at
all. `inline_transaction()` takes the same lock but runs on the loop's own thread (see `inline.py`):
for webhook intake, whose small batches cost more in thread round trips than in SQL. Reads use a
third connection; in WAL mode they see committed data only and never wait for a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from sovterm.errors import StartupRefused
from sovterm.store.inline import InlineConnection

MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
BUSY_TIMEOUT_MS = 5000
# The inline writer blocks the loop while it waits; only another process can hold the write lock
# (our own writers share an asyncio lock), and none should, so it gives up quickly instead.
INLINE_BUSY_TIMEOUT_MS = 200
_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON")
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
MAX_PROBLEMS = 20  # integrity_check lines kept: enough to say what is wrong, bounded on a wrecked file


class DatabaseDamaged(StartupRefused):
    """SQLite says the database file is damaged: never run on it, say how to restore."""

    code = "database_damaged"

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"the database {path} is damaged: {damage_summary(problems)}",
            fix=f"stop the daemon, move {path.name} (and any {path.name}-wal, {path.name}-shm) aside, then restore "
            f"the latest backup: `sovterm backup restore <file>` (the daemon's own copies are in "
            f"{path.parent / 'backups'}); keep the damaged file for diagnosis",
        )


def damage_summary(problems: Sequence[str]) -> str:
    head = "; ".join(problems[:3])
    return head + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")


def is_damage(exc: BaseException) -> bool:
    """SQLite's own word that the file is corrupt or not a database (not a busy lock, not a full disk)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def integrity_problems(path: Path, *, full: bool) -> list[str]:
    """SQLite's quick_check (or full integrity_check) on a fresh connection of its own, so it reads the file
    rather than a page cache: [] when the database is sound, else what SQLite found (bounded)."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        return [f"cannot be opened: {exc}"]
    try:
        rows = conn.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    problems = [str(row[0]) for row in rows]
    return [] if problems == ["ok"] else problems


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations() -> list[Migration]:
    """The numbered SQL files shipped in `sovterm/store/migrations/`, in order."""
    found: list[Migration] = []
    for entry in resources.files("sovterm.store.migrations").iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration numbers must run 1..n without gaps, found {versions}")
    return found


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    for pragma in _PRAGMAS:  # synchronous = FULL: a 200 to BTCPay means it is on disk
        await conn.execute(pragma)
    return conn


def _connect_inline(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


class Database:
    def __init__(
        self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection, inline: sqlite3.Connection
    ):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._inline = inline
        self._write_lock = asyncio.Lock()
        self.damaged: str | None = None  # what SQLite said when it found the file damaged (start, check, or a query)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        migrations: Sequence[Migration] | None = None,
        backup_dir: Path | None = None,
    ) -> Database:
        """Open (creating if needed), check and migrate; refuse a damaged database (SQLite's quick_check)
        and one newer than this code."""
        migrations = list(bundled_migrations() if migrations is None else migrations)
        if path.exists():
            problems = await asyncio.to_thread(integrity_problems, path, full=False)
            if problems:
                raise DatabaseDamaged(path, problems)
        try:
            writer = await _connect(path)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise DatabaseDamaged(path, [str(exc)]) from None
            raise
        try:
            await migrate(writer, path, migrations, backup_dir=backup_dir)
            reader = await _connect(path)
        except sqlite3.DatabaseError as exc:
            await writer.close()
            if is_damage(exc):
                raise DatabaseDamaged(path, [str(exc)]) from None
            raise
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader, _connect_inline(path))

    async def check(self, *, full: bool = True) -> list[str]:
        """Integrity check on demand (full by default): [] when sound; damage found is kept in `damaged`
        (for /readyz and the status page) until the daemon restarts on a restored file."""
        problems = await asyncio.to_thread(integrity_problems, self.path, full=full)
        if problems:
            self.damaged = damage_summary(problems)
        return problems

    def _note(self, exc: BaseException) -> None:
        if is_damage(exc) and self.damaged is None:
            self.damaged = str(exc)

    async def close(self) -> None:
        async with self._write_lock:
            await self._reader.close()
            await self._writer.close()
            self._inline.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; commits on success, rolls back on any exception.

        BEGIN and COMMIT run in aiosqlite's thread whether or not the awaiting task is cancelled, so a
        cancelled caller first lets them finish, then rolls back: a cancellation must never leave the
        connection inside a transaction nobody will end (every later write would fail)."""
        async with self._write_lock:
            await self._finish_then_roll_back_if_cancelled(self._writer.execute("BEGIN IMMEDIATE"))
            try:
                yield self._writer
            except BaseException as exc:
                self._note(exc)
                await asyncio.shield(self._rollback_if_open())
                raise
            try:
                await self._finish_then_roll_back_if_cancelled(self._writer.execute("COMMIT"))
            except sqlite3.DatabaseError as exc:
                self._note(exc)
                raise

    @asynccontextmanager
    async def inline_transaction(self) -> AsyncIterator[InlineConnection]:
        """One write transaction on the loop's thread (see `inline.py`); commits on success, rolls
        back on any exception, a failed COMMIT included. Its body must not suspend: BEGIN, the
        statements and COMMIT then run without the loop doing anything else in between."""
        async with self._write_lock:
            conn = self._inline
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield InlineConnection(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                self._note(exc)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def _finish_then_roll_back_if_cancelled(self, statement: Any) -> None:
        step = asyncio.ensure_future(statement)
        try:
            await asyncio.shield(step)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await step
            await asyncio.shield(self._rollback_if_open())  # nothing to undo if a COMMIT landed
            raise

    async def _rollback_if_open(self) -> None:
        if self._writer.in_transaction:
            await self._writer.execute("ROLLBACK")

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        try:
            async with self._reader.execute(sql, tuple(params)) as cur:
                return await cur.fetchone()
        except sqlite3.DatabaseError as exc:
            self._note(exc)
            raise

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        try:
            async with self._reader.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())
        except sqlite3.DatabaseError as exc:
            self._note(exc)
            raise

    async def write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """A single-statement write in its own transaction; returns the affected row count."""
        async with self.transaction() as tx:
            cur = await tx.execute(sql, tuple(params))
            return cur.rowcount

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(row[0]) if row else 0

    async def backup_to(self, target: Path) -> None:
        """A consistent online copy (VACUUM INTO is safe under WAL, unlike copying the file)."""
        async with self._write_lock:
            await self._writer.execute("VACUUM INTO ?", (str(target),))


async def current_version(conn: aiosqlite.Connection) -> int:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(
    conn: aiosqlite.Connection,
    path: Path,
    migrations: Sequence[Migration],
    *,
    backup_dir: Path | None,
) -> list[int]:
    """Apply pending migrations, each with its version bump in one transaction."""
    have = await current_version(conn)
    newest = migrations[-1].version if migrations else 0
    if have > newest:
        raise StartupRefused(
            f"database {path} is at schema version {have}, newer than this sovterm knows ({newest})",
            fix="upgrade sovterm, or restore a backup made by this version",
        )
    pending = [m for m in migrations if m.version > have]
    if pending and have > 0 and backup_dir is not None:
        backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = backup_dir / f"{path.stem}-v{have}-{time.strftime('%Y%m%dT%H%M%S')}.db"
        await conn.execute("VACUUM INTO ?", (str(target),))
    applied: list[int] = []
    for m in pending:
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{m.sql}\n;\n"
            f"INSERT INTO schema_version(version, name, applied_at) "
            f"VALUES ({m.version}, '{m.name}', strftime('%s','now'));\n"
            "COMMIT;"
        )
        try:
            await conn.executescript(script)
        except Exception:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
        applied.append(m.version)
    return applied
