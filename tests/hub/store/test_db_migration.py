"""Numbered migrations: a file written by release 1..3 upgrades in place with its data intact,
each migration runs once, and every opener but the hub refuses a file at another version."""

from __future__ import annotations

import ast
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.alerts import claims as alerts
from hub.privacy.audit import verify
from hub.store import db, migrations
from storesense.topics import Topics

# The release-1 definition of the two tables the migration touches, verbatim.
V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE visits (
    visit_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    started_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    cameras      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id       TEXT PRIMARY KEY,
    visit_id       TEXT NOT NULL REFERENCES visits(visit_id),
    customer_id    TEXT NOT NULL,
    camera_id      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open','claimed','done','expired')),
    seq            INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL,
    claimed_by     TEXT,
    claimed_at     REAL,
    closed_at      REAL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, expires_at);
CREATE TABLE alert_matches (
    alert_id      TEXT PRIMARY KEY REFERENCES alerts(alert_id) ON DELETE CASCADE,
    track_id      TEXT,
    best_distance REAL
);
INSERT INTO visits VALUES ('v1', 'c1', 1.0, 1.0, 'door-1');
INSERT INTO alerts VALUES ('a1', 'v1', 'c1', 'door-1', 'claimed', 3, 1.0, 60.0, 'bob', 2.0, NULL);
INSERT INTO alert_matches VALUES ('a1', 't1', 0.31);
"""


def test_release_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(V1)
    old.close()

    conn = db.migrate_db(path)
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == db.SCHEMA_VERSION
    row = conn.execute("SELECT * FROM alerts WHERE alert_id='a1'").fetchone()
    assert (row["state"], row["claimed_by"], row["seq"]) == ("claimed", "bob", 3)
    with db.write(conn) as c:  # the new state is now allowed
        c.execute("UPDATE alerts SET state='rejected' WHERE alert_id='a1'")
    match = conn.execute("SELECT track_id, best_distance, tier FROM alert_matches").fetchone()
    assert tuple(match) == ("t1", 0.31, None)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "alerts_state" in names
    conn.close()
    # idempotent: a second open changes nothing and does not fail
    again = db.open_db(path)
    assert again.execute("SELECT state FROM alerts").fetchone()[0] == "rejected"
    again.close()


def test_fresh_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    conn = db.migrate_db(tmp_path / "new.sqlite3")
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == db.SCHEMA_VERSION


def _applied(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    rows = conn.execute("SELECT version, note FROM schema_migrations ORDER BY version")
    return [(r[0], r[1]) for r in rows]


def test_a_fresh_file_runs_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    assert db.migrate(path) == list(range(1, db.SCHEMA_VERSION + 1))
    assert db.migrate(path) == []  # each once: the second run applies nothing
    conn = db.open_db(path)
    assert _applied(conn) == [(v, "") for v in range(1, db.SCHEMA_VERSION + 1)]
    assert db.schema_version(conn) == db.SCHEMA_VERSION


def test_release_1_alerts_get_the_columns_the_claim_machine_needs(tmp_path: Path) -> None:
    """Release 1's alerts had no first_usable_at / claim_attempts / retained_cleared: the
    rebuild fills them in (the old string-patching rebuild kept the table without them, and
    the first match after the upgrade failed on the INSERT)."""
    path = tmp_path / "hub.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(V1)
    old.close()
    conn = db.migrate_db(path)
    row = conn.execute("SELECT * FROM alerts WHERE alert_id='a1'").fetchone()
    assert (row["first_usable_at"], row["claim_attempts"], row["retained_cleared"]) == (1.0, 0, 0)
    assert [v for v, _ in _applied(conn)] == list(range(1, db.SCHEMA_VERSION + 1))
    assert _applied(conn)[0][1] == f"{migrations.ADOPTED} 1" and _applied(conn)[1][1] == ""
    with db.write(conn):
        out = alerts.record_match(
            conn, Topics("s1"), customer_id="c1", camera_id="door-1", first_usable_at=5.0,
            now=5.0, cooldown_s=0.0, alert_ttl_s=60.0,
        )  # fmt: skip
    assert out.alert_id is not None


def _legacy(path: Path, version: int) -> None:
    """A file as an earlier release left it: its tables, ``meta.schema_version`` only."""
    made = db.connect(path)
    migrations.upgrade(made, upto=version)  # that release's schema, nothing newer
    made.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE schema_migrations")
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
    conn.execute(
        "INSERT INTO audit(at, actor, action, customer_id, detail) VALUES (1.0, 'cli', 'enrol', "
        "'c1', 'consent f-1')"
    )  # unchained, as a release before the keyed chain wrote it
    conn.commit()
    conn.close()


def test_a_release_3_file_is_adopted_without_running_anything(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    _legacy(path, 3)
    later = list(range(4, db.SCHEMA_VERSION + 1))  # migrations since release 3 still run
    assert db.migrate(path) == later
    conn = db.open_db(path)
    assert _applied(conn)[:3] == [(v, f"{migrations.ADOPTED} 3") for v in (1, 2, 3)]
    assert [v for v, note in _applied(conn)[3:] if note == ""] == later
    # nothing re-ran: the row written unchained by hand stays unchained
    assert conn.execute("SELECT row_mac FROM audit").fetchone()[0] is None


def test_a_release_2_file_runs_only_migration_3(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    _legacy(path, 2)
    assert db.migrate(path) == list(range(3, db.SCHEMA_VERSION + 1))
    conn = db.open_db(path)
    assert verify(conn).ok and verify(conn).rows == 1  # 0003 chained the old row


@pytest.mark.parametrize("version", [0, 1, 2])
def test_other_openers_refuse_an_older_file_with_one_clear_line(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "hub.sqlite3"
    if version:
        _legacy(path, version)
    else:
        sqlite3.connect(path).close()  # an empty file
    with pytest.raises(db.DatabaseNotReady) as err:
        db.open_db(path)
    assert str(err.value) == (
        f"database at version {version}, this program expects {db.SCHEMA_VERSION}: "
        "start the hub or run `storesense db migrate`"
    )


def test_other_openers_refuse_a_missing_file_and_do_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    with pytest.raises(db.DatabaseNotReady, match=r"no hub database at .*: start the hub or run"):
        db.open_db(path)
    assert not path.exists()


def test_a_newer_file_is_refused_by_everyone(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    db.migrate_db(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0, '')")
    conn.commit()
    conn.close()
    with pytest.raises(db.DatabaseNotReady, match=r"version 99, this program expects .*upgrade"):
        db.open_db(path)
    with pytest.raises(db.DatabaseNotReady, match="version 99, this program knows up to"):
        db.migrate_db(path)


def test_a_failing_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hub.sqlite3"
    db.migrate_db(path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE nodes ADD COLUMN half_done TEXT")
        raise sqlite3.OperationalError("disk on fire")

    step = migrations.Migration(db.SCHEMA_VERSION + 1, "broken", broken)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    monkeypatch.setattr(migrations, "LATEST", step.version)
    with pytest.raises(sqlite3.OperationalError, match="disk on fire"):
        db.migrate_db(path)
    conn = db.connect(path)
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    assert "half_done" not in {r[1] for r in conn.execute("PRAGMA table_info(nodes)")}


MIGRATE = """
import sys
from hub.store import db
print(db.migrate(sys.argv[1]))
"""


def test_two_processes_migrating_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    """The hub starting while an installer runs ``db migrate``: the write lock serialises
    them and the later ones find each migration recorded."""
    path = tmp_path / "hub.sqlite3"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    applied = sorted(v for out in outs for v in ast.literal_eval(out.strip()))
    assert applied == list(range(1, db.SCHEMA_VERSION + 1))
    assert [v for v, _ in _applied(db.open_db(path))] == applied


def test_the_migrations_folder_is_numbered_without_gaps(tmp_path: Path) -> None:
    for name in ("0001_a.sql", "0003_c.sql"):
        (tmp_path / name).write_text("CREATE TABLE IF NOT EXISTS x (a);\n")
    with pytest.raises(RuntimeError, match="without gaps"):
        migrations.discover(tmp_path)
    (tmp_path / "0002_b.sql").write_text("-- a comment; with a semicolon\nCREATE TABLE y (a);\n")
    assert [m.version for m in migrations.discover(tmp_path)] == [1, 2, 3]


def test_the_hub_daemon_migrates_when_it_starts(tmp_path: Path) -> None:
    """The daemon is the database's owner: constructing it brings a release-1 file up to date,
    after which every other opener accepts the file."""
    from hub.service import HubService
    from storesense.config import parse_config
    from storesense.paths import hub_db_path

    path = hub_db_path(tmp_path)
    old = sqlite3.connect(path)
    old.executescript(V1)
    old.close()
    with pytest.raises(db.DatabaseNotReady, match="database at version 1"):
        db.open_db(path)
    hub = HubService(parse_config("store_id: s1\n"), tmp_path)
    try:
        assert db.schema_version(hub.conn) == db.SCHEMA_VERSION
    finally:
        hub.conn.close()
    assert db.open_db(path).execute("SELECT state FROM alerts").fetchone()[0] == "claimed"
