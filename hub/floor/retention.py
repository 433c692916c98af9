"""How long the floor room keeps its raw rows: zone visits and camera-run counters.

``floor_visits`` (one row per person and zone, with a track's person key and its enter and
exit times) and ``floor_runs`` (one row per camera run) grow for ever while the report folders
are pruned (``floor.report_keep_days``). The nightly ``storesense report`` calls ``prune_raw``
after writing: rows of days older than ``floor.raw_keep_days`` go, in one transaction.

What stays is the daily aggregates the reports draw and compare: ``floor_grid`` (person-seconds
per cell per day: the heatmap), ``floor_days`` (camera time per day) and
``floor_camera_heights`` (the cameras' self-check), a few hundred rows a day, so a report of
an old period still shows where people were and how long the cameras watched. Its visit figures
need the raw visits, so the day before which they were deleted is kept (``floor_state`` row
``visits_pruned_before``) and ``hub.floor.analysis`` says so for a period reaching back past
it instead of reporting zero visits.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from hub.store import db

log = logging.getLogger(__name__)

PRUNED_KEY = "visits_pruned_before"  # floor_state row: first day whose visits are all kept


@dataclass(frozen=True)
class RawPruned:
    """What one ``prune_raw`` removed: rows per table and the first day kept."""

    visits: int
    runs: int
    kept_from: str


def prune_raw(conn: sqlite3.Connection, keep_days: int, today: date) -> RawPruned:
    """Delete ``floor_visits`` of days before ``today - keep_days`` and ``floor_runs`` whose
    last message came before that day's local midnight, and record the day, all in one
    transaction (a failure leaves every table as it was). Idempotent."""
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    first = today - timedelta(days=keep_days)
    cutoff_t = time.mktime(datetime.combine(first, datetime.min.time()).timetuple())
    with db.write(conn):
        visits = conn.execute("DELETE FROM floor_visits WHERE day < ?", (first.isoformat(),))
        runs = conn.execute("DELETE FROM floor_runs WHERE last_at < ?", (cutoff_t,))
        before = pruned_before(conn)
        if before is None or before < first:
            conn.execute(
                "INSERT OR REPLACE INTO floor_state(name, saved_at, body) VALUES (?,?,?)",
                (PRUNED_KEY, time.time(), json.dumps({"day": first.isoformat()})),
            )
    got = RawPruned(visits.rowcount, runs.rowcount, first.isoformat())
    if got.visits or got.runs:
        log.info(
            "floor retention: %d zone visits and %d camera runs before %s removed",
            got.visits,
            got.runs,
            got.kept_from,
        )
    return got


def pruned_before(conn: sqlite3.Connection) -> date | None:
    """The first day whose zone visits are all kept (None: nothing was ever pruned). An
    unreadable row counts as never pruned and is logged, not raised: it only words a note."""
    row = conn.execute("SELECT body FROM floor_state WHERE name = ?", (PRUNED_KEY,)).fetchone()
    if row is None:
        return None
    try:
        return date.fromisoformat(json.loads(row[0])["day"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("floor_state %s unreadable (%s): treated as never pruned", PRUNED_KEY, exc)
        return None
