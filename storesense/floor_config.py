"""Store-YAML sections for the floor (Part 2): the floor plan, its occupancy grid, and zones.

Kept apart from ``storesense.config`` so the door settings and the journey settings can grow
without one file doing two jobs; ``StoreConfig`` embeds both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Point = tuple[float, float]
FixtureKind = Literal["shelf", "table", "till", "display", "wall", "other"]


def _area(poly: list[Point]) -> float:
    area = 0.0
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        area += x1 * y2 - x2 * y1
    return area / 2


class FixtureConfig(_Strict):
    """Something on the floor people walk around (a shelf, a table, a till), in floor metres."""

    name: str = Field("", max_length=64)
    kind: FixtureKind = "shelf"
    polygon: list[Point] = Field(min_length=3)


class EntranceConfig(_Strict):
    """A door: where footfall comes in (drawn as a marker on the plan)."""

    name: str = Field("entrance", min_length=1, max_length=64)
    at: Point = Field(description="the door's middle, floor metres")
    width_m: float = Field(1.5, gt=0, le=20)


class CameraPlacement(_Strict):
    """Where a floor camera hangs and what floor it sees. Without ``coverage`` the hub derives
    the floor it sees from the camera's calibration (its image outline mapped to the floor)."""

    camera: str = Field(min_length=1, max_length=64)
    at: Point | None = Field(None, description="the camera's position on the floor, metres")
    coverage: list[Point] | None = Field(None, min_length=3, description="floor it sees, m")
    detection_recall: float | None = Field(
        None,
        ge=0,
        le=1,
        description="measured share of people this view's detector finds (advice confidence)",
    )


class RefPoint(_Strict):
    """One plan-image pixel and the floor point (metres) it shows."""

    px: Point
    m: Point


class PlanConfig(_Strict):
    """The store's floor plan (report picture). Floor metres run x to the right and y UP (as
    on a map: y = 0 is the plan's bottom edge). An image is placed by two reference points
    (pixel and metres each), or by ``px_per_m`` with ``origin_px`` (the pixel of floor
    (0, 0); default the image's bottom-left corner). Without an image the plan is drawn from
    ``outline``, ``fixtures``, ``entrances`` and the zones, never from a camera frame."""

    image: Path | None = Field(None, description="plan PNG/JPG, relative to the store YAML")
    px_per_m: float | None = Field(None, gt=0)
    origin_px: Point | None = None
    ref_points: list[RefPoint] | None = Field(None, min_length=2, max_length=2)
    outline: list[Point] | None = Field(None, min_length=3, description="walls; default: box")
    fixtures: list[FixtureConfig] = Field(default_factory=list)
    entrances: list[EntranceConfig] = Field(default_factory=list)
    cameras: list[CameraPlacement] = Field(default_factory=list)
    north_deg: float | None = Field(
        None, ge=-360, le=360, description="compass bearing of the plan's up (+y) direction"
    )

    @model_validator(mode="after")
    def _one_scale(self) -> PlanConfig:
        if self.ref_points is not None:
            (a, b) = self.ref_points
            if self.px_per_m is not None:
                raise ValueError("give either ref_points or px_per_m, not both")
            du = (a.px[0] - b.px[0], a.px[1] - b.px[1])
            dm = (a.m[0] - b.m[0], a.m[1] - b.m[1])
            if du[0] ** 2 + du[1] ** 2 < 1 or dm[0] ** 2 + dm[1] ** 2 < 1e-4:
                raise ValueError("the two ref_points must be distinct (pixels and metres)")
        for f in self.fixtures:
            if abs(_area(f.polygon)) < 1e-6:
                raise ValueError(f"fixture {f.name!r}: polygon has no area")
        return self


