"""A hub file written by release 1 opens under the current schema with its data intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.store import db

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

    conn = db.open_db(path)
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
    conn = db.open_db(tmp_path / "new.sqlite3")
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == db.SCHEMA_VERSION
