"""Read-only views of the alert room's tables for the web process (asked through ``hub.api``).

The alert room owns visits, alerts and the false-match log (hub/store/tables.py), so the
queries behind the phone's "may I open this customer" check and the manager page's day live
here; names come from their rooms (staff names passed in by ``hub.api``, customer names from
``hub.faces.profiles``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import statistics
from dataclasses import dataclass
from typing import Any

from hub.alerts import claims
from hub.faces import profiles
from storesense.messages import Alert


@dataclass(frozen=True)
class AlertAccess:
    """Who holds an alert, for the customer-card check."""

    customer_id: str
    state: str
    claimed_by: str | None


def alert_access(conn: sqlite3.Connection, alert_id: str) -> AlertAccess | None:
    row = conn.execute(
        "SELECT customer_id, state, claimed_by FROM alerts WHERE alert_id=?", (alert_id,)
    ).fetchone()
    return None if row is None else AlertAccess(row[0], row[1], row[2])


def day_bounds(day: dt.date) -> tuple[float, float]:
    """Local midnight to midnight: 'today' is the store's day, not UTC's."""
    start = dt.datetime.combine(day, dt.time()).astimezone()
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()


def day_report(conn: sqlite3.Connection, day: dt.date, names: dict[str, str]) -> dict[str, Any]:
    """The manager page's day: every alert, who claimed what and how fast, false matches.

    ``names`` is staff id → display name (``hub.staff.accounts.staff_names``).
    """
    start, end = day_bounds(day)
    rows = [
        dict(r)
        for r in conn.execute(
            "SELECT alert_id, customer_id, camera_id, state, created_at, claimed_by, "
            "claimed_at, closed_at, claim_attempts FROM alerts "
            "WHERE created_at >= ? AND created_at < ? ORDER BY created_at DESC",
            (start, end),
        )
    ]
    fms = [
        dict(r)
        for r in conn.execute(
            "SELECT at, alert_id, customer_id, camera_id, staff_id, track_id, best_distance "
            "FROM false_matches WHERE at >= ? AND at < ? ORDER BY at DESC",
            (start, end),
        )
    ]
    customers = profiles.customer_names(conn, [r["customer_id"] for r in rows + fms])
    alerts = []
    for r in rows:
        to_claim = r["claimed_at"] - r["created_at"] if r["claimed_at"] is not None else None
        alerts.append(
            {
                "alert_id": r["alert_id"],
                "customer_id": r["customer_id"],
                "customer_name": customers.get(r["customer_id"]),
                **{k: r[k] for k in list(r)[2:]},
                "claimed_by_name": names.get(r["claimed_by"], r["claimed_by"]),
                "seconds_to_claim": to_claim,
            }
        )
    false_matches = [
        {
            **{k: f[k] for k in ("at", "alert_id", "customer_id")},
            "customer_name": customers.get(f["customer_id"]),
            **{k: f[k] for k in ("camera_id", "staff_id", "track_id", "best_distance")},
            "staff_name": names.get(f["staff_id"], f["staff_id"]),
        }
        for f in fms
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


def my_customers(
    conn: sqlite3.Connection, staff_id: str, *, idle_s: float = 900.0, confirm_s: float = 120.0
) -> list[dict[str, Any]]:
    """The alerts ``staff_id`` holds (claimed, not done), oldest claim first.

    Read from the table, not from the retained messages: a claim can outlive its retained
    message (cleared an hour after the claim) and a phone that reloads, logs in again or
    went "← Alerts" must still reach its customer and press Done. ``ask_at``: when the phone
    asks "still with …?"; ``ends_at``: when the hub ends the claim unanswered
    (``hub.alerts.claims.end_idle_claims``).
    """
    rows = conn.execute(
        "SELECT alert_id, customer_id, camera_id, created_at, claimed_at, "
        "coalesce(claim_active_at, claimed_at) AS active_at FROM alerts "
        "WHERE state='claimed' AND claimed_by=? ORDER BY claimed_at, alert_id",
        (staff_id,),
    ).fetchall()
    names = profiles.customer_names(conn, [r["customer_id"] for r in rows])
    return [
        {
            "alert_id": r["alert_id"],
            "customer_id": r["customer_id"],
            "customer_name": names.get(r["customer_id"]) or "a returning customer",
            "camera_id": r["camera_id"],
            "arrived_at": r["created_at"],
            "claimed_at": r["claimed_at"],
            "ask_at": r["active_at"] + idle_s,
            "ends_at": r["active_at"] + idle_s + confirm_s,
        }
        for r in rows
    ]


def missed_alerts(conn: sqlite3.Connection, day: dt.date) -> list[dict[str, Any]]:
    """The day's expired alerts, newest first: customers nobody accepted in time (the
    manager page shows the count and the list)."""
    start, end = day_bounds(day)
    rows = conn.execute(
        "SELECT alert_id, customer_id, camera_id, created_at, closed_at, claim_attempts "
        "FROM alerts WHERE state='expired' AND created_at >= ? AND created_at < ? "
        "ORDER BY created_at DESC, alert_id",
        (start, end),
    ).fetchall()
    names = profiles.customer_names(conn, [r["customer_id"] for r in rows])
    return [
        {
            "alert_id": r["alert_id"],
            "customer_id": r["customer_id"],
            "customer_name": names.get(r["customer_id"]),
            "camera_id": r["camera_id"],
            "arrived_at": r["created_at"],
            "expired_at": r["closed_at"],
            "claim_attempts": r["claim_attempts"],
        }
        for r in rows
    ]


def alert_states_since(conn: sqlite3.Connection, seq: int) -> list[Alert]:
    """Every alert whose state changed after ``seq``, as its current message, oldest change
    first: what the hub's push sender forwards (it may not read the alerts table itself)."""
    ids = [
        r[0] for r in conn.execute("SELECT alert_id FROM alerts WHERE seq > ? ORDER BY seq", (seq,))
    ]
    return [claims.alert_message(conn, alert_id) for alert_id in ids]
