"""The manager page's day: today's alerts, who claimed what and how fast, false matches.

Read-only SQL over the alert tables, moved here from the web app (which has no database now).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import statistics
from typing import Any

from hub.staff.accounts import staff_names


def _day_bounds(day: dt.date) -> tuple[float, float]:
    """Local midnight to midnight: 'today' is the store's day, not UTC's."""
    start = dt.datetime.combine(day, dt.time()).astimezone()
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()


def day_report(conn: sqlite3.Connection, day: dt.date) -> dict[str, Any]:
    start, end = _day_bounds(day)
    names = staff_names(conn)
    rows = conn.execute(
        "SELECT a.alert_id, a.customer_id, c.name AS customer_name, a.camera_id, a.state, "
        "a.created_at, a.claimed_by, a.claimed_at, a.closed_at, a.claim_attempts "
        "FROM alerts a LEFT JOIN customers c USING (customer_id) "
        "WHERE a.created_at >= ? AND a.created_at < ? ORDER BY a.created_at DESC",
        (start, end),
    ).fetchall()
    alerts = []
    for r in rows:
        to_claim = r["claimed_at"] - r["created_at"] if r["claimed_at"] is not None else None
        alerts.append(
            {
                **dict(r),
                "claimed_by_name": names.get(r["claimed_by"], r["claimed_by"]),
                "seconds_to_claim": to_claim,
            }
        )
    false_matches = [
        {**dict(r), "staff_name": names.get(r["staff_id"], r["staff_id"])}
        for r in conn.execute(
            "SELECT f.at, f.alert_id, f.customer_id, c.name AS customer_name, f.camera_id, "
            "f.staff_id, f.track_id, f.best_distance FROM false_matches f "
            "LEFT JOIN customers c USING (customer_id) WHERE f.at >= ? AND f.at < ? "
            "ORDER BY f.at DESC",
            (start, end),
        )
    ]
    waits = sorted(a["seconds_to_claim"] for a in alerts if a["seconds_to_claim"] is not None)
    per_staff: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a["claimed_by"]:
            s = per_staff.setdefault(
                a["claimed_by"], {"name": a["claimed_by_name"], "claimed": 0, "waits": []}
            )
            s["claimed"] += 1
            s["waits"].append(a["seconds_to_claim"])
    staff = [
        {
            "staff_id": sid,
            "name": s["name"],
            "claimed": s["claimed"],
            "median_seconds_to_claim": statistics.median(s["waits"]),
        }
        for sid, s in sorted(per_staff.items(), key=lambda kv: -kv[1]["claimed"])
    ]
    by_state: dict[str, int] = {}
    for a in alerts:
        by_state[a["state"]] = by_state.get(a["state"], 0) + 1
    return {
        "date": day.isoformat(),
        "summary": {
            "alerts": len(alerts),
            "by_state": by_state,
            "median_seconds_to_claim": statistics.median(waits) if waits else None,
            "false_matches": len(false_matches),
        },
        "staff": staff,
        "alerts": alerts,
        "false_matches": false_matches,
    }
