"""What the store's own alerts say about its match threshold, for ``storesense faces review``.

Two kinds of evidence the alerts room holds: a door match a salesperson *confirmed* by serving
the customer (the alert was claimed, and nobody pressed "not this person"), and a *false match*
(the ``false_matches`` log, one row per "not this person"). Each carries the match's best
distance (``alert_matches.best_distance``). Alerts nobody answered (open, expired) say nothing
either way and are only counted. Read-only; the face room decides nothing from it by itself.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class MatchEvidence:
    confirmed: list[float]  # best distances of claimed (or served and done) alerts
    rejected: list[float]  # best distances of "not this person" reports
    unanswered: int  # alerts that expired or are still open: no evidence
    no_distance: int  # confirmed or rejected matches stored without a distance
    rejected_customers: int  # distinct customers wrongly matched


def match_evidence(conn: sqlite3.Connection, since: float) -> MatchEvidence:
    """The evidence of alerts raised (and reports made) at or after ``since`` (epoch s)."""
    confirmed_rows = conn.execute(
        "SELECT m.best_distance FROM alerts a LEFT JOIN alert_matches m USING (alert_id) "
        "WHERE a.created_at >= ? AND a.state IN ('claimed', 'done') "
        "AND a.alert_id NOT IN (SELECT alert_id FROM false_matches)",
        (since,),
    ).fetchall()
    rejected_rows = conn.execute(
        "SELECT best_distance, customer_id FROM false_matches WHERE at >= ?", (since,)
    ).fetchall()
    unanswered = conn.execute(
        "SELECT count(*) FROM alerts WHERE created_at >= ? AND state IN ('open', 'expired')",
        (since,),
    ).fetchone()[0]
    confirmed = [float(r[0]) for r in confirmed_rows if r[0] is not None]
    rejected = [float(r[0]) for r in rejected_rows if r[0] is not None]
    missing = len(confirmed_rows) - len(confirmed) + len(rejected_rows) - len(rejected)
    return MatchEvidence(
        confirmed=sorted(confirmed),
        rejected=sorted(rejected),
        unanswered=int(unanswered),
        no_distance=missing,
        rejected_customers=len({r[1] for r in rejected_rows}),
    )
