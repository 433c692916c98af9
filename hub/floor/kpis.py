"""Key figures of a report period: footfall, busiest hours, visits, dwell and conversion, for
the store and per zone, and their change against the week before.

The one definition of every figure the report shows (tiles, zone table, ``zones.csv``,
``insights.json``): ``hub.floor.analysis`` computes them with ``period_kpis`` for the period and
for the same days a week earlier, and ``hub.floor.report`` only presents them (``summary``,
``trends``). Pure functions over rows the analysis read (no SQL here, no drawing), so each
figure is testable on its own. docs/floor-analytics.md ("Advice: KPIs") defines every figure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from storesense.floor_config import ZoneConfig

OBSERVED_SHARE = 0.5  # a zone at least half inside the camera coverage counts as observed
# Zone kinds whose visits are the store's "zone visits" (and its dwell): not the door a shopper
# walks through, not the staff room.
VISIT_KINDS = frozenset({"shop", "till", "fitting"})


@dataclass(frozen=True)
class VisitRow:
    """One stored zone visit (``floor_visits``), as the figures need it."""

    person: str
    zone: str
    enter_t: float
    exit_t: float

    @property
    def dwell_s(self) -> float:
        return self.exit_t - self.enter_t


@dataclass(frozen=True)
class ZoneKpi:
    """One zone over the period.

    ``visits`` counts visits in the whole period, ``visits_per_day`` divides by the days with
    camera data. ``sales`` is the period's net revenue of the zone's product categories (None
    without POS data or without categories): sales are assigned by *category* to the zone that
    holds it, not by where a buyer stood. ``conversion`` = sales ÷ visits (None if either is
    missing or there were no visits). ``observed`` is False for a zone mostly outside every
    camera's view: its zero visits mean "unknown", not "nobody".
    """

    zone: str
    kind: str
    visits: int
    visits_per_day: float
    dwell_median_s: float | None
    dwell_p90_s: float | None
    sales: float | None
    conversion: float | None
    observed: bool
    observed_share: float  # share of the zone's area inside the camera coverage, 0..1


@dataclass(frozen=True)
class Kpis:
    """The period's key figures; ``previous`` the same figures for the same days a week
    earlier (None when that week has no camera data), for the change arrows.

    ``footfall`` is the number of people who visited an entrance-kind zone (None when no zone
    has ``kind: entrance``: then footfall is not measured and the page shows ``people``, the
    people seen in any zone, under that name). ``busiest_hours`` is (local hour 0–23, people
    arriving in that hour), busiest first, every hour with arrivals (``busiest_hours()``).
    ``visits``, ``dwell_*`` are over the visits to zones of a ``VISIT_KINDS`` kind; ``sales``
    is the net revenue of the observed zones' categories and ``conversion`` that ÷ those
    zones' visits (None without POS data or without a visit).
    """

    footfall: int | None
    people: int
    busiest_hours: list[tuple[int, int]]
    zones: list[ZoneKpi]
    previous: Kpis | None
    observed_s: float
    days_with_data: int
    visits: int = 0
    dwell_median_s: float | None = None
    dwell_p90_s: float | None = None
    sales: float | None = None
    conversion: float | None = None

    def zone(self, name: str) -> ZoneKpi | None:
        return next((z for z in self.zones if z.zone == name), None)


def zone_sales(zone: ZoneConfig, sales: Mapping[str, float] | None) -> float | None:
    """Net revenue of the zone's categories in the period (None: no POS data / no categories)."""
    if sales is None or not zone.categories:
        return None
    return round(sum(sales.get(c, 0.0) for c in zone.categories), 2)


def zone_kpis(
    zones: Sequence[ZoneConfig],
    visits: Sequence[VisitRow],
    sales: Mapping[str, float] | None,
    observed_share: Mapping[str, float],
    days_with_data: int,
) -> list[ZoneKpi]:
    """Per zone: visits, dwell median/p90, sales and conversion (see ``ZoneKpi``)."""
    dwell: dict[str, list[float]] = {}
    for v in visits:
        dwell.setdefault(v.zone, []).append(v.dwell_s)
    out = []
    for z in zones:
        d = np.asarray(dwell.get(z.name, []), dtype=float)
        n = int(d.size)
        s = zone_sales(z, sales)
        share = float(observed_share.get(z.name, 1.0))
        out.append(
            ZoneKpi(
                zone=z.name,
                kind=z.kind,
                visits=n,
                visits_per_day=round(n / days_with_data, 2) if days_with_data else 0.0,
                dwell_median_s=round(float(np.median(d)), 1) if n else None,
                dwell_p90_s=round(float(np.percentile(d, 90)), 1) if n else None,
                sales=s,
                conversion=round(s / n, 2) if s is not None and n else None,
                observed=share >= OBSERVED_SHARE,
                observed_share=round(share, 3),
            )
        )
    return out


def footfall(zones: Sequence[ZoneConfig], visits: Iterable[VisitRow]) -> int | None:
    """People who passed an entrance-kind zone; None when no entrance zone is configured."""
    doors = {z.name for z in zones if z.kind == "entrance"}
    if not doors:
        return None
    return len({v.person for v in visits if v.zone in doors})


