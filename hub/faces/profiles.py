"""The face room's tables as other rooms need them: a customer's last visit, forgetting or
expiring a profile, and the strangers the door cameras saw.

These are the only ways another room changes ``customers``, ``templates``,
``enrolment_photos`` or ``unknown_visitors`` (hub/store/tables.py): alerts move the last
visit, privacy erases and expires. Anything that changes who can be matched bumps the
``gallery_version`` counter, which the live matcher polls to reload.
"""

from __future__ import annotations

import sqlite3

from hub.store import db

GALLERY_VERSION = "gallery_version"


def gallery_changed(conn: sqlite3.Connection) -> int:
    """Inside a write transaction: the running hub reloads its matcher before the next match."""
    return db.next_counter(conn, GALLERY_VERSION)


def gallery_version(conn: sqlite3.Connection) -> int:
    return db.counter(conn, GALLERY_VERSION)


def touch_last_visit(conn: sqlite3.Connection, customer_id: str, now: float) -> None:
    """Inside a write transaction: the customer was seen (retention counts from here)."""
    conn.execute("UPDATE customers SET last_visit_at=? WHERE customer_id=?", (now, customer_id))


def forget_customer(conn: sqlite3.Connection, customer_id: str) -> bool:
    """Inside the erasure's transaction: profile, templates and photo go; True if enrolled."""
    gone = conn.execute("DELETE FROM customers WHERE customer_id=?", (customer_id,)).rowcount
    conn.execute("DELETE FROM templates WHERE customer_id=?", (customer_id,))
    conn.execute("DELETE FROM enrolment_photos WHERE customer_id=?", (customer_id,))
    if gone:
        gallery_changed(conn)  # the live matcher reloads without them
    return bool(gone)


def profiles_unseen_since(conn: sqlite3.Connection, cutoff: float) -> list[str]:
    """Customers with no visit (or, never back, no enrolment) since ``cutoff``."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT customer_id FROM customers "
            "WHERE coalesce(last_visit_at, consent_at, created_at) < ?",
            (cutoff,),
        )
    ]


def delete_profile(conn: sqlite3.Connection, customer_id: str) -> tuple[int, int]:
    """Inside a write transaction: one expired profile goes; returns (templates, photos).

    The caller bumps the gallery version once for the batch (``gallery_changed``).
    """
    templates = conn.execute("DELETE FROM templates WHERE customer_id=?", (customer_id,)).rowcount
    photos = conn.execute(
        "DELETE FROM enrolment_photos WHERE customer_id=?", (customer_id,)
    ).rowcount
    conn.execute("DELETE FROM customers WHERE customer_id=?", (customer_id,))
    return templates, photos


def record_unknown(
    conn: sqlite3.Connection,
    track_id: str,
    camera_id: str,
    now: float,
    best_distance: float | None,
) -> None:
    """Inside a write transaction: a track that matched nobody (counted, never identified)."""
    conn.execute(
        "INSERT OR IGNORE INTO unknown_visitors(track_id, camera_id, seen_at, best_distance) "
        "VALUES (?,?,?,?)",
        (track_id, camera_id, now, best_distance),
    )


def purge_unknown_before(conn: sqlite3.Connection, cutoff: float) -> int:
    return conn.execute("DELETE FROM unknown_visitors WHERE seen_at < ?", (cutoff,)).rowcount
