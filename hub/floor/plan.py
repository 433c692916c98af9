"""The store's floor plan for the report: an image placed by its scale, or a plan drawn from the
store YAML (walls, fixtures, entrances, zones), with the cameras and the floor each one sees.

Never a warped camera frame: a manager recognises the shop from its plan, not from a stretched
bird's-eye view of one camera. Floor metres run x to the right and y up (``PlanConfig``), so
the picture is drawn with the y axis the right way up and an image keeps its orientation.

Camera coverage comes from ``floor.plan.cameras[].coverage`` where the installer measured it,
else from the camera's calibration file (``storesense calibrate``): the frame's pixels mapped
through the homography onto the floor. Only the hub reads these files; no edge code is imported
(the YAML is the contract).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from shapely.geometry import MultiPoint, Polygon, box
from shapely.ops import unary_union

from storesense.config import StoreConfig
from storesense.floor_config import FloorConfig, Point

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

# One palette for the picture and its legend (the legend names every overlay).
FIXTURE_COLOUR = {
    "shelf": "#8c6d46",
    "table": "#b08d57",
    "till": "#4d4d4d",
    "display": "#a0522d",
    "wall": "#333333",
    "other": "#999999",
}
ZONE_EDGE = "#1f4e9c"
COVERAGE_EDGE = "#6a3d9a"
NOT_OBSERVED = "#7f7f7f"
ENTRANCE = "#007a7a"  # teal: apart from the green advertising spots


class PlanError(ValueError):
    """The plan cannot be drawn as configured (unreadable image, bad scale)."""


@dataclass(frozen=True)
class CameraView:
    camera: str
    at: Point | None
    coverage: list[Point]  # floor metres; empty when unknown
    source: str  # "config", "calibration" or "unknown"


def outline(floor: FloorConfig) -> Polygon:
    """The shop's walls as a polygon: the configured outline, else the floor rectangle."""
    if floor.plan.outline:
        poly = Polygon(floor.plan.outline)
        return poly if poly.is_valid else poly.buffer(0)
    return box(0, 0, floor.width_m, floor.height_m)


def _calibration_coverage(path: Path, floor: FloorConfig) -> list[Point]:
    """The floor a calibrated camera sees: its frame sampled on a grid, mapped by the
    homography, points behind the horizon dropped, hull clipped to the walls."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        hom = np.asarray(doc["homography"], dtype=float).reshape(3, 3)
        w, h = (int(v) for v in doc["image_size"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        log.warning("camera calibration %s unreadable for the plan: %s", path, exc)
        return []
    us, vs = np.meshgrid(np.linspace(0, w, 33), np.linspace(0, h, 25))
    pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)])
    out = hom @ pix
    ok = out[2] > 1e-9
    xy = (out[:2, ok] / out[2, ok]).T
    walls = outline(floor)
    far = 4 * max(floor.width_m, floor.height_m)  # near the horizon the mapping runs off
    xy = xy[(np.abs(xy) < far).all(axis=1)]
    if len(xy) < 3:
        return []
    seen = MultiPoint([tuple(p) for p in xy]).convex_hull.intersection(walls)
    if not isinstance(seen, Polygon) or seen.is_empty:
        return []
    return [(round(x, 3), round(y, 3)) for x, y in list(seen.exterior.coords)[:-1]]


def camera_views(cfg: StoreConfig, base_dir: Path | None = None) -> list[CameraView]:
    """Every floor camera with its position and the floor it sees (see the module note)."""
    placed = {c.camera: c for c in cfg.floor.plan.cameras}
    views = []
    for cam in cfg.cameras:
        if cam.role != "floor":
            continue
        p = placed.get(cam.id)
        if p is not None and p.coverage:
            views.append(CameraView(cam.id, p.at, list(p.coverage), "config"))
            continue
        cov: list[Point] = []
        if cam.calibration is not None:
            path = cam.calibration
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            cov = _calibration_coverage(path, cfg.floor)
        views.append(
            CameraView(cam.id, p.at if p else None, cov, "calibration" if cov else "unknown")
        )
    return views


def not_observed(cfg: StoreConfig, views: list[CameraView]) -> list[list[Point]]:
    """Floor inside the walls that no camera sees (polygons, metres). Cameras of unknown
    coverage (or data from cameras the YAML does not list) make it unknowable, so then
    nothing is claimed unobserved."""
    if not views or any(not v.coverage for v in views):
        return []
    walls = outline(cfg.floor)
    seen = unary_union([Polygon(v.coverage) for v in views]) if views else Polygon()
    rest = walls.difference(seen)
    parts = getattr(rest, "geoms", [rest])
    return [
        [(round(x, 3), round(y, 3)) for x, y in list(g.exterior.coords)[:-1]]
        for g in parts
        if g.geom_type == "Polygon" and g.area > 0.05
    ]


def image_extent(floor: FloorConfig, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) in floor metres of a plan image of ``shape`` (rows, cols).

    Two reference points give the scale (their distance in pixels over metres) and place the
    image; else ``px_per_m`` (or the legacy ``floor.plan_px_per_m``; else the image spans the
    floor's width) with ``origin_px``, the pixel of floor (0, 0), by default the bottom-left.
    Image rows run down while floor y runs up, hence the sign.
    """
    plan = floor.plan
    rows, cols = shape[0], shape[1]
    if plan.ref_points is not None:
        a, b = plan.ref_points
        dpx = math.dist(a.px, b.px)
        dm = math.dist(a.m, b.m)
        ppm = dpx / dm
        x0 = a.m[0] - a.px[0] / ppm
        y_top = a.m[1] + a.px[1] / ppm
    else:
        ppm = plan.px_per_m or floor.plan_px_per_m or cols / floor.width_m
        ou, ov = plan.origin_px if plan.origin_px is not None else (0.0, float(rows))
        x0 = -ou / ppm
        y_top = ov / ppm
    return (x0, x0 + cols / ppm, y_top - rows / ppm, y_top)


