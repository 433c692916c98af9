"""The hub's SQLite file: schema, connection settings and the one transaction helper.

WAL lets the phone app read while the hub writes; ``BEGIN IMMEDIATE`` takes the write lock up
front so two claimers never both read "open" and both write "claimed".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.floor.occupancy import SCHEMA as FLOOR_SCHEMA
from hub.shop import pos_store

# 2: alerts may be 'rejected' ("not this person"); 3: keyed audit chain, consent record,
# last visit per customer, opt-in enrolment photo. See _migrate.
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS customers (
    customer_id  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    consent_ref  TEXT NOT NULL CHECK (length(trim(consent_ref)) > 0),
    consent_at   REAL NOT NULL,
    created_at   REAL NOT NULL,
    -- the consent record: which notice the customer was shown, how they agreed, who took it
    consent_notice TEXT,
    consent_method TEXT,
    consent_staff  TEXT,
    -- kept here, not read from visits: visits are purged sooner than templates (retention)
    last_visit_at  REAL
);

-- Opt-in only (privacy.keep_enrolment_photo): one enrolment photo, AES-GCM like the templates.
CREATE TABLE IF NOT EXISTS enrolment_photos (
    customer_id  TEXT PRIMARY KEY REFERENCES customers(customer_id) ON DELETE CASCADE,
    photo_enc    BLOB NOT NULL,
    media_type   TEXT NOT NULL,
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
-- conditional UPDATEs in hub/alerts/claims.py.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id       TEXT PRIMARY KEY,
    visit_id       TEXT NOT NULL REFERENCES visits(visit_id),
    customer_id    TEXT NOT NULL,
    camera_id      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open','claimed','done','expired','rejected')),
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

-- Appended only through hub.privacy.audit (a keyed hash chain; see there).
CREATE TABLE IF NOT EXISTS audit (
    audit_id    INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    customer_id TEXT,
    detail      TEXT NOT NULL DEFAULT '',
    content_mac TEXT,
    prev_mac    TEXT,
    row_mac     TEXT,
    redacted    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_customer ON audit(customer_id);

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
    conn.executescript(pos_store.SCHEMA)  # purchases, loyalty birthdays, suggestions
    conn.executescript(FLOOR_SCHEMA)  # occupancy grid, zone visits, floor camera runs
    from hub.alerts import claims as alerts  # imported here: hub.alerts.claims imports this module
    from hub.web import schema as web_schema

    conn.executescript(alerts.SCHEMA + web_schema.SCHEMA)  # false matches; staff, sessions
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    _migrate(conn)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a hub file written by an older release up to ``SCHEMA_VERSION``, in place.

    ``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it was, so a changed constraint
    or a new column needs an explicit step. Each step is idempotent and runs in one
    transaction; a crash mid-way leaves the old version, and the next start tries again.
    """
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = int(row[0])
    if version < 2:
        _migrate_to_2(conn)
    if version < 3:
        _migrate_to_3(conn)


def _add_missing_columns(c: sqlite3.Connection, table: str, cols: list[tuple[str, str]]) -> None:
    have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
    for name, decl in cols:
        if name not in have:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def _set_version(c: sqlite3.Connection, version: int) -> None:
    c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    # The alerts state CHECK gains 'rejected'. SQLite cannot alter a CHECK, so the table is
    # rebuilt (https://www.sqlite.org/lang_altertable.html#otheralter), with foreign keys off
    # so alert_matches' reference survives the drop-and-rename.
    old_sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='alerts'"
    ).fetchone()[0]
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        with write(conn) as c:
            if "'rejected'" not in old_sql:
                new_sql = old_sql.replace("'expired')", "'expired','rejected')", 1)
                new_sql = new_sql.replace("alerts", "alerts_v2", 1)
                if "'rejected'" not in new_sql:
                    raise RuntimeError("cannot migrate the alerts table: unexpected schema")
                c.execute(new_sql)
                c.execute("INSERT INTO alerts_v2 SELECT * FROM alerts")
                c.execute("DROP TABLE alerts")
                c.execute("ALTER TABLE alerts_v2 RENAME TO alerts")
                c.execute("CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, expires_at)")
            _add_missing_columns(c, "alert_matches", [("tier", "TEXT")])
            _set_version(c, 2)
            problems = c.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"foreign keys broken by the migration: {problems[:3]}")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """The audit log becomes a keyed chain (old rows are chained now); consent record fields
    and the last visit are added to customers (filled from the visits still on file)."""
    from hub.privacy import audit  # imported here: hub.privacy.audit imports this module

    with write(conn) as c:
        _add_missing_columns(c, "audit", list(audit.CHAIN_COLUMNS))
        c.execute("CREATE INDEX IF NOT EXISTS audit_customer ON audit(customer_id)")
        _add_missing_columns(
            c,
            "customers",
            [(n, t) for n, t in (("consent_notice", "TEXT"), ("consent_method", "TEXT"),
                                 ("consent_staff", "TEXT"), ("last_visit_at", "REAL"))],
        )  # fmt: skip
        c.execute(
            "UPDATE customers SET last_visit_at = (SELECT max(last_seen_at) FROM visits v "
            "WHERE v.customer_id = customers.customer_id) WHERE last_visit_at IS NULL"
        )
        audit.chain_existing(c)
        _set_version(c, 3)


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
