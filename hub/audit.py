"""Who looked at which customer's profile, when and why: one row per view, never skipped.

Every path that shows a customer card (the phone app, the manager page, `storesense pos card`,
the demo's simulated phones) records the view through here, so the audit log is complete
whatever the front end. Erasure keeps these rows: they prove how the data was used.
"""

from __future__ import annotations

import sqlite3
import time

from hub import db

VIEW_PROFILE = "view_profile"


def record_profile_view(
    conn: sqlite3.Connection, *, actor: str, customer_id: str, reason: str, at: float | None = None
) -> None:
    if not reason.strip():
        raise ValueError("a profile view needs a reason (e.g. the claimed alert)")
    with db.write(conn):
        conn.execute(
            "INSERT INTO audit(at, actor, action, customer_id, detail) VALUES (?,?,?,?,?)",
            (time.time() if at is None else at, actor, VIEW_PROFILE, customer_id, reason),
        )
