"""A week of three stores in two regions, as real hubs sum their days up for the chain.

Each store is a real hub database (``tests.chain_store.ChainStore``) with a week of floor
data and till receipts; each day's ``daily_summary`` is what the hub's chain feed makes
(``hub.chain.daily``, the store report's own analysis). ``PLAN`` is the input, so the tests
compute the expected figures by hand from it, never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from hub.chain.daily import daily_summary
from storesense import chain_messages as cm
from tests.chain_store import DAY_ZONES, ChainStore

REGIONS = {"s1": "north", "s2": "north", "s3": "south"}
NAMES = {"s1": "Leeds Briggate", "s2": "York Coney St", "s3": "Bristol Broadmead"}


@dataclass(frozen=True)
class Day:
    people: int  # through the door: footfall
    shoppers: int  # of them, stopped in the shoe zone: the selling zone's visits
    sales: tuple[float, ...]  # one receipt each


def plan(store: str, i: int) -> Day:
    """Store ``store``'s ``i``-th day of the week (0 = Monday): different every day."""
    k = int(store[1:])
    people = 20 + 7 * k + 3 * i
    shoppers = 4 + k + i % 3
    sales = tuple(round(12.5 * k + 4.25 * j + i, 2) for j in range(1 + (i + k) % 4))
    return Day(people, shoppers, sales)


def last_full_week(today: dt.date | None = None) -> dt.date:
    """The Monday of the last full ISO week before today (inside the ingest's 35 days)."""
    today = today or dt.date.today()
    return today - dt.timedelta(days=today.weekday() + 7)


def week_of_summaries(root: Path, monday: dt.date) -> dict[str, list[cm.DailySummary]]:
    """Each store's seven daily summaries of the week starting ``monday``."""
    out: dict[str, list[cm.DailySummary]] = {}
    for store in REGIONS:
        hub = ChainStore(root / store, store, send="[daily_summaries]", zones=DAY_ZONES)
        days = []
        for i in range(7):
            day = monday + dt.timedelta(days=i)
            p = plan(store, i)
            start = time.mktime(day.timetuple()) + 10 * 3600
            hub.store_day(day.isoformat(), start, people=p.people, shoppers=p.shoppers,
                          sales=list(p.sales))  # fmt: skip
            days.append(daily_summary(hub.conn, hub.cfg, day, start + 20 * 3600))
        hub.close()
        out[store] = days
    return out
