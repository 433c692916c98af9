"""Schema 6: the "photo shown to staff at arrival" consent and the customer's own hint.

A separate consent item from the biometric one (issue 17, "who to greet"): ``customers``
gains when it was given (NULL = never given, or withdrawn) and the short hint the customer
chose for staff ("usually wears glasses"), shown instead of a photo when there is none.
Both belong to the face room (hub/faces); displays of the photo are audited by hub/privacy.
"""

from __future__ import annotations

import sqlite3

CUSTOMER_COLUMNS = (
    ("photo_consent_at", "REAL"),  # epoch s the consent was recorded; NULL: no consent
    ("arrival_hint", "TEXT"),  # at most 80 characters, the customer's own words
)


def apply(conn: sqlite3.Connection) -> None:
    have = {r[1] for r in conn.execute("PRAGMA table_info(customers)")}
    for name, decl in CUSTOMER_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE customers ADD COLUMN {name} {decl}")
