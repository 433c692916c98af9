"""The advice's spatial figures: floor windows with the most person-seconds, walking distance
round fixtures, a zone's way in, zone-to-zone moves, and the zone table's row type.

Pure functions over numbers (no SQLite, no drawing) so each figure is testable on its own;
``hub.floor.analysis`` composes them into plain advice and docs/floor-analytics.md states
every rule. (The earlier formula-and-score insight lists and the second set of zone figures
lived here; the report now takes all its figures from ``hub.floor.kpis``.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import Polygon

from storesense.floor_config import FloorConfig, ZoneConfig

WINDOW_M = 2.0  # candidate spots are 2 m x 2 m floor windows (a display stand, a poster's view)
PROXIMITY_M = 3.0  # a new-product spot's pull of the best zone decays as exp(-distance / 3 m)


@dataclass(frozen=True)
class ZoneStats:
    """One row of the zone table and ``zones.csv`` (``hub.floor.report.zone_rows`` fills it
    from ``hub.floor.kpis.ZoneKpi``; ``*_per_day`` are means over the days with camera data).
    ``observed`` False: the zone is mostly outside every camera's view, its zeros mean
    "unknown"."""

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
    observed: bool = True


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
