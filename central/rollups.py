"""Roll-up reports over the stores' daily summaries: per store and for what a user may see.

A period is a day or an ISO week (Monday to Sunday). A week is the sum of its days: footfall,
visits, sales, receipts add up; conversion is recomputed from the sums (sales ÷ the selling
zones' visits, the store report's definition), never an average of daily conversions, so a
quiet day weighs what it sold. The total line is over the stores the user may see (the whole
chain for a ``chain`` user, their regions for a ``region`` user); sales are totalled per
currency, never across two. A store that sent nothing for a day counts as "no data", and
the page says how many of the period's days each store has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import psycopg

Period = Literal["day", "week"]
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}
TOP_ADVICE = 8


def period_bounds(period: Period, day: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the day or the ISO week holding ``day``."""
    if period == "day":
        return day, day
    start = day - dt.timedelta(days=day.weekday())
    return start, start + dt.timedelta(days=6)


@dataclass
class Figures:
    """Summed figures of one store (or of a total) over a period."""

    days: int = 0
    footfall: int = 0
    footfall_by_entrance: bool = True  # False: some day counted people seen (no entrance zone)
    visits: int = 0
    selling_visits: int = 0
    sales: dict[str, Decimal] = field(default_factory=dict)  # currency -> amount
    receipts: int = 0
    provisional_days: int = 0

    def add(self, row: dict[str, Any]) -> None:
        self.days += 1
        if row["footfall"] is None:
            self.footfall_by_entrance = False
            self.footfall += row["people_seen"]
        else:
            self.footfall += row["footfall"]
        self.visits += row["visits"]
        if row["sales"] is not None:
            cur = row["currency"].strip()
            self.sales[cur] = self.sales.get(cur, Decimal(0)) + row["sales"]
            self.selling_visits += row["selling_visits"]
        self.receipts += row["receipts"] or 0
        self.provisional_days += bool(row["provisional"])

    def merge(self, other: Figures) -> None:
        self.days += other.days
        self.footfall += other.footfall
        self.footfall_by_entrance &= other.footfall_by_entrance
        self.visits += other.visits
        self.selling_visits += other.selling_visits
        for cur, amount in other.sales.items():
            self.sales[cur] = self.sales.get(cur, Decimal(0)) + amount
        self.receipts += other.receipts
        self.provisional_days += other.provisional_days

    @property
    def conversion(self) -> Decimal | None:
        """Sales per selling-zone visit, from the sums; None with two currencies or no visit."""
        if len(self.sales) != 1 or not self.selling_visits:
            return None
        (amount,) = self.sales.values()
        return (amount / self.selling_visits).quantize(Decimal("0.01"), ROUND_HALF_UP)

    def as_json(self) -> dict[str, Any]:
        return {
            "days_with_data": self.days,
            "footfall": self.footfall,
            "footfall_source": "entrance zones" if self.footfall_by_entrance else (
                "people seen in any zone (a store without an entrance zone)"),
            "visits": self.visits,
            "selling_visits": self.selling_visits,
            "sales": {c: float(a) for c, a in sorted(self.sales.items())},
            "receipts": self.receipts,
            "conversion": None if self.conversion is None else float(self.conversion),
            "provisional_days": self.provisional_days,
        }  # fmt: skip


@dataclass
class StoreRollup:
    store_id: str
    name: str
    region: str
    figures: Figures
    heatmap_day: dt.date | None  # the period's latest day with a thumbnail


@dataclass
class Rollup:
    period: Period
    start: dt.date
    end: dt.date
    stores: list[StoreRollup]
    total: Figures
    advice: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "period": {"kind": self.period, "start": self.start.isoformat(),
                       "end": self.end.isoformat()},
            "total": self.total.as_json(),
            "stores": [
                {"store_id": s.store_id, "name": s.name, "region": s.region,
                 **s.figures.as_json(),
                 "heatmap_day": s.heatmap_day.isoformat() if s.heatmap_day else None}
                for s in self.stores
            ],
            "advice": self.advice,
        }  # fmt: skip


_COLUMNS = (
    "store_id, day, footfall, people_seen, visits, selling_visits, sales, receipts, currency, "
    "provisional, advice, heatmap_png IS NOT NULL AS has_png"
)


def rollup(
    conn: psycopg.Connection, stores: Sequence[tuple[str, str, str]], period: Period,
    day: dt.date,
) -> Rollup:  # fmt: skip
    """The period's figures for each of ``stores`` (id, name, region) and their total."""
    start, end = period_bounds(period, day)
    ids = [s[0] for s in stores]
    per = {s[0]: StoreRollup(s[0], s[1], s[2], Figures(), None) for s in stores}
    advice: list[dict[str, Any]] = []
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM daily_summaries WHERE store_id = ANY(%s) "
        "AND day BETWEEN %s AND %s ORDER BY day",
        (ids, start, end),
    ).fetchall()
    for row in rows:
        s = per[row["store_id"]]
        s.figures.add(row)
        if row["has_png"]:
            s.heatmap_day = row["day"]
        for item in row["advice"]:
            advice.append(item | {"store_id": s.store_id, "store": s.name or s.store_id,
                                  "day": row["day"].isoformat()})  # fmt: skip
    total = Figures()
    for s in per.values():
        if s.figures.days:
            total.merge(s.figures)
    return Rollup(period, start, end, list(per.values()), total, top_advice(advice))


def top_advice(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Across stores and days: one line per store, kind and zone (the same spot advised on
    five days is one piece of advice, ``days_seen`` 5, worded as on its latest day), the
    firmest first, then the stores' own rank, then the latest day."""
    items = sorted(items, key=lambda a: (CONFIDENCE_ORDER.get(a["confidence"], 3), a["rank"],
                                         _neg_day(a["day"]), a["store_id"]))  # fmt: skip
    seen: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for item in items:
        key = (item["store_id"], item["kind"], item["zone"])
        if key in seen:
            seen[key]["days_seen"] += 1
        else:
            seen[key] = item | {"days_seen": 1}
    return list(seen.values())[:TOP_ADVICE]


def _neg_day(day: str) -> int:
    return -dt.date.fromisoformat(day).toordinal()


def heatmap(conn: psycopg.Connection, store_id: str, day: dt.date) -> bytes | None:
    row = conn.execute(
        "SELECT heatmap_png FROM daily_summaries WHERE store_id=%s AND day=%s", (store_id, day)
    ).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None
