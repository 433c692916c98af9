"""The manager's report as advice: plain sentences with reasons, evidence and confidence, and KPIs.

``analyse`` reads one period's floor data (occupancy grid, zone visits, POS sales by category)
and returns an ``Analysis``: ranked ``Insight`` s of four kinds, the unobserved floor, the KPIs
with the previous week's for comparison, and the mean occupancy grid to draw. It draws
nothing (``hub.floor.report`` renders) and writes nothing. ``insights_json`` is the
``insights.json`` contract (issue 12, item 8) that tests and outside checks read.

Rules kept here, each stated in docs/floor-analytics.md ("Advice"):

* advice is one sentence with named numbers and units, never a formula;
* an area no camera sees is ``not_observed``, never a cold region: an empty cell there means
  *no camera*, not *no shoppers*;
* a cold region's reasons are measured (share of foot traffic within 2 m walking distance,
  entries and where people come from, dwell, sales of its categories, width of and traffic
  through its way in), each with its number;
* confidence comes from the observed hours, the visits behind the insight and the camera's
  detection recall (stated as unknown where not configured); below ``floor.min_observed_s``
  the whole analysis is provisional and no insight is above "low".
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
from shapely.geometry import Point as ShapelyPoint
from shapely.geometry import Polygon
from shapely.ops import unary_union

from hub.floor import insights as spatial
from hub.floor.kpis import Kpis, VisitRow, ZoneKpi, arrivals_from, period_kpis
from hub.floor.occupancy import load_grid
from hub.floor.plan import CameraView, camera_views, not_observed, outline
from hub.floor.retention import pruned_before
from hub.shop.money import money_text
from hub.shop.pos_store import revenue_by_category_range
from storesense.config import StoreConfig
from storesense.floor_config import FixtureConfig, ZoneConfig

__all__ = [
    "Analysis",
    "Evidence",
    "Insight",
    "Kpis",
    "Reason",
    "ZoneKpi",
    "analyse",
    "insights_json",
]

InsightKind = Literal["advertising", "new_product", "cold_region", "high_footfall_low_sales"]
Confidence = Literal["high", "medium", "low"]
ReasonCode = Literal["off_main_path", "few_entries", "short_dwell", "no_sales", "narrow_access"]

TOP_N = 3
NEAR_M = 2.0  # "passes within 2 m" (walking distance) for off_main_path
COLD_SHARE = 0.35  # a zone with fewer visits than 35 % of the typical zone's is rarely visited
OFF_PATH_SHARE = 0.5  # traffic within 2 m below half the typical zone's: off the main path
SHORT_DWELL_S = 5.0  # a median stop shorter than this (or half the typical) is short
NARROW_M = 2.0  # a way in this narrow or narrower is narrow access
BY_FIXTURE_M = 1.5  # a spot this close to a fixture is named by it ("at the front of the till")
NEAR_FIXTURE_M = 3.0  # else a fixture or zone this close is named with its distance
LOW_CONVERSION = 0.5  # sales per visit below half the store's: low sales
HIGH_H, HIGH_VISITS, HIGH_RECALL = 4.0, 50, 0.8  # × min_observed_s, visits, detection recall
MEDIUM_VISITS, MEDIUM_RECALL = 15, 0.6

# The one wording of the sales-mapping caveat: the report's page and PDF print this.
SALES_CAVEAT = (
    "Sales are assigned to zones by product category (the zone whose shelves hold that "
    "category), not by where the buyer stood."
)


@dataclass(frozen=True)
class Evidence:
    """One named number behind an insight, e.g. ``Evidence(5.0, "visits/day")``."""

    value: float
    unit: str


@dataclass(frozen=True)
class Reason:
    """Why a region is cold: ``code`` (``ReasonCode``), a plain sentence, its number."""

    code: str
    text: str
    value: float


@dataclass(frozen=True)
class Insight:
    """One piece of advice. ``rank`` 1 is the best within its ``kind``; ``polygon`` is where
    on the floor (metres; a 2 m square for a spot, the observed part of the zone for a zone);
    ``reasons`` only for ``cold_region`` (most telling first)."""

    kind: InsightKind
    rank: int
    advice: str
    evidence: dict[str, Evidence]
    confidence: Confidence
    confidence_reason: str
    zone: str | None
    polygon: list[tuple[float, float]]
    reasons: list[Reason] = field(default_factory=list)


@dataclass(frozen=True)
class Analysis:
    """Everything the report shows for ``start``..``end`` (inclusive, store-local days).

    ``grid`` is the mean person-seconds per cell per day with camera data (rows = y, columns
    = x, ``cell_m`` metres each). ``observed_s`` is the period's total camera time.
    ``coverage_known`` is False when a floor camera's view is unknown: then nothing is
    claimed unobserved and the page should say so. ``has_floor_cameras`` False: a store
    without floor cameras (the report says so instead of drawing an empty map).
    """

    start: date
    end: date
    observed_s: float
    provisional: bool
    provisional_reason: str | None
    insights: list[Insight]
    not_observed: list[list[tuple[float, float]]]
    kpis: Kpis
    grid: np.ndarray
    cell_m: float
    days_with_data: int
    cameras: list[CameraView]
    coverage_known: bool
    has_floor_cameras: bool
    sales_known: bool
    sales_caveat: str = SALES_CAVEAT
    min_observed_s: float = 7200.0
    notes: list[str] = field(default_factory=list)
    # (from zone, to zone, people who went straight from one to the other), most first
    transitions: list[tuple[str, str, int]] = field(default_factory=list)

    def of_kind(self, kind: InsightKind) -> list[Insight]:
        return [i for i in self.insights if i.kind == kind]


# -- reading the period ------------------------------------------------------------------


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _visits(conn: sqlite3.Connection, days: Sequence[str]) -> list[VisitRow]:
    marks = ",".join("?" * len(days))
    rows = conn.execute(
        f"SELECT person_key, zone, enter_t, exit_t FROM floor_visits WHERE day IN ({marks}) "
        "ORDER BY enter_t",
        tuple(days),
    ).fetchall()
    return [VisitRow(str(p), str(z), float(a), float(b)) for p, z, a, b in rows]


def _days_with_data(conn: sqlite3.Connection, days: Sequence[str]) -> tuple[int, float]:
    marks = ",".join("?" * len(days))
    n, total = conn.execute(
        f"SELECT count(*), coalesce(sum(observed_s), 0) FROM floor_days WHERE day IN ({marks})",
        tuple(days),
    ).fetchone()
    return int(n), float(total)


def _sales(conn: sqlite3.Connection, start: date, end: date) -> dict[str, float] | None:
    try:
        got = revenue_by_category_range(conn, start, end)
    except sqlite3.Error:
        return None
    return got or None


def _period_kpis(
    conn: sqlite3.Connection,
    cfg: StoreConfig,
    start: date,
    end: date,
    sales: Mapping[str, float] | None,
    observed_share: Mapping[str, float],
) -> tuple[Kpis, list[VisitRow]]:
    days = _days(start, end)
    n_days, observed_s = _days_with_data(conn, days)
    visits = _visits(conn, days)
    return period_kpis(list(cfg.zones), visits, sales, observed_share, n_days, observed_s), visits


# -- wording ------------------------------------------------------------------------------


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def _spent(minutes: float) -> str:
    """Time in a spot for the sentence: seconds under a minute ("0.0 minutes a day" read as
    nobody, on a day the cameras watched for seconds), else minutes."""
    if minutes < 1:
        secs = round(minutes * 60)
        return f"{secs} second{'s' if secs != 1 else ''}"
    return f"{_num(minutes)} minutes"


def _money(v: float, cfg: StoreConfig) -> str:
    """An amount in the store's currency and locale (the customer card's format)."""
    return money_text(v, cfg.loyalty.currency, cfg.loyalty.locale)


def _pct(share: float) -> str:
    """A share in words: small shares keep two decimals instead of rounding to 0.0 %."""
    return f"{share:.2%}" if share < 0.01 else f"{share:.1%}"


def _names(counts: Mapping[str, int], total: int) -> str:
    parts = [f"'{z}' ({n / total:.0%})" for z, n in sorted(counts.items(), key=lambda i: -i[1])]
    return ", ".join(parts[:3])


_FIXTURE_WORDS = ("shelf", "shelves", "table", "till", "display", "wall", "rack", "stand")


def _fixture_name(f: FixtureConfig) -> str:
    """How the advice names a fixture: its name, with its kind when the name does not say
    what it is ("bags" → "bags table"; "jeans wall" stays); unnamed, its kind."""
    if not f.name:
        return f.kind
    if f.kind in ("other", "wall") or any(w in f.name.lower() for w in _FIXTURE_WORDS):
        return f.name
    return f"{f.name} {f.kind}"


class _Floor:
    """The period's geometry as cell masks: walls, fixtures, coverage, zones."""

    def __init__(self, cfg: StoreConfig, shape: tuple[int, ...], views: list[CameraView]):
        floor = cfg.floor
        self.cfg, self.cell = cfg, floor.cell_m
        self.shape = shape
        walls = outline(floor)
        self.inside = spatial.polygon_mask(
            [(x, y) for x, y in walls.exterior.coords], shape, self.cell
        )
        fixtures = np.zeros(shape, dtype=bool)
        for f in floor.plan.fixtures:
            fixtures |= spatial.polygon_mask(f.polygon, shape, self.cell)
        self.walkable = self.inside & ~fixtures
        self.views = views
        self.coverage_known = bool(views) and all(v.coverage for v in views)
        if self.coverage_known:
            seen = unary_union([Polygon(v.coverage) for v in views])
            self.seen_geom = seen
            ny, nx = shape
            gx, gy = np.meshgrid(
                (np.arange(nx) + 0.5) * self.cell, (np.arange(ny) + 0.5) * self.cell
            )
            self.observed = shapely.contains_xy(seen, gx.ravel(), gy.ravel()).reshape(shape)
        else:
            self.seen_geom = walls
            self.observed = np.ones(shape, dtype=bool)
        self.zone_mask = {
            z.name: spatial.polygon_mask(z.polygon, shape, self.cell) for z in cfg.zones
        }
        self.staff = np.zeros(shape, dtype=bool)
        for z in cfg.zones:
            if z.kind == "staff":
                self.staff |= self.zone_mask[z.name]

    def observed_share(self, z: ZoneConfig) -> float:
        poly = Polygon(z.polygon)
        if not self.coverage_known or poly.area <= 0:
            return 1.0
        return float(poly.intersection(self.seen_geom).area / poly.area)

    def observed_polygon(self, z: ZoneConfig) -> list[tuple[float, float]]:
        part = Polygon(z.polygon).intersection(self.seen_geom)
        if part.is_empty:
            return list(z.polygon)
        if part.geom_type != "Polygon":
            part = max(getattr(part, "geoms", [part]), key=lambda g: g.area)
        if not isinstance(part, Polygon):
            return list(z.polygon)
        return [(round(x, 2), round(y, 2)) for x, y in list(part.exterior.coords)[:-1]]

    def zone_at(self, x: float, y: float) -> str | None:
        pt = ShapelyPoint(x, y)
        for z in self.cfg.zones:
            if Polygon(z.polygon).contains(pt):
                return z.name
        return None

    def where(self, x: float, y: float) -> str:
        """Plain words for a floor point, as a manager finds it on the shop floor: the fixture
        it is by (and which side of it), the zone it is in, or the nearest zone or door.
        Never coordinates: those go into the evidence (``position``)."""
        zone = self.zone_at(x, y)
        pt = ShapelyPoint(x, y)
        fixtures = [(Polygon(f.polygon).distance(pt), f) for f in self.cfg.floor.plan.fixtures]
        d_fix, fix = min(fixtures, key=lambda df: df[0]) if fixtures else (math.inf, None)
        if fix is not None and d_fix <= BY_FIXTURE_M:
            words = f"{self._side(fix.polygon, pt)} the {_fixture_name(fix)}"
            return f"{words}, in '{zone}'" if zone else words
        if zone:
            if fix is not None and d_fix <= NEAR_FIXTURE_M:
                return f"in '{zone}', {_num(d_fix)} m from the {_fixture_name(fix)}"
            return f"in '{zone}'"
        zones = [(Polygon(z.polygon).distance(pt), z.name) for z in self.cfg.zones]
        near = min(zones) if zones else None
        if near is not None and near[0] <= NEAR_FIXTURE_M:
            return f"on the open floor, {_num(near[0])} m from '{near[1]}'"
        door = self._door()
        if door is not None:
            return f"on the open floor, {_num(math.dist(door[1], (x, y)))} m from the {door[0]}"
        return "on the open floor"

    def places(self, centres: Sequence[tuple[float, float]]) -> list[str]:
        """``where`` for each of a ranked list of spots; two spots that read the same (both
        "beside the left shelves") are told apart by their distance from the way in."""
        words = [self.where(x, y) for x, y in centres]
        door = self._door()
        if door is None:
            return words
        out = []
        for w, (x, y) in zip(words, centres, strict=True):
            if words.count(w) > 1 and "m from the" not in w:
                w = f"{w}, {_num(math.dist(door[1], (x, y)))} m from the {door[0]}"
            out.append(w)
        return out

    def _door(self) -> tuple[str, tuple[float, float]] | None:
        """The way in (name, floor point): the plan's first entrance, else an entrance zone."""
        plan = self.cfg.floor.plan
        if plan.entrances:
            e = plan.entrances[0]
            return e.name, (float(e.at[0]), float(e.at[1]))
        for z in self.cfg.zones:
            if z.kind == "entrance":
                c = Polygon(z.polygon).centroid
                return f"'{z.name}' zone", (c.x, c.y)
        return None

    def _side(self, poly: Sequence[tuple[float, float]], pt: ShapelyPoint) -> str:
        """Which side of a fixture ``pt`` is on: "at the front of" (the side facing the way
        in, what shoppers see first), "behind", "beside"; "by" without a known door."""
        door = self._door()
        shape = Polygon(poly)
        if door is None or shape.contains(pt):
            return "by"
        edge = shape.exterior.interpolate(shape.exterior.project(pt))
        out = np.array([pt.x - edge.x, pt.y - edge.y])
        to_door = np.array([door[1][0] - shape.centroid.x, door[1][1] - shape.centroid.y])
        norm = float(np.linalg.norm(out) * np.linalg.norm(to_door))
        if norm < 1e-9:
            return "by"
        cos = float(out @ to_door) / norm
        return "at the front of" if cos > 0.5 else "behind" if cos < -0.5 else "beside"

    def recall(self, poly: Sequence[tuple[float, float]]) -> tuple[float | None, list[str]]:
        """The lowest configured detection recall among the cameras seeing ``poly`` (None if
        any of them has none configured) and those cameras' ids."""
        placed = {c.camera: c for c in self.cfg.floor.plan.cameras}
        centre = Polygon(poly).representative_point()
        cams = [v.camera for v in self.views if v.coverage and Polygon(v.coverage).contains(centre)]
        if not cams:
            cams = [v.camera for v in self.views]
        recalls = [placed[c].detection_recall if c in placed else None for c in cams]
        if not recalls or any(r is None for r in recalls):
            return None, cams
        return min(r for r in recalls if r is not None), cams


