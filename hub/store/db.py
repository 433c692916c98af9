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

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.store import migrations
from storesense.errors import CliError

SCHEMA_VERSION = migrations.LATEST
HINT = "start the hub or run `storesense db migrate`"


class DatabaseNotReady(CliError, RuntimeError):
    """The hub database is missing or at another schema version than this program's.

    A ``CliError``: the CLI prints it as the one line it is, not as a traceback.
    """


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode; callers open transactions explicitly with ``write``."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


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


def _migrated(path: Path | str) -> tuple[sqlite3.Connection, list[int]]:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
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
