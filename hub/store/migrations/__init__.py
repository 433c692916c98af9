"""Numbered migrations of the hub database, applied in order, each once, by the hub.

A migration is a file ``NNNN_what.sql`` (statements) or ``NNNN_what.py`` (a module with
``apply(conn)``), numbered from 0001 without gaps. Each runs in its own ``BEGIN IMMEDIATE``
transaction together with its row in ``schema_migrations``, so a crash leaves the previous
version and the next run tries again; two processes migrating at once serialise on the write
lock and the second finds the work done. Foreign keys are off while a migration runs (SQLite
cannot switch them inside a transaction, and a table rebuild needs them off); a
``foreign_key_check`` before the commit refuses a migration that broke a reference.

Files from before this table (release 1..3 kept ``meta.schema_version`` and re-ran every
``CREATE TABLE IF NOT EXISTS`` on each open) are *adopted*: the baseline runs once more to
fill in tables that release lacked, versions up to theirs are recorded as applied, the rest
run. ``meta.schema_version`` is still written, for tools that read it.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^(\d{4})_(\w+)\.(sql|py)$")
ADOPTED = "adopted from meta.schema_version"


class NewerSchema(RuntimeError):
    """The file was written by a newer release: this program cannot migrate it down."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]  # runs inside the migration's transaction


def _statements(sql: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT the open transaction)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement at the end: {buf.strip()[:60]!r}")
    return out


def _sql_step(path: Path) -> Callable[[sqlite3.Connection], None]:
    statements = _statements(path.read_text())

    def apply(conn: sqlite3.Connection) -> None:
        for stmt in statements:
            conn.execute(stmt)

    return apply


def discover(folder: Path = HERE) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        m = _NAME.match(path.name)
        if not m:
            continue
        version, name, kind = int(m[1]), m[2], m[3]
        if kind == "sql":
            step = _sql_step(path)
        else:
            step = importlib.import_module(f"{__name__}.{path.stem}").apply
        found.append(Migration(version, name, step))
    numbers = [mg.version for mg in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {numbers}")
    return found


MIGRATIONS = discover()
LATEST = MIGRATIONS[-1].version


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
    ).fetchone()
    return row is not None


def _legacy_version(conn: sqlite3.Connection) -> int:
    if not _has_table(conn, "meta"):
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def current_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied (or the legacy ``meta.schema_version``); 0 if empty."""
    if _has_table(conn, "schema_migrations"):
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        if row[0] is not None:
            return int(row[0])
    return _legacy_version(conn)


def _record(conn: sqlite3.Connection, mg: Migration, now: float, note: str = "") -> None:
    conn.execute(
        "INSERT INTO schema_migrations(version, name, applied_at, note) VALUES (?,?,?,?)",
        (mg.version, mg.name, now, note),
    )
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (str(mg.version),),
    )


def _in_transaction(conn: sqlite3.Connection, step: Callable[[sqlite3.Connection], bool]) -> bool:
    """Run ``step`` in BEGIN IMMEDIATE with foreign keys off, checked before the commit."""
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            did = step(conn)
            problems = conn.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"foreign keys broken by the migration: {problems[:3]}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return did
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


def _bootstrap(conn: sqlite3.Connection) -> bool:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at REAL NOT NULL, note TEXT NOT NULL DEFAULT '')"
    )
    if conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchone():
        return False
    legacy = _legacy_version(conn)
    if legacy > LATEST:
        raise NewerSchema(f"database at version {legacy}, this program knows up to {LATEST}")
    if legacy == 0:
        return False
    MIGRATIONS[0].apply(conn)  # the baseline is IF NOT EXISTS throughout: fills in, changes none
    now = time.time()
    for mg in MIGRATIONS[:legacy]:
        _record(conn, mg, now, f"{ADOPTED} {legacy}")
    return True


def upgrade(conn: sqlite3.Connection, *, upto: int | None = None) -> list[int]:
    """Apply every migration this file has not had; returns the versions applied now.

    ``upto`` stops after that version: tests use it to make the file an older release left.
    Refuses (``NewerSchema``) a file newer than this program: migrating down is not a thing.
    """
    _in_transaction(conn, _bootstrap)
    have = current_version(conn)
    if have > LATEST:
        raise NewerSchema(f"database at version {have}, this program knows up to {LATEST}")
    done: list[int] = []
    for mg in MIGRATIONS[have : LATEST if upto is None else upto]:

        def step(c: sqlite3.Connection, mg: Migration = mg) -> bool:
            row = c.execute(
                "SELECT 1 FROM schema_migrations WHERE version=?", (mg.version,)
            ).fetchone()
            if row is not None:  # another process applied it while we waited for the lock
                return False
            mg.apply(c)
            _record(c, mg, time.time())
            return True

        if _in_transaction(conn, step):
            done.append(mg.version)
    return done