def busiest_hours(
    visits: Iterable[VisitRow], entrances: Iterable[str] = ()
) -> list[tuple[int, int]]:
    """(local hour, people arriving then), busiest first; ties by the earlier hour.

    With entrance zones, arrivals are entrance visits (the footfall, hour by hour); without,
    each journey's first zone visit (a journey split between two cameras counts twice)."""
    doors = set(entrances)
    first: dict[str, float] = {}
    for v in visits:
        if doors and v.zone not in doors:
            continue
        if v.person not in first or v.enter_t < first[v.person]:
            first[v.person] = v.enter_t
    hours = Counter(time.localtime(t).tm_hour for t in first.values())
    return sorted(hours.items(), key=lambda hc: (-hc[1], hc[0]))


def arrivals_from(visits: Iterable[VisitRow], zone: str) -> Counter[str]:
    """For entries into ``zone``: the zone each visitor was in just before (their journey)."""
    by_person: dict[str, list[VisitRow]] = {}
    for v in visits:
        by_person.setdefault(v.person, []).append(v)
    came: Counter[str] = Counter()
    for seq in by_person.values():
        seq.sort(key=lambda v: v.enter_t)
        for a, b in pairwise(seq):
            if b.zone == zone and a.zone != zone:
                came[a.zone] += 1
    return came


def _dwell(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    d = np.asarray(values, dtype=float)
    return round(float(np.median(d)), 1), round(float(np.percentile(d, 90)), 1)


def period_kpis(
    zones: Sequence[ZoneConfig],
    visits: Sequence[VisitRow],
    sales: Mapping[str, float] | None,
    observed_share: Mapping[str, float],
    days_with_data: int,
    observed_s: float,
) -> Kpis:
    """Every figure of one period (``previous`` left None: the caller adds last week's)."""
    per_zone = zone_kpis(zones, visits, sales, observed_share, days_with_data)
    kinds = {z.name: z.kind for z in zones}
    counted = [v for v in visits if kinds.get(v.zone) in VISIT_KINDS]
    median_s, p90_s = _dwell([v.dwell_s for v in counted])
    selling = [k for k in per_zone if k.sales is not None and k.observed]
    total = round(sum(k.sales or 0.0 for k in selling), 2) if selling else None
    n_selling = sum(k.visits for k in selling)
    return Kpis(
        footfall=footfall(zones, visits),
        people=len({v.person for v in visits}),
        busiest_hours=busiest_hours(visits, [z.name for z in zones if z.kind == "entrance"]),
        zones=per_zone,
        previous=None,
        observed_s=round(observed_s, 1),
        days_with_data=days_with_data,
        visits=len(counted),
        dwell_median_s=median_s,
        dwell_p90_s=p90_s,
        sales=total,
        conversion=round(total / n_selling, 2) if total is not None and n_selling else None,
    )


def _per(value: float | None, n: float) -> float | None:
    return round(value / n, 2) if value is not None and n > 0 else None


def summary(k: Kpis) -> dict[str, Any]:
    """The store figures as plain data (``insights.json`` ``kpis``/``previous``, the tiles).

    ``*_per_day`` divide by the days with camera data; ``*_per_hour`` by the hours the cameras
    watched, the fair comparison of a short day with a long one (what ``trends`` compares).
    """
    n, hours = k.days_with_data, k.observed_s / 3600
    counted = k.people if k.footfall is None else k.footfall
    return {
        "observed_s": k.observed_s,
        "days_with_data": n,
        "footfall_source": "people seen in any zone" if k.footfall is None else "entrance zones",
        "footfall": k.footfall,
        "people": k.people,
        "footfall_per_day": _per(counted, n),
        "footfall_per_hour": _per(counted, hours),
        "visits": k.visits,
        "visits_per_day": _per(k.visits, n),
        "visits_per_hour": _per(k.visits, hours),
        "median_dwell_s": k.dwell_median_s,
        "p90_dwell_s": k.dwell_p90_s,
        "sales": k.sales,
        "sales_per_day": _per(k.sales, n),
        "conversion": k.conversion,
        "busiest_hours": [
            {"hour": h, "arrivals": c, "arrivals_per_day": _per(c, n)}
            for h, c in k.busiest_hours[:3]
        ],
    }


# tile -> the figure its trend compares: counts per hour watched, so a day the cameras saw
# for 20 minutes is not "83 % down" on a day they saw for 8 hours
TREND_KEYS = {
    "footfall_per_day": "footfall_per_hour",
    "visits_per_day": "visits_per_hour",
    "median_dwell_s": "median_dwell_s",
    "conversion": "conversion",
}


def _rates(k: Kpis) -> dict[str, float | None]:
    """The figures ``trends`` compares, unrounded (rounding first would make 2 against 1
    person in 3 h a 103 % rise)."""
    hours = k.observed_s / 3600
    counted = k.people if k.footfall is None else k.footfall
    return {
        "footfall_per_hour": counted / hours if hours > 0 else None,
        "visits_per_hour": k.visits / hours if hours > 0 else None,
        "median_dwell_s": k.dwell_median_s,
        "conversion": k.conversion,
    }


def trends(now: Kpis) -> dict[str, float | None]:
    """Relative change of each tile against ``now.previous`` (None: nothing to compare)."""
    a = _rates(now)
    b = _rates(now.previous) if now.previous is not None else {}
    out: dict[str, float | None] = {}
    for tile, key in TREND_KEYS.items():
        x, y = a.get(key), b.get(key)
        out[tile] = round((x - y) / y, 3) if x is not None and y else None
    return out
