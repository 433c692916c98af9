"""The central schema on a real PostgreSQL: migrations once, day partitions, retention."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from central import db


def test_migrate_creates_the_schema_once_and_records_its_version(pg_dsn: str) -> None:
    conn = db.connect(pg_dsn)
    assert db.schema_version(conn) == 0
    assert db.migrate(conn) == list(range(1, db.LATEST + 1))
    assert db.migrate(conn) == []  # a second run has nothing to do
    assert db.schema_version(conn) == db.LATEST
    db.require_current(conn)
    kinds = dict(
        conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname = ANY(%s)", (list(db.PARTITIONED),)
        ).fetchall()
    )
    assert kinds == {t: "p" for t in db.PARTITIONED}  # declaratively partitioned, all of them


def test_three_processes_migrating_at_once_apply_each_file_once(pg_dsn: str) -> None:
    results: list[list[int]] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        conn = db.connect(pg_dsn)
        barrier.wait()
        results.append(db.migrate(conn))
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(map(len, results)) == [0, 0, db.LATEST]
    conn = db.connect(pg_dsn)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (db.LATEST,)


def test_an_unmigrated_or_newer_database_is_refused_with_the_fix(pg_dsn: str) -> None:
    conn = db.connect(pg_dsn)
    with pytest.raises(db.CentralDbError, match="storesense central migrate"):
        db.require_current(conn)
    db.migrate(conn)
    conn.execute("INSERT INTO schema_migrations(version, name) VALUES (%s, 'future')",
                 (db.LATEST + 1,))  # fmt: skip
    with pytest.raises(db.CentralDbError, match="upgrade this program"):
        db.require_current(conn)
    with pytest.raises(db.CentralDbError, match="upgrade it"):
        db.migrate(conn)


def test_day_partitions_take_their_day_only_and_retention_drops_whole_days(pg_dsn: str) -> None:
    conn = db.connect(pg_dsn)
    db.migrate(conn)
    d1, d2 = dt.date(2026, 12, 1), dt.date(2026, 12, 2)
    assert db.ensure_partitions(conn, d1) == len(db.PARTITIONED)
    assert db.ensure_partitions(conn, d1) == 0  # made once
    db.ensure_partitions(conn, d2)
    conn.execute("INSERT INTO stores(store_id) VALUES ('s1')")
    conn.execute("INSERT INTO ingested(day, store_id, msg_id, kind) VALUES (%s, 's1', %s, 'x')",
                 (d1, "a" * 32))  # fmt: skip
    # a row lands in its day's partition; a day without one is refused, not stored elsewhere
    got = conn.execute("SELECT tableoid::regclass::text FROM ingested").fetchone()
    assert got == ("ingested_20261201",)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO ingested(day, store_id, msg_id, kind) "
                     "VALUES ('2026-12-05', 's1', %s, 'x')", ("b" * 32,))  # fmt: skip
    dropped = db.drop_partitions_before(conn, d2)
    assert sorted(dropped) == sorted(db.partition_name(t, d1) for t in db.PARTITIONED)
    assert db.partitions(conn, "ingested") == ["ingested_20261202"]
    assert conn.execute("SELECT count(*) FROM ingested").fetchone() == (0,)


def test_retention_keeps_each_table_its_own_number_of_days(pg_dsn: str, tmp_path: object) -> None:
    from storesense_tools.cli import main

    conn = db.connect(pg_dsn)
    db.migrate(conn)
    today = dt.datetime.now(dt.UTC).date()
    old, recent = today - dt.timedelta(days=100), today - dt.timedelta(days=10)
    for day in (old, recent, today):
        db.ensure_partitions(conn, day)
    assert main(["--home", str(tmp_path), "central", "retention", "--database", pg_dsn]) == 0
    # 100 days: past ingested's 40 and store_health's 30, inside the 730 of the figures
    for table in db.PARTITIONED:
        kept = db.partitions(conn, table)
        assert (db.partition_name(table, old) in kept) == (db.KEEP_DAYS[table] > 100), table
        assert db.partition_name(table, recent) in kept and db.partition_name(table, today) in kept
