"""The central office's PostgreSQL: connection, numbered SQL migrations, day partitions.

Plain SQL files (``central/migrations/NNNN_name.sql``, package data) applied in order, each in
one transaction with its ``schema_migrations`` row, under a session advisory lock so two
processes migrating at once apply each file exactly once. Why not Alembic: the schema is a
handful of SQL files, and a partitioned table's DDL reads better as SQL than as an ORM model.

Partitions: every partitioned table (``PARTITIONED``) gets one partition per UTC day, made
ahead by ``ensure_partitions`` (the service makes today's and tomorrow's at start and as days
pass, and the day of any message it is about to apply); ``apply_retention`` drops each table's
days past its ``KEEP_DAYS`` (``storesense central retention``, a nightly job).
"""

from __future__ import annotations

import datetime as dt
import logging
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

PARTITIONED = (
    "ingested", "alert_summaries", "claims", "zone_intervals", "store_health", "daily_summaries"
)  # fmt: skip
# pg_advisory_lock keys (any fixed bigint): the migration runner, partition creation
MIGRATE_LOCK = 0x5353_0001
PARTITION_LOCK = 0x5353_0002


class CentralDbError(RuntimeError):
    """The database is unreachable, or at a schema version this program does not know."""


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection: every write runs in an explicit ``conn.transaction()``."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise CentralDbError(f"cannot connect to the central database: {exc}") from None


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every packaged migration, in order; gaps are an error."""
    folder = resources.files("central") / "migrations"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            out.append((int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    out.sort()
    if [v for v, _, _ in out] != list(range(1, len(out) + 1)):
        raise CentralDbError(f"central migrations are not numbered 1..N: {[v for v, *_ in out]}")
    return out


LATEST = len(migration_files())


def schema_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    got = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(got[0]) if got else 0


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply the missing migrations; returns the versions applied (empty: up to date)."""
    applied: list[int] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        have = schema_version(conn)
        if have > LATEST:
            raise CentralDbError(
                f"central database at version {have}, this program knows {LATEST}: upgrade it"
            )
        for version, name, sql in migration_files():
            if version <= have:
                continue
            with conn.transaction():
                conn.execute(sql.encode())  # bytes: psycopg sends a multi-statement script as is
                conn.execute(
                    "INSERT INTO schema_migrations(version, name) VALUES (%s, %s)", (version, name)
                )
            log.info("central schema: applied %04d_%s", version, name)
            applied.append(version)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
    return applied


def require_current(conn: psycopg.Connection) -> None:
    """Refuse to run against a database another version of the program set up."""
    have = schema_version(conn)
    if have != LATEST:
        hint = "run `storesense central migrate`" if have < LATEST else "upgrade this program"
        raise CentralDbError(f"central database at version {have}, expected {LATEST}: {hint}")


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_{day:%Y%m%d}"


def ensure_partitions(conn: psycopg.Connection, day: dt.date) -> int:
    """Create ``day``'s partition of every partitioned table that lacks it; returns created.

    Its own transaction, under an advisory lock (two ingest processes may meet here): a
    partition is created once, before the transaction that writes into it.
    """
    made = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        for table in PARTITIONED:
            name = partition_name(table, day)
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            if exists and exists[0]:
                continue
            # names and bounds are made here from a table constant and a date, never from input
            end = day + dt.timedelta(days=1)
            conn.execute(
                f"CREATE TABLE {name} PARTITION OF {table} "
                f"FOR VALUES FROM ('{day.isoformat()}') TO ('{end.isoformat()}')"
            )
            made += 1
    if made:
        log.info("central: made the %s partitions (%d tables)", day.isoformat(), made)
    return made


def partitions(conn: psycopg.Connection, table: str) -> list[str]:
    """The partitions of ``table``, by name (oldest first)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


# Days each partitioned table keeps (docs/scale.md): ``ingested`` longer than the ingest's
# ``max_age_days`` (35), so a late copy of a message still meets its row and is dropped.
KEEP_DAYS: dict[str, int] = {
    "ingested": 40,
    "alert_summaries": 730,
    "claims": 730,
    "zone_intervals": 730,
    "store_health": 30,
    "daily_summaries": 730,  # two years: this year's weeks against last year's
}


def apply_retention(conn: psycopg.Connection, today: dt.date) -> list[str]:
    """Drop each table's day partitions older than its ``KEEP_DAYS``; the dropped names."""
    dropped: list[str] = []
    for table, days in KEEP_DAYS.items():
        dropped += drop_partitions_before(conn, today - dt.timedelta(days=days), (table,))
    return dropped


def drop_partitions_before(
    conn: psycopg.Connection, day: dt.date, tables: tuple[str, ...] = PARTITIONED
) -> list[str]:
    """Drop the day partitions of ``tables`` older than ``day``; returns the dropped names."""
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        for table in tables:
            for name in partitions(conn, table):
                if name < partition_name(table, day):
                    conn.execute(f"DROP TABLE {name}")
                    dropped.append(name)
    return dropped