def load_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise PlanError(f"cannot read the floor plan image {path}: {exc}") from None


def draw_plan(
    ax: Axes,
    cfg: StoreConfig,
    views: list[CameraView],
    unobserved: list[list[Point]],
    plan_image: Path | None = None,
) -> list[Any]:
    """Draw the plan on ``ax`` (floor metres, y up) and return the legend handles, one per
    kind of overlay actually drawn, so the legend never names what the picture lacks."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.patches import Polygon as MplPolygon

    floor = cfg.floor
    handles: list[Any] = []
    if plan_image is not None:
        img = load_image(plan_image)
        ax.imshow(img, extent=image_extent(floor, img.shape), origin="upper", zorder=0)
        handles.append(Patch(fc="#dddddd", ec="#333333", label="floor plan (image)"))
    else:
        walls = outline(floor)
        ax.add_patch(
            MplPolygon(
                list(walls.exterior.coords), closed=True, fc="#f7f5ef", ec="#222222", lw=3, zorder=0
            )
        )
        handles.append(Patch(fc="#f7f5ef", ec="#222222", lw=2, label="walls"))
    kinds_drawn: set[str] = set()
    for f in floor.plan.fixtures:
        colour = FIXTURE_COLOUR[f.kind]
        ax.add_patch(
            MplPolygon(
                f.polygon, closed=True, fc=colour, ec="#222222", lw=0.8, alpha=0.85, zorder=2
            )
        )
        kinds_drawn.add(f.kind)
        if f.name:
            xs, ys = zip(*f.polygon, strict=True)
            ax.text(
                sum(xs) / len(xs),
                sum(ys) / len(ys),
                f.name,
                ha="center",
                va="center",
                fontsize=7,
                color="white",
                rotation=90 if _tall(f.polygon) else 0,
                zorder=3,
            )
    for kind in sorted(kinds_drawn):
        handles.append(Patch(fc=FIXTURE_COLOUR[kind], ec="#222222", label=kind))
    for poly in unobserved:
        ax.add_patch(
            MplPolygon(
                poly, closed=True, fill=False, hatch="///", ec=NOT_OBSERVED, lw=0, zorder=1.5
            )
        )
    if unobserved:
        handles.append(Patch(fill=False, hatch="///", ec=NOT_OBSERVED, label="not observed"))
    for v in views:
        if v.coverage:
            ax.add_patch(
                MplPolygon(
                    v.coverage, closed=True, fill=False, ec=COVERAGE_EDGE, lw=1.2, ls=":", zorder=4
                )
            )
        if v.at is not None:
            ax.plot(*v.at, marker="^", ms=9, color=COVERAGE_EDGE, mec="white", zorder=6)
            ax.annotate(
                v.camera,
                v.at,
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
                color=COVERAGE_EDGE,
                zorder=6,
            )
    if any(v.coverage for v in views):
        handles.append(Line2D([], [], color=COVERAGE_EDGE, ls=":", label="camera view"))
    if any(v.at is not None for v in views):
        handles.append(Line2D([], [], marker="^", ls="", color=COVERAGE_EDGE, label="camera"))
    for e in floor.plan.entrances:
        ax.plot(*e.at, marker="s", ms=10, color=ENTRANCE, mec="white", zorder=6)
        ax.annotate(
            e.name.upper(),
            e.at,
            xytext=(0, -12),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            fontweight="bold",
            color=ENTRANCE,
            zorder=6,
        )
    if floor.plan.entrances:
        handles.append(Line2D([], [], marker="s", ls="", color=ENTRANCE, label="entrance"))
    if floor.plan.north_deg is not None:
        _north_arrow(ax, floor.plan.north_deg)
    return handles


def _tall(poly: list[Point]) -> bool:
    xs, ys = zip(*poly, strict=True)
    return (max(ys) - min(ys)) > 2 * (max(xs) - min(xs))


def _north_arrow(ax: Axes, north_deg: float) -> None:
    """An arrow pointing north just above the plan's top-right corner (axes fraction
    coordinates): inside the walls it covered whatever stood in that corner (a staff room's
    name in the test store)."""
    rad = math.radians(-north_deg)  # up is north_deg: north lies that far anticlockwise
    dx, dy = 0.035 * math.sin(rad), 0.035 * math.cos(rad)
    cx, cy = 0.96, 1.06
    ax.annotate(
        "",
        xy=(cx + dx, cy + dy),
        xytext=(cx - dx, cy - dy),
        xycoords="axes fraction",
        arrowprops={"arrowstyle": "-|>", "color": "#222222", "lw": 1.5},
        annotation_clip=False,
        zorder=7,
    )
    ax.text(
        cx + 1.6 * dx,
        cy + 1.6 * dy,
        "N",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=9,
        fontweight="bold",
        zorder=7,
    )


def clip_to_floor(floor: FloorConfig, poly: list[Point]) -> list[Point]:
    """``poly`` cut to the walls, so a marker never runs off the plan (empty if outside)."""
    cut = Polygon(poly).intersection(outline(floor))
    if not isinstance(cut, Polygon) or cut.is_empty:
        return []
    return [(round(x, 3), round(y, 3)) for x, y in list(cut.exterior.coords)[:-1]]