def confidence(
    observed_s: float,
    min_observed_s: float,
    visits: int,
    recall: float | None,
    cameras: Sequence[str],
    provisional: bool,
    provisional_why: str | None = None,
) -> tuple[Confidence, str]:
    """high / medium / low with the reason in words (thresholds in docs/floor-analytics.md).

    high: ≥ 4 × the minimum observed time, ≥ 50 visits and a measured recall ≥ 0.8;
    medium: ≥ the minimum time, ≥ 15 visits and recall ≥ 0.6 or unknown; else low.
    An unknown recall caps at medium; a provisional period at low (``provisional_why`` says
    why when it is not the short camera time).
    """
    cams = ", ".join(cameras) or "no camera"
    rec = (
        f"detection quality of {cams} unknown (not measured)"
        if recall is None
        else f"detection recall {recall:.0%} ({cams})"
    )
    facts = f"{_hours(observed_s)} observed, {visits} visits behind it, {rec}"
    if provisional:
        short = f"the period has less than {_hours(min_observed_s)} of camera time"
        return "low", f"low: {facts}; {provisional_why or short}"
    if (
        observed_s >= HIGH_H * min_observed_s
        and visits >= HIGH_VISITS
        and recall is not None
        and recall >= HIGH_RECALL
    ):
        return "high", f"high: {facts}"
    if (
        observed_s >= min_observed_s
        and visits >= MEDIUM_VISITS
        and (recall is None or recall >= MEDIUM_RECALL)
    ):
        why = []
        if observed_s < HIGH_H * min_observed_s:
            why.append(f"high needs {_hours(HIGH_H * min_observed_s)} observed")
        if visits < HIGH_VISITS:
            why.append(f"high needs {HIGH_VISITS} visits")
        if recall is None:
            why.append("high needs a measured detection recall")
        elif recall < HIGH_RECALL:
            why.append(f"high needs a recall of {HIGH_RECALL:.0%}")
        return "medium", f"medium: {facts} ({'; '.join(why)})"
    why = []
    if observed_s < min_observed_s:
        why.append(f"under {_hours(min_observed_s)} observed")
    if visits < MEDIUM_VISITS:
        why.append(f"fewer than {MEDIUM_VISITS} visits")
    if recall is not None and recall < MEDIUM_RECALL:
        why.append(f"recall under {MEDIUM_RECALL:.0%}")
    return "low", f"low: {facts} ({'; '.join(why)})"


