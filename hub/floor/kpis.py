"""Key figures of a report period: footfall, busiest hours, visits, dwell and conversion per zone.

Pure functions over rows the analysis read (no SQL here, no drawing), so each figure is
testable on its own and ``hub.floor.analysis`` can compute the previous week's figures with the
same code. docs/floor-analytics.md ("Advice: KPIs") defines every figure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from storesense.floor_config import ZoneConfig

OBSERVED_SHARE = 0.5  # a zone at least half inside the camera coverage counts as observed


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
    has ``kind: entrance``: then footfall is not measured, and the page must say so).
    ``busiest_hours`` is (local hour 0–23, people arriving in that hour), busiest first, every
    hour with arrivals; a person "arrives" at their first zone visit.
    """

    footfall: int | None
    busiest_hours: list[tuple[int, int]]
    zones: list[ZoneKpi]
    previous: Kpis | None
    observed_s: float
    days_with_data: int

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
