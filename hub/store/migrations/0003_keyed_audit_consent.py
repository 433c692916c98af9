"""Schema 3: the audit log becomes a keyed chain (old rows are chained now); the consent
record and the last visit join ``customers`` (filled from the visits still on file); the
opt-in enrolment photo table.
"""

from __future__ import annotations

import sqlite3

from hub.store import chain

AUDIT_COLUMNS = (
    ("content_mac", "TEXT"),
    ("prev_mac", "TEXT"),
    ("row_mac", "TEXT"),
    ("redacted", "INTEGER NOT NULL DEFAULT 0"),
)
CUSTOMER_COLUMNS = (
    ("consent_notice", "TEXT"),  # which notice the customer was shown
    ("consent_method", "TEXT"),  # how they agreed
    ("consent_staff", "TEXT"),  # who took it
    # kept here, not read from visits: visits are purged sooner than templates (retention)
    ("last_visit_at", "REAL"),
)

# Opt-in only (privacy.keep_enrolment_photo): one enrolment photo, AES-GCM like the templates.
ENROLMENT_PHOTOS = """
CREATE TABLE IF NOT EXISTS enrolment_photos (
    customer_id  TEXT PRIMARY KEY REFERENCES customers(customer_id) ON DELETE CASCADE,
    photo_enc    BLOB NOT NULL,
    media_type   TEXT NOT NULL,
    created_at   REAL NOT NULL
)
"""


def _add_missing(conn: sqlite3.Connection, table: str, cols: tuple[tuple[str, str], ...]) -> None:
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    for name, decl in cols:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def apply(conn: sqlite3.Connection) -> None:
    _add_missing(conn, "audit", AUDIT_COLUMNS)
    _add_missing(conn, "customers", CUSTOMER_COLUMNS)
    conn.execute(ENROLMENT_PHOTOS)
    conn.execute(
        "UPDATE customers SET last_visit_at = (SELECT max(last_seen_at) FROM visits v "
        "WHERE v.customer_id = customers.customer_id) WHERE last_visit_at IS NULL"
    )
    chain.chain_existing(conn)