# -- the analysis -------------------------------------------------------------------------


def analyse(
    conn: sqlite3.Connection,
    cfg: StoreConfig,
    start: date,
    end: date,
    *,
    min_observed_s: float | None = None,
    sales: Mapping[str, float] | None = None,
    base_dir: Path | None = None,
) -> Analysis:
    """The advice for ``start``..``end`` (store-local days, inclusive).

    ``min_observed_s`` overrides ``floor.min_observed_s``; ``sales`` ({category: net revenue
    over the period}) overrides the POS tables (what-ifs, tests); ``base_dir`` resolves
    relative calibration paths (the store YAML's folder).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    floor = cfg.floor
    min_obs = floor.min_observed_s if min_observed_s is None else min_observed_s
    days = _days(start, end)
    grid, _mean_obs = load_grid(conn, floor, days)
    views = camera_views(cfg, base_dir)
    geo = _Floor(cfg, grid.shape, views)
    share = {z.name: geo.observed_share(z) for z in cfg.zones}
    if sales is None:
        sales = _sales(conn, start, end)
    kpis, visits = _period_kpis(conn, cfg, start, end, sales, share)
    prev_start, prev_end = start - timedelta(days=7), end - timedelta(days=7)
    prev, _ = _period_kpis(
        conn, cfg, prev_start, prev_end, _sales(conn, prev_start, prev_end), share
    )
    if prev.days_with_data:
        kpis = replace(kpis, previous=prev)
    observed_s = kpis.observed_s
    notes: list[str] = []
    has_cams = any(c.role == "floor" for c in cfg.cameras) or observed_s > 0
    if not geo.coverage_known:
        notes.append(
            "What each floor camera sees is not configured (floor.plan.cameras coverage or a "
            "calibration), so no area is marked as not observed."
        )
    if sales is None:
        notes.append("No sales data for this period: conversion and sales advice are left out.")
    kept_from = pruned_before(conn)
    visits_gone = kept_from is not None and start < kept_from
    provisional_reason: str | None = None
    if not has_cams:
        provisional_reason = (
            "This store has no floor camera, so there is no floor data to advise on."
        )
    elif visits_gone:
        provisional_reason = (
            f"The zone visits before {kept_from} were deleted after "
            f"{floor.raw_keep_days} days (floor.raw_keep_days), so this period's visit, stay "
            "and sales-per-visit figures and the advice built on them are incomplete; the "
            "map of where people spent time is complete."
        )
    elif observed_s < min_obs:
        provisional_reason = (
            f"Only {_hours(observed_s)} of camera time in this period; advice needs at least "
            f"{_hours(min_obs)} to be firm, so every insight is provisional."
        )
    provisional = provisional_reason is not None
    out: list[Insight] = []
    if has_cams and observed_s > 0:
        ctx = _Ctx(cfg, geo, grid, kpis, visits, sales, observed_s, min_obs, provisional)
        if visits_gone:
            ctx.provisional_why = f"zone visits before {kept_from} were deleted"
        ads = ctx.advertising()
        out = ads + ctx.new_product(ads) + ctx.cold() + ctx.low_sales()
    return Analysis(
        start=start,
        end=end,
        observed_s=observed_s,
        provisional=provisional,
        provisional_reason=provisional_reason,
        insights=out,
        not_observed=not_observed(cfg, views),
        kpis=kpis,
        grid=grid,
        cell_m=floor.cell_m,
        days_with_data=kpis.days_with_data,
        cameras=views,
        coverage_known=geo.coverage_known,
        has_floor_cameras=has_cams,
        sales_known=sales is not None,
        min_observed_s=min_obs,
        notes=notes,
        transitions=[
            (x, y, n)
            for (x, y), n in spatial.transition_counts(
                (v.person, v.zone, v.enter_t) for v in visits
            ).most_common()
        ],
    )


@dataclass
class _Ctx:
    cfg: StoreConfig
    geo: _Floor
    grid: np.ndarray
    kpis: Kpis
    visits: list[VisitRow]
    sales: Mapping[str, float] | None
    observed_s: float
    min_obs: float
    provisional: bool
    provisional_why: str | None = None  # None: the short camera time

    def __post_init__(self) -> None:
        self.n_days = max(self.kpis.days_with_data, 1)
        self.people = len({v.person for v in self.visits})
        g = self.geo
        not_spot = np.zeros(self.grid.shape, dtype=bool)
        for z in self.cfg.zones:
            if z.kind in ("staff", "till", "entrance"):
                not_spot |= g.zone_mask[z.name]
        # spots: where a display can stand and be seen: observed, walkable, not a door/till
        self.allowed = g.observed & g.walkable & ~not_spot
        self.total_ps = float((self.grid * (g.observed & ~g.staff)).sum()) or 1.0

    def _conf(self, poly: Sequence[tuple[float, float]], visits: int) -> tuple[Confidence, str]:
        recall, cams = self.geo.recall(poly)
        return confidence(
            self.observed_s,
            self.min_obs,
            visits,
            recall,
            cams,
            self.provisional,
            self.provisional_why,
        )

    def _zone_visits(self, zone: str | None) -> int:
        k = self.kpis.zone(zone) if zone else None
        return k.visits if k else self.people

    # 1. advertising: the most person-seconds in a 2 m square
    def advertising(self) -> list[Insight]:
        out = []
        spots = spatial.best_spots(self.grid, self.allowed, self.geo.cell, TOP_N)
        places = self.geo.places([s.centre for s in spots])
        for rank, s in enumerate(spots, 1):
            zone = self.geo.zone_at(*s.centre)
            minutes = s.person_s_per_day / 60
            share = s.person_s_per_day / self.total_ps
            conf, why = self._conf(s.polygon, self._zone_visits(zone))
            out.append(
                Insight(
                    kind="advertising",
                    rank=rank,
                    advice=(
                        f"Put a poster or display {places[rank - 1]}: shoppers spend "
                        f"{_spent(minutes)} a day in this 2 m × 2 m spot, {share:.0%} of "
                        "all the time people spend on the observed floor."
                    ),
                    evidence={
                        "time_in_spot": Evidence(round(minutes, 1), "min/day"),
                        "share_of_floor_time": Evidence(round(100 * share, 1), "%"),
                        "people_on_floor": Evidence(
                            round(self.people / self.n_days, 1), "people/day"
                        ),
                        **_position(s.centre),
                    },
                    confidence=conf,
                    confidence_reason=why,
                    zone=zone,
                    polygon=s.polygon,
                )
            )
        return out

    # 2. new product: busy spots close to the best-selling (or most visited) zone
    def new_product(self, ads: Sequence[Insight] = ()) -> list[Insight]:
        """``ads``: the advertising spots; a new-product spot that is one of them says so,
        so the plan's two markers on one square are explained (one display serves both)."""
        shop = [z for z in self.cfg.zones if z.kind == "shop" and z.categories]
        if not shop:
            return []
        by_sales = self.sales is not None and any(
            (k.sales or 0) > 0 for k in self.kpis.zones if k.zone in {z.name for z in shop}
        )

        def pull(z: ZoneConfig) -> float:
            k = self.kpis.zone(z.name)
            assert k is not None
            return (k.sales or 0.0) if by_sales else float(k.visits)

        best = max(shop, key=pull)
        ny, nx = self.grid.shape
        c = self.geo.cell
        gx, gy = np.meshgrid((np.arange(nx) + 0.5) * c, (np.arange(ny) + 0.5) * c)
        dist = shapely.distance(Polygon(best.polygon), shapely.points(gx.ravel(), gy.ravel()))
        weight = np.exp(-dist.reshape(self.grid.shape) / spatial.PROXIMITY_M)
        k = self.kpis.zone(best.name)
        assert k is not None
        out = []
        spots = spatial.best_spots(self.grid, self.allowed, c, TOP_N, weight=weight)
        places = self.geo.places([s.centre for s in spots])
        for rank, s in enumerate(spots, 1):
            d = float(Polygon(best.polygon).distance(ShapelyPoint(*s.centre)))
            minutes = s.person_s_per_day / 60
            pulled = (
                f"the best-selling zone ({_money((k.sales or 0) / self.n_days, self.cfg)} in sales "
                "a day)"
                if by_sales
                else f"the most visited zone ({_num(k.visits_per_day)} visits a day)"
            )
            near = f"inside '{best.name}'" if d == 0 else f"{d:.1f} m from '{best.name}'"
            # the place already names the zone ("in 'kitchen'", "0.8 m from 'kitchen'"): the
            # sentence does not say it twice ("in 'kitchen': … there, inside 'kitchen'")
            if f"'{best.name}'" in places[rank - 1]:
                tie = f"{'in' if d == 0 else 'by'} {pulled}"
            else:
                tie = f"{near}, {pulled}"
            ad_squares = [a.polygon for a in ads]
            twin = same_spot(s.polygon, ad_squares)
            part = None if twin is not None else same_spot(s.polygon, ad_squares, 0.0)
            if twin is not None:
                also = (
                    f"; it is advertising spot {ads[twin].rank} too, so one display there "
                    "serves both"
                )
            elif part is not None:
                also = (
                    f"; it overlaps advertising spot {ads[part].rank}, so one display where "
                    "the two meet serves both"
                )
            else:
                also = ""
            conf, why = self._conf(s.polygon, k.visits)
            ev = {
                "time_in_spot": Evidence(round(minutes, 1), "min/day"),
                "distance_to_best_zone": Evidence(round(d, 1), "m"),
                "best_zone_visits": Evidence(k.visits_per_day, "visits/day"),
                **_position(s.centre),
            }
            if by_sales:
                ev["best_zone_sales"] = Evidence(
                    round((k.sales or 0) / self.n_days, 2), f"{self.cfg.loyalty.currency}/day"
                )
            out.append(
                Insight(
                    kind="new_product",
                    rank=rank,
                    advice=(
                        f"Put the new product {places[rank - 1]}: shoppers spend "
                        f"{_spent(minutes)} a day there, {tie}{also}."
                    ),
                    evidence=ev,
                    confidence=conf,
                    confidence_reason=why,
                    zone=self.geo.zone_at(*s.centre),
                    polygon=s.polygon,
                )
            )
        return out

    # 3. cold regions: observed shop zones far below the typical zone's visits, and why
    def cold(self) -> list[Insight]:
        g = self.geo
        shop = [z for z in self.cfg.zones if z.kind == "shop" and g.observed_share(z) >= 0.5]
        if len(shop) < 2:
            return []
        kz = {z.name: self.kpis.zone(z.name) for z in shop}
        per_day = {n: k.visits_per_day for n, k in kz.items() if k is not None}
        walk = self.grid * g.observed * ~g.staff
        near_share = {
            z.name: float(
                walk[spatial.walk_reach(g.zone_mask[z.name], g.walkable, NEAR_M, g.cell)].sum()
            )
            / self.total_ps
            for z in shop
        }
        cold = []
        for z in shop:
            others = [v for n, v in per_day.items() if n != z.name]
            typical = float(np.median(others)) if others else 0.0
            if typical > 0 and per_day[z.name] < COLD_SHARE * typical:
                cold.append((per_day[z.name], z, typical))
        cold.sort(key=lambda c: c[0])
        out = []
        for rank, (vpd, z, typical) in enumerate(cold, 1):
            reasons = self._cold_reasons(z, vpd, typical, near_share, walk)
            k = kz[z.name]
            assert k is not None
            poly = g.observed_polygon(z)
            conf, why = self._conf(poly, max(self.people, k.visits))
            top = reasons[0].code if reasons else "few_entries"
            act = {
                "narrow_access": "widen or open up the way in",
                "off_main_path": (
                    "signpost it from the main aisle or move a popular line next to it"
                ),
                "short_dwell": "make people stop: a clearer display or a tester",
                "no_sales": "check its prices, stock and labels",
                "few_entries": "give people a reason to go there",
            }[top]
            ev = {
                "visits": Evidence(vpd, "visits/day"),
                "typical_zone_visits": Evidence(round(typical, 1), "visits/day"),
            }
            for r in reasons:
                ev[r.code] = Evidence(r.value, _REASON_UNIT[r.code])
            out.append(
                Insight(
                    kind="cold_region",
                    rank=rank,
                    advice=(
                        f"'{z.name}' is rarely visited ({_num(vpd)} visits a day against "
                        f"{_num(typical)} for a typical zone): {act}."
                    ),
                    evidence=ev,
                    confidence=conf,
                    confidence_reason=why,
                    zone=z.name,
                    polygon=poly,
                    reasons=reasons,
                )
            )
        return out

    def _cold_reasons(
        self,
        z: ZoneConfig,
        vpd: float,
        typical: float,
        near_share: Mapping[str, float],
        walk: np.ndarray,
    ) -> list[Reason]:
        g, reasons = self.geo, []
        mask = g.zone_mask[z.name]
        # narrow access: the way in is narrow and carries little traffic
        gate = spatial.access_cells(mask, g.walkable)
        width = float(gate.sum()) * g.cell
        through = float(walk[gate].sum()) / self.total_ps
        if width <= NARROW_M:
            reasons.append(
                Reason(
                    "narrow_access",
                    f"It is reached only through a {width:.1f} m wide opening, which carries "
                    f"{_pct(through)} of the foot traffic on the floor.",
                    round(width, 2),
                )
            )
        # off the main path: little traffic within 2 m walking distance
        others = [v for n, v in near_share.items() if n != z.name]
        typical_near = float(np.median(others)) if others else 0.0
        mine = near_share[z.name]
        if typical_near > 0 and mine < OFF_PATH_SHARE * typical_near:
            reasons.append(
                Reason(
                    "off_main_path",
                    f"Only {_pct(mine)} of the foot traffic passes within {NEAR_M:.0f} m walking "
                    f"distance of it, against {typical_near:.1%} for a typical zone.",
                    round(100 * mine, 1),
                )
            )
        # few entries, and where the few come from
        came = arrivals_from(self.visits, z.name)
        n_came = sum(came.values())
        src = f"; those who come arrive from {_names(came, n_came)}" if n_came else ""
        reasons.append(
            Reason(
                "few_entries",
                f"{_num(vpd)} visits a day against {_num(typical)} for a typical zone{src}.",
                vpd,
            )
        )
        k = self.kpis.zone(z.name)
        assert k is not None
        meds = [
            x.dwell_median_s
            for x in self.kpis.zones
            if x.kind == "shop" and x.zone != z.name and x.dwell_median_s is not None
        ]
        typ_dwell = float(np.median(meds)) if meds else None
        if k.dwell_median_s is not None and (
            k.dwell_median_s < SHORT_DWELL_S
            or (typ_dwell is not None and k.dwell_median_s < 0.5 * typ_dwell)
        ):
            reasons.append(
                Reason(
                    "short_dwell",
                    f"Visitors stay a median of {k.dwell_median_s:.0f} s"
                    + (f" against {typ_dwell:.0f} s elsewhere." if typ_dwell else "."),
                    k.dwell_median_s,
                )
            )
        if self.sales is not None and z.categories and (k.sales or 0.0) <= 0:
            reasons.append(
                Reason(
                    "no_sales",
                    f"Nothing of its categories ({', '.join(z.categories)}) sold in the period.",
                    0.0,
                )
            )
        order = {
            "narrow_access": 0,
            "off_main_path": 1,
            "no_sales": 2,
            "short_dwell": 3,
            "few_entries": 4,
        }
        reasons.sort(key=lambda r: order[r.code])
        return reasons

    # 4. high footfall, low sales
    def low_sales(self) -> list[Insight]:
        if self.sales is None:
            return []
        sold = [
            k
            for k in self.kpis.zones
            if k.sales is not None and k.observed and k.kind == "shop" and k.visits > 0
        ]
        if len(sold) < 2:
            return []
        visits_total = sum(k.visits for k in sold)
        sales_total = sum(max(k.sales or 0.0, 0.0) for k in sold)
        store_conv = self.kpis.conversion  # the store's sales per visit (hub.floor.kpis)
        if sales_total <= 0 or not store_conv or store_conv <= 0:
            return []
        typical = float(np.median([k.visits for k in sold]))
        hits = []
        for k in sold:
            conv = (k.sales or 0.0) / k.visits
            if k.visits >= typical and conv < LOW_CONVERSION * store_conv:
                gap = k.visits / visits_total - max(k.sales or 0.0, 0.0) / sales_total
                hits.append((gap, k, conv))
        hits.sort(key=lambda h: -h[0])
        out = []
        zones = {z.name: z for z in self.cfg.zones}
        cur = self.cfg.loyalty.currency
        for rank, (_gap, k, conv) in enumerate(hits[:TOP_N], 1):
            z = zones[k.zone]
            sells = (
                "sells nothing of its categories"
                if (k.sales or 0) <= 0
                else f"sells only {_money((k.sales or 0) / self.n_days, self.cfg)} a day of its "
                "categories"
            )
            poly = self.geo.observed_polygon(z)
            conf, why = self._conf(poly, k.visits)
            out.append(
                Insight(
                    kind="high_footfall_low_sales",
                    rank=rank,
                    advice=(
                        f"'{k.zone}' draws {_num(k.visits_per_day)} visits a day but {sells} "
                        f"({', '.join(z.categories)}): {_money(conv, self.cfg)} per visit "
                        f"against {_money(store_conv, self.cfg)} for the store; check prices, "
                        "stock and how the goods are shown there."
                    ),
                    evidence={
                        "visits": Evidence(k.visits_per_day, "visits/day"),
                        "sales": Evidence(round((k.sales or 0) / self.n_days, 2), f"{cur}/day"),
                        "conversion": Evidence(round(conv, 2), f"{cur}/visit"),
                        "store_conversion": Evidence(round(store_conv, 2), f"{cur}/visit"),
                    },
                    confidence=conf,
                    confidence_reason=why,
                    zone=k.zone,
                    polygon=poly,
                )
            )
        return out


