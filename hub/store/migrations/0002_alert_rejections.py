"""Schema 2: an alert may be 'rejected' ("not this person"); the false-match log; the tier.

SQLite cannot alter a CHECK, so ``alerts`` is rebuilt into its current definition
(https://www.sqlite.org/lang_altertable.html#otheralter; the runner turns foreign keys off
around it so ``alert_matches``' reference survives the drop-and-rename). The columns release 1
did not have are filled in: ``first_usable_at`` from ``created_at``, the counters at 0.
"""

from __future__ import annotations

import sqlite3

ALERTS = """
CREATE TABLE alerts_v2 (
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
)
"""
# how a column missing from an older ``alerts`` is filled; absent here: left to its default
FILL = {"first_usable_at": "created_at"}

FALSE_MATCHES = """
CREATE TABLE IF NOT EXISTS false_matches (
    false_match_id INTEGER PRIMARY KEY,
    at             REAL NOT NULL,
    alert_id       TEXT NOT NULL UNIQUE,
    customer_id    TEXT NOT NULL,
    camera_id      TEXT NOT NULL,
    staff_id       TEXT NOT NULL,
    track_id       TEXT,
    best_distance  REAL
)
"""


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def apply(conn: sqlite3.Connection) -> None:
    old_sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='alerts'"
    ).fetchone()[0]
    if "'rejected'" not in old_sql:
        have = set(_columns(conn, "alerts"))
        conn.execute(ALERTS)
        target = _columns(conn, "alerts_v2")
        cols = [c for c in target if c in have or c in FILL]
        source = [c if c in have else FILL[c] for c in cols]
        conn.execute(
            f"INSERT INTO alerts_v2({', '.join(cols)}) SELECT {', '.join(source)} FROM alerts"
        )
        conn.execute("DROP TABLE alerts")
        conn.execute("ALTER TABLE alerts_v2 RENAME TO alerts")
        conn.execute("CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, expires_at)")
    if "tier" not in _columns(conn, "alert_matches"):
        conn.execute("ALTER TABLE alert_matches ADD COLUMN tier TEXT")
    conn.execute(FALSE_MATCHES)
    conn.execute("CREATE INDEX IF NOT EXISTS false_matches_at ON false_matches(at)")
