"""The alert room's tables as privacy needs them: what one customer's visits and alerts are,
forget one customer, drop what is past its time.

Visits, alerts, their match evidence and the false-match log are read and written only in
this room (hub/store/tables.py); export, erasure and retention (hub.privacy) call these
functions, inside their own transaction where they write, instead of touching the rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from hub.bus import outbox
from storesense.topics import Topics


def customer_data(conn: sqlite3.Connection, customer_id: str) -> dict[str, Any]:
    """One person's ``visits`` and ``alerts`` for the right of access (hub.privacy.export),
    oldest first; the mirror of ``forget_customer``."""
    cid = (customer_id,)
    visits = conn.execute(
        "SELECT visit_id, started_at, last_seen_at, cameras FROM visits "
        "WHERE customer_id=? ORDER BY started_at",
        cid,
    ).fetchall()
    alerts = conn.execute(
        "SELECT alert_id, camera_id, state, created_at, claimed_by, claimed_at, closed_at "
        "FROM alerts WHERE customer_id=? ORDER BY created_at",
        cid,
    ).fetchall()
    return {"visits": [dict(r) for r in visits], "alerts": [dict(r) for r in alerts]}


def previous_visit(conn: sqlite3.Connection, customer_id: str, now: float) -> float | None:
    """When the customer was last in the store *before* the visit now in progress (epoch s
    of that visit's last sighting), for the card's "last visit"; None if this is the first
    visit on file (visits are kept ``retention.visits_days``). A visit seen within the last
    hour is the one in progress (the door alert of this arrival is what opened the card)."""
    rows = conn.execute(
        "SELECT started_at, last_seen_at FROM visits WHERE customer_id=? AND started_at <= ? "
        "ORDER BY started_at DESC LIMIT 2",
        (customer_id, now),
    ).fetchall()
    if rows and rows[0][1] >= now - 3600:
        rows = rows[1:]
    return float(rows[0][1]) if rows else None


def forget_customer(conn: sqlite3.Connection, customer_id: str, now: float) -> int:
    """Inside the erasure's transaction: the customer's visits, alerts and false-match reports
    go, and the retained alert messages on the broker (they carry the name) are cleared.
    Returns the alerts removed."""
    alert_ids = [
        r[0]
        for r in conn.execute("SELECT alert_id FROM alerts WHERE customer_id=?", (customer_id,))
    ]
    # whichever store raised them: erasure does not know the store, the topic pattern does
    outbox.retract_retained(conn, [Topics.alert_in_any_store(a) for a in alert_ids], now)
    conn.execute("DELETE FROM alerts WHERE customer_id=?", (customer_id,))  # matches cascade
    conn.execute("DELETE FROM visits WHERE customer_id=?", (customer_id,))
    # "not this person" reports name the customer the stranger was mistaken for
    conn.execute("DELETE FROM false_matches WHERE customer_id=?", (customer_id,))
    return len(alert_ids)


@dataclass(frozen=True)
class Purged:
    visits: int
    alerts: int
    false_matches: int


def purge_before(
    conn: sqlite3.Connection, *, visits_before: float, false_matches_before: float
) -> Purged:
    """Inside the retention transaction: closed alerts (with their evidence) and visits last
    seen before ``visits_before``; false-match reports older than ``false_matches_before``."""
    # An open alert is minutes old by construction; only closed ones can be this old.
    old_alerts = (
        "SELECT a.alert_id FROM alerts a JOIN visits v USING (visit_id) "
        "WHERE v.last_seen_at < ? AND a.state <> 'open'"
    )
    conn.execute(f"DELETE FROM alert_matches WHERE alert_id IN ({old_alerts})", (visits_before,))
    alerts = conn.execute(
        f"DELETE FROM alerts WHERE alert_id IN ({old_alerts})", (visits_before,)
    ).rowcount
    visits = conn.execute(
        "DELETE FROM visits WHERE last_seen_at < ? AND visit_id NOT IN "
        "(SELECT visit_id FROM alerts)",
        (visits_before,),
    ).rowcount
    false_matches = conn.execute(
        "DELETE FROM false_matches WHERE at < ?", (false_matches_before,)
    ).rowcount
    return Purged(visits, alerts, false_matches)
