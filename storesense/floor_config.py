"""Store-YAML sections for the floor (Part 2): the floor plan, its occupancy grid, and zones.

Kept apart from ``storesense.config`` so the door settings and the journey settings can grow
without one file doing two jobs; ``StoreConfig`` embeds both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloorConfig(_Strict):
    """The store floor in metres; the origin is the floor plan's top-left corner."""

    width_m: float = Field(20.0, gt=0, description="floor extent along x, metres")
    height_m: float = Field(15.0, gt=0, description="floor extent along y, metres")
    cell_m: float = Field(0.5, gt=0, le=10, description="occupancy grid cell size, metres")
    sample_s: float = Field(5.0, gt=0, le=300, description="occupancy sampling period, seconds")
    publish_interval_s: float = Field(1.0, gt=0, le=60, description="edge → hub position batches")
    plan_image: Path | None = Field(None, description="floor plan PNG/JPG for the heatmap")
    plan_px_per_m: float | None = Field(None, gt=0, description="plan image pixels per metre")


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