class FloorConfig(_Strict):
    """The store floor in metres: x to the right, y up, the origin the plan's bottom-left."""

    width_m: float = Field(20.0, gt=0, description="floor extent along x, metres")
    height_m: float = Field(15.0, gt=0, description="floor extent along y, metres")
    cell_m: float = Field(0.5, gt=0, le=10, description="occupancy grid cell size, metres")
    sample_s: float = Field(5.0, gt=0, le=300, description="occupancy sampling period, seconds")
    publish_interval_s: float = Field(1.0, gt=0, le=60, description="edge → hub position batches")
    coast_s: float = Field(
        0.5,
        ge=0,
        le=2,
        description="floor cameras count a person missed for up to this long (s) at the "
        "tracker's predicted place, marked coasted (docs/floor-tracking.md); 0: only people "
        "detected in the frame. At most the tracker's 2 s memory of a lost track",
    )
    fill_gaps_s: float = Field(
        0.75,
        ge=0,
        le=2,
        description="floor cameras hold their frames this long (s) and, when a missed person "
        "is detected again within it, put them on the straight line between the two "
        "sightings, marked coasted (edge/floor/smoothing.py, docs/floor-tracking.md); "
        "publishes each interval this much later. 0: off",
    )
    plan_image: Path | None = Field(None, description="floor plan PNG/JPG for the heatmap")
    plan_px_per_m: float | None = Field(None, gt=0, description="plan image pixels per metre")
    plan: PlanConfig = Field(
        default_factory=lambda: PlanConfig(),
        description="the drawn plan: walls, fixtures, entrances, cameras (hub/floor/plan.py)",
    )
    # Hub-side analytics (hub/floor/occupancy.py, hub/floor/zones.py);
    # docs/floor-analytics.md explains each.
    fusion_radius_m: float = Field(
        0.8, ge=0, le=5, description="points of two cameras closer than this are one person"
    )
    late_s: float = Field(
        600.0, ge=0, le=86400, description="how late a camera's data may still be fused"
    )
    track_gap_s: float = Field(
        5.0, gt=0, le=600, description="a track unseen this long (camera time) has ended"
    )
    dwell_enter_s: float = Field(
        2.0, ge=0, le=600, description="inside a zone this long before it counts as a visit"
    )
    dwell_exit_s: float = Field(
        3.0, ge=0, le=600, description="outside a zone this long before the visit ends"
    )
    zone_margin_m: float = Field(
        0.3, ge=0, le=5, description="a visitor leaves only past this buffer around the zone"
    )
    staff_mark_s: float = Field(
        20.0, gt=0, description="a track this long in a staff zone is staff: excluded"
    )
    min_conf: float = Field(0.0, ge=0, le=1, description="positions below this are ignored")
    snapshot_s: float = Field(
        5.0, ge=0, le=3600, description="save open tracks for crash recovery at most this often"
    )
    # The manager's report (hub/floor/analysis.py; docs/floor-analytics.md "Advice").
    min_observed_s: float = Field(
        7200.0,
        ge=0,
        description="below this much camera time in a report's period the advice is provisional",
    )
    report_keep_days: int = Field(
        400,
        ge=7,
        le=3660,
        description="report folders (HOME/reports: days, weeks, months) whose period ended this "
        "many days ago are deleted by the nightly `storesense report` (a year and a month by "
        "default, for last year's same month)",
    )
    raw_keep_days: int = Field(
        90,
        ge=40,
        le=3660,
        description="zone visits and camera-run rows (floor_visits, floor_runs) of days this "
        "many days ago are deleted by the nightly `storesense report`; the daily heatmap and "
        "camera time stay. At least 40: the nightly month report and its week-earlier "
        "comparison read visits back 38 days",
    )


ZoneKind = Literal["shop", "entrance", "till", "fitting", "staff"]


class ZoneConfig(_Strict):
    """A named floor region (polygon in floor metres); product categories map sales onto it."""

    name: str = Field(min_length=1, max_length=64)
    kind: ZoneKind = "shop"
    polygon: list[tuple[float, float]] = Field(min_length=3)
    categories: list[str] = Field(default_factory=list)

    @field_validator("polygon")
    @classmethod
    def _has_area(cls, poly: list[tuple[float, float]]) -> list[tuple[float, float]]:
        area = 0.0
        for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
            area += x1 * y2 - x2 * y1
        if abs(area) < 1e-6:
            raise ValueError("polygon has no area (points repeated or in a line)")
        return poly


def check_zones(floor: FloorConfig, zones: list[ZoneConfig]) -> list[str]:
    """Problems a report would hide: duplicate names, a category mapped to two zones, and
    zones lying off the floor. Returned as messages (``StoreConfig`` raises on them)."""
    problems: list[str] = []
    names = [z.name for z in zones]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"zone name {name!r} appears twice")
    owner: dict[str, str] = {}
    for z in zones:
        for cat in z.categories:
            if cat in owner and owner[cat] != z.name:
                problems.append(f"category {cat!r} maps to both {owner[cat]!r} and {z.name!r}")
            owner.setdefault(cat, z.name)
        for x, y in z.polygon:
            if not (0 <= x <= floor.width_m and 0 <= y <= floor.height_m):
                problems.append(
                    f"zone {z.name!r} point ({x}, {y}) is off the floor "
                    f"({floor.width_m} x {floor.height_m} m)"
                )
                break
    return problems
