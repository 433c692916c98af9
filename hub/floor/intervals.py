"""Zone visits per interval, for the chain's central office (hub.chain.feed asks this).

The floor room owns ``floor_visits``; a visit row is written when the visit ends, so an
interval's figures are only complete once its visits have ended. The caller waits
``chain.floor_settle_s`` after an interval before asking.
"""

from __future__ import annotations

import sqlite3


def zone_totals(conn: sqlite3.Connection, start: float, end: float) -> dict[str, tuple[int, float]]:
    """zone -> (visits, dwell seconds) of the stored visits that began in ``[start, end)``.

    Dwell is the visits' whole length, even past ``end``: a visit belongs to the interval it
    began in, so summing intervals gives the day's figures without counting anyone twice.
    """
    rows = conn.execute(
        "SELECT zone, count(*), coalesce(sum(exit_t - enter_t), 0) FROM floor_visits "
        "WHERE enter_t >= ? AND enter_t < ? GROUP BY zone",
        (start, end),
    )
    return {str(zone): (int(n), max(0.0, float(dwell))) for zone, n, dwell in rows}
