"""The ``role: floor`` camera: frames → people → tracks → floor metres → one message per interval.

Frames → person detector → ByteTrack → foot points on the floor (homography) → one
``FloorPositions`` per ``floor.publish_interval_s`` (``edge.floor.pipeline``). No motion gate:
a shopper standing still is exactly the dwell we must count. Frames are held
``floor.fill_gaps_s`` before batching, so a person missed for a moment and then seen again is
published on the line between the two sightings (``edge.floor.smoothing``).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from edge.floor.geometry import CalibrationError, load_calibration
from edge.floor.person_detect import make_person_detector
from edge.floor.pipeline import (
    DETECTOR_OPTIONS,
    FloorBatcher,
    FloorFrame,
    FloorPipeline,
    tracker_for,
)
from edge.floor.smoothing import FixedLagSmoother
from edge.floor.tile_plan import TilePlanError
from edge.role import Outgoing, wall_time
from storesense import messages as m
from storesense.config import CameraConfig, ConfigError, StoreConfig

log = logging.getLogger(__name__)


class FloorRole:
    """Implements ``edge.role.Role``: pipeline + batcher built from the store config.

    Refuses to start without a calibration: positions in pixels are useless to the hub.
    """

    def __init__(self, cfg: StoreConfig, camera: CameraConfig, topic: str) -> None:
        if camera.calibration is None:
            raise ConfigError(
                f"camera {camera.id!r}: role floor needs `calibration:` (a homography YAML "
                "from `storesense calibrate --points FILE.csv --out FILE.yaml`)"
            )
        try:
            homography = load_calibration(camera.calibration)
        except CalibrationError as exc:
            raise ConfigError(f"camera {camera.id!r}: {exc}") from None
        detector = make_person_detector(
            camera.person_detector, **DETECTOR_OPTIONS[camera.person_detector]
        )
        self.topic = topic
        try:  # a tiling detector plans its tiles from the calibration here
            self.pipeline = FloorPipeline(
                detector,
                homography,
                tracker=tracker_for(camera.person_detector),
                coast_s=cfg.floor.coast_s,
            )
        except TilePlanError as exc:  # the same clear start-up error as a bad calibration file
            raise ConfigError(f"camera {camera.id!r}: {camera.calibration}: {exc}") from None
        fill = cfg.floor.fill_gaps_s
        self.smoother = FixedLagSmoother(fill, max_gap_s=fill, drop_unresolved=False)
        self.batcher = FloorBatcher(camera.id, cfg.floor.publish_interval_s)
        self.counters: Counter[str] = Counter()  # positions_sent: people-samples published

    def process(self, image_bgr: np.ndarray, t_capture: float) -> list[Outgoing]:
        """One frame in; the messages due (0 or 1, rarely more) out."""
        try:
            frame = self.pipeline.process(image_bgr, t_capture)
        except (CalibrationError, TilePlanError) as exc:  # the resolution no longer fits it
            self.pipeline.rejections["calibration_mismatch"] += 1
            if self.pipeline.rejections["calibration_mismatch"] == 1:  # once, not every frame
                log.error("floor camera: %s (frames are skipped until it is fixed)", exc)
            return []
        return self._batched(self.smoother.push(frame, wall_time(t_capture)))

    def flush(self, t_capture: float, *, everything: bool = False) -> list[Outgoing]:
        """Intervals close on the next frame's time, so only shutdown has anything to flush:
        the held frames and the last, partial interval."""
        if not everything:
            return []
        return self._batched(self.smoother.flush()) + self._counted(self.batcher.flush())

    def _batched(self, frames: list[tuple[FloorFrame, float]]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for frame, t_wall in frames:
            out += self._counted(self.batcher.add(frame, t_wall))
        self.counters["positions_filled"] = self.smoother.filled
        return out

    def rejections(self) -> dict[str, int]:
        return self.pipeline.rejection_counts()

    def _counted(self, out: list[m.FloorPositions]) -> list[Outgoing]:
        self.counters["positions_sent"] += sum(len(s.people) for msg in out for s in msg.samples)
        return list(out)