SAME_SPOT_OVERLAP = 0.5  # two spots sharing more than half their area are one place


def same_spot(
    poly: Sequence[tuple[float, float]],
    others: Sequence[Sequence[tuple[float, float]]],
    min_share: float = SAME_SPOT_OVERLAP,
) -> int | None:
    """Index of the first of ``others`` (polygons) covering more than ``min_share`` of
    ``poly`` (by default half: a new-product spot that is also an advertising spot; 0: any
    overlap), or None. The advice's wording and the plan's drawing of two spots on one
    square both ask this, so they always agree."""
    mine = Polygon(poly)
    if mine.area <= 0:
        return None
    for i, o in enumerate(others):
        if mine.intersection(Polygon(o)).area > min_share * mine.area:
            return i
    return None


_REASON_UNIT = {
    "narrow_access": "m",
    "off_main_path": "%",
    "few_entries": "visits/day",
    "short_dwell": "s",
    "no_sales": "sales",  # the value is 0: nothing sold (a count, not an amount)
}


def _position(centre: tuple[float, float]) -> dict[str, Evidence]:
    """A spot's centre in floor metres (x right, y up from the plan's bottom-left): evidence,
    never part of the sentence."""
    return {"position_x": Evidence(centre[0], "m"), "position_y": Evidence(centre[1], "m")}


def _pt(p: Sequence[float]) -> list[float]:
    return [round(float(p[0]), 3), round(float(p[1]), 3)]


def insights_json(a: Analysis) -> dict[str, Any]:
    """``insights.json`` exactly as issue 12 item 8 defines it (docs/floor-analytics.md)."""

    def item(i: Insight) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": i.kind,
            "rank": i.rank,
            "advice": i.advice,
            "evidence": {
                k: {"value": (None if math.isnan(e.value) else e.value), "unit": e.unit}
                for k, e in i.evidence.items()
            },
            "confidence": i.confidence,
            "confidence_reason": i.confidence_reason,
            "zone": i.zone,
            "polygon": [_pt(p) for p in i.polygon],
        }
        if i.kind == "cold_region":
            d["reasons"] = [{"code": r.code, "text": r.text, "value": r.value} for r in i.reasons]
        return d

    return {
        "period": {
            "start": a.start.isoformat(),
            "end": a.end.isoformat(),
            "observed_s": round(a.observed_s, 1),
        },
        "provisional": a.provisional,
        "provisional_reason": a.provisional_reason,
        "insights": [item(i) for i in a.insights],
        "not_observed": [[_pt(p) for p in poly] for poly in a.not_observed],
    }
