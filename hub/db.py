"""The hub's SQLite file: schema, connection settings and the one transaction helper.

WAL lets the phone app read while the hub writes; ``BEGIN IMMEDIATE`` takes the write lock up
front so two claimers never both read "open" and both write "claimed".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS customers (
    customer_id  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    consent_ref  TEXT NOT NULL CHECK (length(trim(consent_ref)) > 0),
    consent_at   REAL NOT NULL,
    created_at   REAL NOT NULL
);

-- Templates only, encrypted (AES-GCM, customer id as associated data). No images.
CREATE TABLE IF NOT EXISTS templates (
    template_id  INTEGER PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(customer_id) ON DELETE CASCADE,
    vector_enc   BLOB NOT NULL,
    quality      REAL NOT NULL,
    source       TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_customer ON templates(customer_id);

CREATE TABLE IF NOT EXISTS visits (
    visit_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    started_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    cameras      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_customer ON visits(customer_id, last_seen_at);

-- The claim state machine: open -> claimed -> done, open -> expired. Changed only by
-- conditional UPDATEs in hub/alerts.py.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id       TEXT PRIMARY KEY,
    visit_id       TEXT NOT NULL REFERENCES visits(visit_id),
    customer_id    TEXT NOT NULL,
    camera_id      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open','claimed','done','expired')),
    seq            INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL,
    first_usable_at REAL NOT NULL,
    claimed_by     TEXT,
    claimed_at     REAL,
    closed_at      REAL,
    claim_attempts INTEGER NOT NULL DEFAULT 0,
    retained_cleared INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, expires_at);

-- Messages to publish once the transaction that produced them has committed.
CREATE TABLE IF NOT EXISTS outbox (
    outbox_id  INTEGER PRIMARY KEY,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    sent_at    REAL
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(sent_at) WHERE sent_at IS NULL;

-- QoS 1 is at-least-once: a message id seen here has had its effect already.
CREATE TABLE IF NOT EXISTS seen_messages (
    msg_id      TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS unknown_visitors (
    track_id    TEXT PRIMARY KEY,
    camera_id   TEXT NOT NULL,
    seen_at     REAL NOT NULL,
    best_distance REAL
);

CREATE TABLE IF NOT EXISTS audit (
    audit_id    INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    customer_id TEXT,
    detail      TEXT NOT NULL DEFAULT ''
);

-- Last heartbeat of every camera; ``state`` is 'up', 'offline' (it said goodbye, or its last
-- will fired) or 'down' (silent for too long).
CREATE TABLE IF NOT EXISTS nodes (
    camera_id      TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    state          TEXT NOT NULL,
    fps            REAL NOT NULL,
    frames         INTEGER NOT NULL,
    queue_depth    INTEGER NOT NULL,
    reconnects     INTEGER NOT NULL,
    rejections     TEXT NOT NULL,
    last_heartbeat_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
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


def open_db(path: Path | str) -> sqlite3.Connection:
    conn = connect(path)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    return conn


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
