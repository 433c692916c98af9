"""The hub's SQLite file: connection settings, the one transaction helper, and how a process
opens it — at the schema version it was written for, or not at all.

WAL lets the CLI and the nightly jobs read while the hub writes; ``BEGIN IMMEDIATE`` takes
the write lock up front so two claimers never both read "open" and both write "claimed".

Only the hub daemon (and ``storesense db migrate``, for installers and tests) changes the
schema: ``migrate_db`` applies the numbered migrations in ``hub/store/migrations``. Every
other process — CLI commands, reports, the suggestion build — calls ``open_db``, which refuses
a missing file or one at another version with one line saying what to do, instead of
migrating a live hub's database under it or failing later on a missing column.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.store import migrations
from storesense.errors import CliError

SCHEMA_VERSION = migrations.LATEST
HINT = "start the hub or run `storesense db migrate`"
PRIVATE_MODE = 0o600
BUSY_TIMEOUT_MS = 30000  # what ``connect`` sets: how long a writer waits for the lock

log = logging.getLogger(__name__)


class DatabaseNotReady(CliError, RuntimeError):
    """The hub database is missing or at another schema version than this program's.

    A ``CliError``: the CLI prints it as the one line it is, not as a traceback.
    """


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode; callers open transactions explicitly with ``write``."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    _wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Deleted rows are overwritten with zeros, not left in free space: an erased customer's
    # name must not survive in the file's bytes, in a page a backup copies or a WAL frame.
    # Set here, not left to the build: Debian's SQLite has it on, SQLite's default is off.
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _wal(conn: sqlite3.Connection, wait_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Switch to WAL, retrying while another process holds the lock.

    Why a loop: SQLite does not call the busy handler for the journal-mode change of a fresh
    file while another connection is converting it (two processes migrating a new database at
    once got "database is locked" at once, not after the 30 s wait); the mode is stored in the
    file, so a retry that finds it already WAL is a no-op.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_locked(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def schema_version(conn: sqlite3.Connection) -> int:
    return migrations.current_version(conn)


def open_db(path: Path | str) -> sqlite3.Connection:
    """Open the hub database at ``SCHEMA_VERSION``; ``DatabaseNotReady`` otherwise."""
    if str(path) != ":memory:" and not Path(path).is_file():
        raise DatabaseNotReady(f"no hub database at {path}: {HINT}")
    conn = connect(path)
    version = schema_version(conn)
    if version != SCHEMA_VERSION:
        conn.close()
        hint = HINT if version < SCHEMA_VERSION else "upgrade this program"
        raise DatabaseNotReady(
            f"database at version {version}, this program expects {SCHEMA_VERSION}: {hint}"
        )
    return conn


def migrate_db(path: Path | str) -> sqlite3.Connection:
    """Create or upgrade the hub database to ``SCHEMA_VERSION``; the hub daemon's opener."""
    return _migrated(path)[0]


def migrate(path: Path | str) -> list[int]:
    """``storesense db migrate``: bring the file to ``SCHEMA_VERSION``; the versions applied."""
    conn, applied = _migrated(path)
    conn.close()
    return applied


def make_private(path: Path) -> None:
    """The database file, its ``-wal`` and ``-shm`` readable by their owner only.

    A new file is 0600 through the programs' umask (``storesense.paths``); this tightens a file
    an older release left 0644. SQLite gives a new ``-wal``/``-shm`` the main file's mode, so
    they follow once it is private.
    """
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.exists() and p.stat().st_mode & 0o077:
                os.chmod(p, PRIVATE_MODE)
                log.info("%s was readable by others: now %o", p, PRIVATE_MODE)
        except OSError as exc:  # someone else's file: say so, the hub still runs
            log.warning("could not make %s private: %s", p, exc)


def _migrated(path: Path | str) -> tuple[sqlite3.Connection, list[int]]:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    if str(path) != ":memory:":
        make_private(Path(path))
    try:
        applied = migrations.upgrade(conn)
    except migrations.NewerSchema as exc:
        conn.close()
        raise DatabaseNotReady(f"{path}: {exc}: upgrade this program") from exc
    except BaseException:
        conn.close()
        raise
    return conn, applied


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def busy_wait(conn: sqlite3.Connection, seconds: float) -> Iterator[sqlite3.Connection]:
    """Wait at most ``seconds`` (not the connection's 30 s) for the write lock in this block.

    For a writer that has somewhere better to put its work than a 30 s wait on the hub's only
    worker thread (the face ingest parks it, ``hub.bus.parked``): the watchdog is pinged from
    that thread, and every message behind it waits too.
    """
    before = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute(f"PRAGMA busy_timeout={max(0, int(seconds * 1000))}")
    try:
        yield conn
    finally:
        conn.execute(f"PRAGMA busy_timeout={before}")  # nested waits restore the outer one


def is_locked(exc: BaseException) -> bool:
    """The database was locked (or busy) past the wait: a transient failure worth a retry,
    unlike a constraint or a bug."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def next_counter(conn: sqlite3.Connection, name: str) -> int:
    """Monotonic counter; call inside a ``write`` transaction."""
    row = conn.execute(
        "INSERT INTO counters(name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
        (name,),
    ).fetchone()
    return int(row[0])


def counter(conn: sqlite3.Connection, name: str) -> int:
    """A counter's value, 0 if it was never bumped."""
    row = conn.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
    return int(row[0]) if row else 0


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def put_meta(conn: sqlite3.Connection, key: str, value: str, *, keep: bool = False) -> None:
    """Set a ``meta`` key (``keep``: only if it is not set yet); inside a write transaction.

    Each key has one owner (``hub.store.tables.META_KEYS``); ``meta`` is written only here.
    """
    if keep:
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
    else:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value",
            (key, value),
        )
