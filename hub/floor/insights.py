"""Zone figures and ranked placement insights from the occupancy grid, visits and sales.

Pure functions over numbers (no SQLite, no drawing) so each formula is testable on its own;
docs/floor-analytics.md states every formula with what it means for a store manager. Each
insight carries its rank, its score, the formula and the evidence behind it, so a manager can
see *why* a spot is suggested rather than trusting a black box.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import Polygon

from storesense.floor_config import FloorConfig, ZoneConfig

WINDOW_M = 2.0  # candidate spots are 2 m x 2 m floor windows (a display stand, a poster's view)
RARE_SHARE = 0.1  # a cell below 10 % of the median busy cell is rarely visited
MIN_REGION_M2 = 1.0
PROXIMITY_M = 3.0  # popularity of a zone decays as exp(-distance / 3 m)
TOP_N = 3


@dataclass(frozen=True)
class ZoneStats:
    """One zone over the report's days (``*_per_day`` are means over observed days)."""

    zone: str
    kind: str
    area_m2: float
    visits_per_day: float
    median_dwell_s: float | None
    p90_dwell_s: float | None
    person_s_per_day: float
    revenue_per_day: float | None
    revenue_per_visit: float | None  # "conversion": sales ÷ visits
    categories: str


def cell_centres(floor: FloorConfig, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """x and y (metres) of every cell centre of a grid of ``shape`` (rows, columns)."""
    ny, nx = shape
    xs = (np.arange(nx) + 0.5) * floor.cell_m
    ys = (np.arange(ny) + 0.5) * floor.cell_m
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy


def zone_masks(floor: FloorConfig, zones: Sequence[ZoneConfig], shape: tuple[int, ...]) -> dict:
    """Cells whose centre lies in each zone: {zone name: bool (ny, nx)}."""
    cx, cy = cell_centres(floor, shape)
    return {
        z.name: shapely.contains_xy(Polygon(z.polygon), cx.ravel(), cy.ravel()).reshape(shape)
        for z in zones
    }


def zone_stats(
    floor: FloorConfig,
    zones: Sequence[ZoneConfig],
    grid: np.ndarray,
    dwell_by_zone: dict[str, list[float]],
    n_days: int,
    sales_per_day: dict[str, float] | None,
) -> list[ZoneStats]:
    """Visits, dwell median/p90, exposure and sales per zone.

    ``sales_per_day`` maps product category → revenue per day; each category belongs to the
    zone listing it (config). ``revenue_per_visit`` = zone revenue ÷ zone visits.
    """
    masks = zone_masks(floor, zones, grid.shape)
    out = []
    for z in zones:
        dwell = np.asarray(dwell_by_zone.get(z.name, []), dtype=float)
        visits = len(dwell) / n_days if n_days else 0.0
        revenue = None
        if sales_per_day is not None and z.categories:
            revenue = round(sum(sales_per_day.get(c, 0.0) for c in z.categories), 2)
        out.append(
            ZoneStats(
                zone=z.name,
                kind=z.kind,
                area_m2=round(Polygon(z.polygon).area, 2),
                visits_per_day=round(visits, 2),
                median_dwell_s=round(float(np.median(dwell)), 1) if dwell.size else None,
                p90_dwell_s=round(float(np.percentile(dwell, 90)), 1) if dwell.size else None,
                person_s_per_day=round(float(grid[masks[z.name]].sum()), 1),
                revenue_per_day=revenue,
                revenue_per_visit=(
                    round(revenue / visits, 2) if revenue is not None and visits > 0 else None
                ),
                categories=" ".join(z.categories),
            )
        )
    return out


def transition_counts(visits: Iterable[tuple[str, str, float]]) -> Counter[tuple[str, str]]:
    """(person_key, zone, enter_t) rows → how often people went from one zone to the next."""
    by_person: dict[str, list[tuple[float, str]]] = {}
    for person, zone, enter_t in visits:
        by_person.setdefault(person, []).append((enter_t, zone))
    counts: Counter[tuple[str, str]] = Counter()
    for seq in by_person.values():
        seq.sort()
        for (_, a), (_, b) in pairwise(seq):
            if a != b:
                counts[(a, b)] += 1
    return counts


def _window_sum(grid: np.ndarray, k: int) -> np.ndarray:
    return ndimage.uniform_filter(grid, size=k, mode="constant") * (k * k)


def _pick(score: np.ndarray, k: int, n: int) -> list[tuple[int, int]]:
    """Top-n window centres, no two within one window of each other (non-max suppression)."""
    s = score.copy()
    picks = []
    for _ in range(n):
        iy, ix = np.unravel_index(int(np.argmax(s)), s.shape)
        if not s[iy, ix] > 0:
            break
        picks.append((int(iy), int(ix)))
        s[max(0, iy - k) : iy + k + 1, max(0, ix - k) : ix + k + 1] = 0
    return picks


def _where(floor: FloorConfig, iy: int, ix: int, k: int, masks: dict) -> dict:
    c = floor.cell_m
    x0, y0 = (ix - k // 2) * c, (iy - k // 2) * c
    inside = [name for name, mk in masks.items() if mk[iy, ix]]
    return {
        "x_m": round(max(x0, 0.0), 2),
        "y_m": round(max(y0, 0.0), 2),
        "w_m": round(k * c, 2),
        "h_m": round(k * c, 2),
        "zone": inside[0] if inside else None,
    }


def insights(
    floor: FloorConfig,
    zones: Sequence[ZoneConfig],
    grid: np.ndarray,
    stats: Sequence[ZoneStats],
) -> dict[str, list[dict]]:
    """The four ranked insight lists (each item: rank, title, where, score, formula, evidence)."""
    shape = grid.shape
    masks = zone_masks(floor, zones, shape)
    staff = np.zeros(shape, dtype=bool)
    for z in zones:
        if z.kind == "staff":
            staff |= masks[z.name]
    walk = grid * ~staff
    k = max(1, round(WINDOW_M / floor.cell_m))
    total = float(walk.sum()) or 1.0
    by_name = {s.zone: s for s in stats}
    out: dict[str, list[dict]] = {}

    # 1. advertising: audience-seconds per day in a 2x2 m window = traffic x exposure
    audience = _window_sum(walk, k)
    ads = []
    for rank, (iy, ix) in enumerate(_pick(audience, k, TOP_N), 1):
        where = _where(floor, iy, ix, k, masks)
        zs = by_name.get(where["zone"] or "")
        ads.append(
            {
                "rank": rank,
                "title": f"Advertising spot {rank}: {audience[iy, ix]:.0f} person-s/day in view",
                "where": where,
                "score": round(float(audience[iy, ix]), 1),
                "formula": "sum of person-seconds per day over a 2 m x 2 m window",
                "evidence": {
                    "person_s_per_day": round(float(audience[iy, ix]), 1),
                    "share_of_floor_time": round(float(audience[iy, ix]) / total, 3),
                    "zone_visits_per_day": zs.visits_per_day if zs else None,
                    "zone_median_dwell_s": zs.median_dwell_s if zs else None,
                },
            }
        )
    out["advertising"] = ads

    # 2. new product: dwell x nearness to popular categories x (1 - shelf saturation)
    shop = [z for z in zones if z.categories]
    pop_raw = {
        z.name: (by_name[z.name].revenue_per_day or 0.0)
        if any(s.revenue_per_day for s in stats)
        else by_name[z.name].visits_per_day
        for z in shop
    }
    pop_total = sum(pop_raw.values()) or 1.0
    cx, cy = cell_centres(floor, shape)
    near = np.zeros(shape)
    nearest: dict[str, np.ndarray] = {}
    for z in shop:
        d = shapely.distance(Polygon(z.polygon), shapely.points(cx.ravel(), cy.ravel()))
        nearest[z.name] = d.reshape(shape)
        near += pop_raw[z.name] / pop_total * np.exp(-nearest[z.name] / PROXIMITY_M)
    covered = np.zeros(shape)
    for z in shop:
        covered = np.maximum(covered, masks[z.name])
    saturation = _window_sum(covered.astype(float), k) / (k * k)
    dwell_norm = audience / (audience.max() or 1.0)
    np_score = dwell_norm * near * (1.0 - saturation) * ~staff
    products = []
    for rank, (iy, ix) in enumerate(_pick(np_score, k, TOP_N), 1):
        best = max(shop, key=lambda z: pop_raw[z.name] * np.exp(-nearest[z.name][iy, ix] / 3))
        products.append(
            {
                "rank": rank,
                "title": f"New-product spot {rank}: near {best.name}",
                "where": _where(floor, iy, ix, k, masks),
                "score": round(float(np_score[iy, ix]), 3),
                "formula": "dwell/max(dwell) x sum_z popularity_z*exp(-d_z/3m) x (1-saturation)",
                "evidence": {
                    "person_s_per_day": round(float(audience[iy, ix]), 1),
                    "nearest_popular_zone": best.name,
                    "distance_m": round(float(nearest[best.name][iy, ix]), 2),
                    "popularity_share": round(pop_raw[best.name] / pop_total, 3),
                    "popularity_by": "revenue"
                    if any(s.revenue_per_day for s in stats)
                    else "visits",
                    "saturation": round(float(saturation[iy, ix]), 2),
                },
            }
        )
    out["new_product"] = products

    # 3. rarely visited: connected walkable regions below 10 % of the median busy cell
    busy = walk[(walk > 0) & ~staff]
    threshold = RARE_SHARE * float(np.median(busy)) if busy.size else 0.0
    rare = (walk <= threshold) & ~staff if busy.size else np.zeros(shape, dtype=bool)
    labels, n = ndimage.label(rare)
    regions = []
    cell_m2 = floor.cell_m**2
    for i in range(1, n + 1):
        mk = labels == i
        area = float(mk.sum()) * cell_m2
        if area < MIN_REGION_M2:
            continue
        ys, xs = np.nonzero(mk)
        regions.append((area, mk, ys, xs))
    regions.sort(key=lambda r: -r[0])
    rare_out = []
    for rank, (area, mk, ys, xs) in enumerate(regions[: TOP_N + 2], 1):
        c = floor.cell_m
        inside = sorted({name for name, zm in masks.items() if (zm & mk).any()})
        rare_out.append(
            {
                "rank": rank,
                "title": f"Rarely visited region {rank}: {area:.1f} m²",
                "where": {
                    "x_m": round(xs.min() * c, 2),
                    "y_m": round(ys.min() * c, 2),
                    "w_m": round((xs.max() - xs.min() + 1) * c, 2),
                    "h_m": round((ys.max() - ys.min() + 1) * c, 2),
                    "zone": ", ".join(inside) or None,
                },
                "score": round(area, 2),
                "formula": "connected cells with person-s/day <= 10% of the median busy cell",
                "evidence": {
                    "area_m2": round(area, 2),
                    "person_s_per_day_per_m2": round(float(walk[mk].sum()) / area, 2),
                    "threshold_person_s_per_cell": round(threshold, 2),
                },
            }
        )
    out["rarely_visited"] = rare_out

    # 4. high footfall, low sales: share of the store's visits minus share of its revenue
    sold = [s for s in stats if s.revenue_per_day is not None and s.visits_per_day > 0]
    visits_total = sum(s.visits_per_day for s in sold) or 1.0
    revenue_total = sum(max(s.revenue_per_day or 0.0, 0.0) for s in sold)
    gaps = []
    if revenue_total > 0:
        for s in sold:
            vs = s.visits_per_day / visits_total
            rs = max(s.revenue_per_day or 0.0, 0.0) / revenue_total
            if vs - rs > 0:
                gaps.append((vs - rs, vs, rs, s))
    gaps.sort(key=lambda g: -g[0])
    out["high_footfall_low_sales"] = [
        {
            "rank": rank,
            "title": f"{s.zone}: {vs:.0%} of visits but {rs:.0%} of sales",
            "where": {"zone": s.zone},
            "score": round(gap, 3),
            "formula": "visits_z/sum(visits) - revenue_z/sum(revenue), zones with categories",
            "evidence": asdict(s) | {"visit_share": round(vs, 3), "revenue_share": round(rs, 3)},
        }
        for rank, (gap, vs, rs, s) in enumerate(gaps[:TOP_N], 1)
    ]
    return out


# -- the advice's spatial figures (hub/floor/analysis.py composes them into sentences) --------
#
# Cell masks are bool arrays (ny, nx) of the occupancy grid: row iy covers y in
# [iy·cell, (iy+1)·cell), column ix covers x likewise. "Walkable" = inside the walls and not
# under a fixture, so walking distances go round shelves instead of through them.


@dataclass(frozen=True)
class Spot:
    """A window_m × window_m floor square and the time people spent in it."""

    iy: int
    ix: int
    centre: tuple[float, float]
    polygon: list[tuple[float, float]]
    person_s_per_day: float


def polygon_mask(
    poly: Sequence[tuple[float, float]], shape: tuple[int, ...], cell_m: float
) -> np.ndarray:
    """Cells whose centre lies inside ``poly`` (floor metres)."""
    ny, nx = shape
    gx, gy = np.meshgrid((np.arange(nx) + 0.5) * cell_m, (np.arange(ny) + 0.5) * cell_m)
    return shapely.contains_xy(Polygon(poly), gx.ravel(), gy.ravel()).reshape(shape)


def best_spots(
    grid: np.ndarray,
    allowed: np.ndarray,
    cell_m: float,
    n: int,
    window_m: float = WINDOW_M,
    weight: np.ndarray | None = None,
) -> list[Spot]:
    """The ``n`` windows with the most person-seconds (times ``weight`` if given), centred on
    allowed cells, no two overlapping (non-maximum suppression)."""
    k = max(1, round(window_m / cell_m))
    audience = _window_sum(grid * allowed, k)
    score = audience * allowed * (1.0 if weight is None else weight)
    out = []
    for iy, ix in _pick(score, k, n):
        cx, cy = (ix + 0.5) * cell_m, (iy + 0.5) * cell_m
        h = k * cell_m / 2
        ny, nx = grid.shape
        x0, x1 = max(cx - h, 0.0), min(cx + h, nx * cell_m)
        y0, y1 = max(cy - h, 0.0), min(cy + h, ny * cell_m)
        poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        out.append(
            Spot(
                iy,
                ix,
                (round(cx, 2), round(cy, 2)),
                [(round(x, 2), round(y, 2)) for x, y in poly],
                round(float(audience[iy, ix]), 1),
            )
        )
    return out


_EIGHT = np.ones((3, 3), dtype=bool)
_FOUR = ndimage.generate_binary_structure(2, 1)


def walk_reach(
    region: np.ndarray, walkable: np.ndarray, metres: float, cell_m: float
) -> np.ndarray:
    """Walkable cells outside ``region`` within ``metres`` walking distance of it (geodesic
    dilation: it grows round fixtures, never through them)."""
    steps = max(1, round(metres / cell_m))
    grown = ndimage.binary_dilation(region, _EIGHT, iterations=steps, mask=walkable | region)
    return grown & ~region & walkable


def access_cells(region: np.ndarray, walkable: np.ndarray) -> np.ndarray:
    """Walkable cells touching ``region`` side-on: its way in. Their count × cell size is the
    width of the opening (a zone walled in by shelves but for a 1 m gap gives 1 m)."""
    return ndimage.binary_dilation(region, _FOUR) & ~region & walkable
