"""The floor camera's analysis: frame → people boxes → tracks → floor metres → one message/s.

Stages are small and joined by value objects (supervision style): the detector returns
``Detections``, the tracker ``TrackedPerson``s, this module a :class:`FloorFrame` with each
person's foot point on the floor, and :class:`FloorBatcher` turns frames into
``messages.FloorPositions`` — positions and track ids only, never an image.

``edge.floor.role.FloorRole`` joins them for a camera with ``role: floor``; the offline
commands (``storesense track`` / ``occupancy``, bench/mot_eval.py) run :class:`FloorPipeline`
over video files through ``storesense_tools.floor_offline``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.floor.geometry import Homography, foot_points
from edge.floor.person_detect import (
    Detections,
    EnsemblePersonDetector,
    PersonDetector,
    TiledPersonDetector,
    check_frame,
)
from edge.floor.person_tracker import PersonTracker, TrackedPerson, TrackerConfig
from storesense import messages as m

log = logging.getLogger(__name__)

# The detector's own score threshold is for reporting people; here it would cut away
# ByteTrack's low-score band, the weak boxes of half-hidden people that keep their ids alive,
# so the floor role asks for everything above 0.1 and the tracker decides what counts. Tiles
# and NMS stay the detector's defaults (bench/person_detect.py picked them). SSDLite's tracked
# boxes are narrowed less than its per-frame reports (0.85 of the network's width, not 0.75):
# chosen on PETS09 together with TrackerConfig.high_score 0.25 and better on held-out
# TUD-Campus (P 0.935 -> 0.966, R 0.682 -> 0.710, MOTA 0.624 -> 0.674; bench/
# floor_track_search.py, docs/floor-tracking.md). The Kalman box is then wide enough to keep
# its overlap with a walker whose arms swing out of a tight box.
DETECTOR_OPTIONS: dict[str, dict[str, Any]] = {
    "ssdlite": {"score_threshold": 0.1, "box_scale": (0.85, 1.0)},
    "nanodet": {"score_threshold": 0.1},
    # SSDLite as above on its tiles, plus NanoDet on the full frame every 3rd frame (58 ms
    # CPU/frame with tile skipping, inside the 66 ms of 15 fps per core), NanoDet boxes >= 0.45
    # with scores x 0.65 and width x 0.9, weighted box fusion at IoU 0.5; the tracker keeps
    # SSDLite's bands. Chosen on TUD-Campus, held out on PETS09 (R 0.775 -> 0.813, P 0.852 ->
    # 0.856, count error 0.503 -> 0.480); PETS09's own choice, held out on TUD-Campus, counted
    # worse, so selectable, not the default (bench/floor_ensemble.py, docs/floor-detection.md).
    "ensemble": {
        "score_threshold": 0.1,
        "box_scale": (0.85, 1.0),
        "nanodet_threshold": 0.45,
        "nanodet_weight": 0.65,
        "nanodet_box_scale": (0.9, 1.0),
        "nanodet_every": 3,
        "fuse_iou": 0.5,
        "fuse": "wbf",
    },
    "hog": {},
}
# The tracker's score bands follow the detector's scores. SSDLite's are low (TrackerConfig's
# defaults were swept on them); NanoDet's quality-focal scores sit where YOLOX's do, so it gets
# the ByteTrack paper's 0.5 / 0.1 / 0.6 (not swept: docs/floor-detection.md).
DETECTOR_TRACKERS: dict[str, TrackerConfig] = {
    "nanodet": TrackerConfig(high_score=0.5, low_score=0.1, new_track_score=0.6),
}


def tracker_for(detector_name: str) -> TrackerConfig:
    """The tracker settings for the detector a camera runs."""
    return DETECTOR_TRACKERS.get(detector_name, TrackerConfig())


# Floor positions include a confirmed track unseen for up to this long (from its last
# detection), at its predicted place, while its foot is in view: a walker missed for a few
# frames is still there. Re-chosen for issue 14 together with gap filling (edge.floor.smoothing,
# which puts a person seen again on the line between the sightings, up to 0.75 s): TUD-Campus
# chose 0.5 s with 0.75 s filling, held out on PETS09 count error 0.506 -> 0.496 and recall
# 0.781 -> 0.819 (PETS09's own choice counted worse on TUD-Campus; bench/floor_smoothing.py,
# docs/floor-tracking.md). The camera's value is ``floor.coast_s``.
FLOOR_COAST_S = 0.5
MAX_PEOPLE = 200  # per frame, the FloorSample schema limit


@dataclass(frozen=True)
class FloorFrame:
    """One analysed frame: tracked people, their foot points (px) and floor positions (m).

    ``floor_xy`` is NaN for a person whose foot point is at or beyond the horizon, and all NaN
    when the pipeline has no calibration (tracking only, e.g. ``storesense track``).
    """

    t: float
    frame_size: tuple[int, int]
    people: list[TrackedPerson]
    foot_px: np.ndarray  # (N,2)
    floor_xy: np.ndarray  # (N,2)


class TileScheduler:
    """Which of the detector's tiles to run on the next frame (issue 14: tile only where new
    people can appear or where tracks need it).

    The full frame (window 0) always runs. A tile runs when

    * it is its turn: every tile at least once every ``refresh_frames`` frames, staggered so
      the load is even; that is how a person who appears in an idle tile is found (within
      ``refresh_frames - 1`` frames; a track needs two hits to be confirmed anyway);
    * a box from the last frame, or a lost track's predicted box, that is too small for the
      full frame to find reliably (``small_px``: below the plan's network-pixel target)
      overlaps it: far people found by this tile keep being fed to their tracks, a new far
      track gets its confirming hit, and a lost far track is looked for where it should be.
      (People big enough for the full frame are left to it: a tile would only cut them up.)

    Everything else is skipped: tiles over empty floor and tiles whose people are big enough
    for the full frame. Boxes are grown by ``grow`` of their size before the overlap test, so a
    walker crossing into a neighbour tile wakes it up one frame early.
    """

    def __init__(self, refresh_frames: int = 3, grow: float = 0.25) -> None:
        if refresh_frames < 1:
            raise ValueError(f"refresh_frames must be >= 1, got {refresh_frames}")
        self.refresh_frames = int(refresh_frames)
        self.grow = float(grow)
        self._frame = 0
        self._wanted: set[int] = set()
        self.ran = 0  # tiles run / could have run, for the benches
        self.possible = 0

    def select(self, n_windows: int) -> set[int]:
        """Window indices to run on this frame (0, the full frame, always)."""
        out = {0} | {i for i in self._wanted if i < n_windows}
        out |= {i for i in range(1, n_windows) if (self._frame + i) % self.refresh_frames == 0}
        self._frame += 1
        self.ran += len(out) - 1
        self.possible += n_windows - 1
        return out

    def observe(
        self,
        windows: list[tuple[int, int, int, int]],
        boxes: np.ndarray,
        lost: np.ndarray,
        small_px: float,
    ) -> None:
        """Boxes seen this frame and lost tracks' predicted boxes -> tiles wanted next."""
        interest = np.vstack(
            [
                np.asarray(boxes, np.float64).reshape(-1, 4),
                np.asarray(lost, np.float64).reshape(-1, 4),
            ]
        )
        interest = interest[(interest[:, 3] - interest[:, 1]) < small_px]
        if len(interest):
            size = interest[:, 2:] - interest[:, :2]
            interest = np.hstack(
                [interest[:, :2] - self.grow * size, interest[:, 2:] + self.grow * size]
            )
        self._wanted = set()
        for i, (x1, y1, x2, y2) in enumerate(windows[1:], start=1):
            if (
                len(interest)
                and (
                    (interest[:, 0] < x2)
                    & (interest[:, 2] > x1)
                    & (interest[:, 1] < y2)
                    & (interest[:, 3] > y1)
                ).any()
            ):
                self._wanted.add(i)

    @property
    def share_run(self) -> float:
        """Share of the tiles that ran (1.0 = no skipping)."""
        return self.ran / self.possible if self.possible else 1.0


class FloorPipeline:
    """Detector + tracker + homography for one camera; :meth:`process` once per frame.

    ``coast_s``: also report tracks lost for at most this long, at their predicted boxes (0 for
    MOTChallenge output, where only seen people count).

    With a calibration, a tiling detector (SSDLite) gets it too, so its tiles follow the
    camera's geometry (``edge.floor.tile_plan``); a calibration that cannot give person sizes
    raises ``TilePlanError`` here. ``skip_tiles``: run only the tiles that :class:`TileScheduler`
    asks for (False: every tile, every frame).
    """

    def __init__(
        self,
        detector: PersonDetector,
        homography: Homography | None = None,
        tracker: TrackerConfig | None = None,
        coast_s: float = FLOOR_COAST_S,
        skip_tiles: bool = True,
        tile_refresh_frames: int = 3,
    ) -> None:
        self.detector = detector
        self.homography = homography
        self.coast_s = coast_s
        self.tracker = PersonTracker(tracker)
        self.rejections: Counter[str] = Counter()
        # the ensemble tiles as its SSDLite does (NanoDet runs on the full frame)
        self._tiling: TiledPersonDetector | EnsemblePersonDetector | None = (
            detector if isinstance(detector, TiledPersonDetector | EnsemblePersonDetector) else None
        )
        if self._tiling is not None and homography is not None:
            self._tiling.use_calibration(homography)
        self.scheduler = TileScheduler(tile_refresh_frames) if skip_tiles else None

    def process(self, frame_bgr: np.ndarray, t: float) -> FloorFrame:
        """Analyse one frame taken at ``t`` (seconds on a clock that never goes back).

        A frame that is not an HxWx3 uint8 image is counted (``bad_frame``) and yields an
        empty result instead of stopping the camera.
        """
        try:
            frame = check_frame(frame_bgr)
        except ValueError as exc:
            self.rejections["bad_frame"] += 1
            log.warning("floor pipeline: frame rejected: %s", exc)
            empty = np.empty((0, 2))
            return FloorFrame(t=t, frame_size=(0, 0), people=[], foot_px=empty, floor_xy=empty)
        size = (int(frame.shape[1]), int(frame.shape[0]))
        dets = self._detect(frame, size)
        # coasted only while their predicted foot is in view (edge.floor.person_tracker)
        people = self.tracker.update(t, dets) + self.tracker.coasting(self.coast_s, size)
        if self.scheduler is not None and self._tiling is not None:
            lost = self.tracker.coasting(self.tracker.cfg.max_lost_s, size, min_hits=0)
            self.scheduler.observe(
                self._tiling.windows(*size),
                dets.boxes,
                np.array([p.box for p in lost]).reshape(-1, 4),
                self._tiling.full_frame_min_px(*size),
            )
        boxes = np.array([p.box for p in people]).reshape(-1, 4)
        feet = foot_points(boxes, size)
        if self.homography is None:
            floor = np.full_like(feet, np.nan)
        else:
            floor = self.homography.to_floor(feet, size)
            beyond = int(np.isnan(floor).any(axis=1).sum())
            if beyond:
                self.rejections["beyond_horizon"] += beyond
        return FloorFrame(t=t, frame_size=size, people=people, foot_px=feet, floor_xy=floor)

    def _detect(self, frame: np.ndarray, size: tuple[int, int]) -> Detections:
        if self.scheduler is None or self._tiling is None:
            return self.detector.detect(frame)
        only = self.scheduler.select(len(self._tiling.windows(*size)))
        return self._tiling.detect(frame, only=only)

    def rejection_counts(self) -> dict[str, int]:
        """Pipeline and tracker rejections together, for the camera's status heartbeat."""
        return {k: int(v) for k, v in (self.rejections + self.tracker.rejections).items()}


class FloorBatcher:
    """Collect per-frame floor positions into one ``FloorPositions`` per ``interval_s``.

    Intervals are aligned to multiples of ``interval_s`` on the wall clock, so the hub can line
    up several cameras without guessing. An interval with frames but nobody in them still
    produces a message (empty ``people``): "nobody there" is data, "camera silent" is not.
    ``seq`` counts messages of this run; a gap on the hub means lost messages.
    """

    def __init__(self, camera_id: str, interval_s: float = 1.0) -> None:
        if not 0 < interval_s <= 60:
            raise ValueError("interval_s must be in (0, 60]")
        self.camera_id = camera_id
        self.interval_s = interval_s
        self.run_id = m.new_msg_id()
        self._seq = 0
        self._start: float | None = None
        self._samples: list[m.FloorSample] = []
        self._heights = [0] * len(m.FLOOR_HEIGHT_BANDS_PX)  # counted person-frames per band
        self.truncated = 0  # people beyond MAX_PEOPLE in one frame (schema limit), dropped

    def add(self, frame: FloorFrame, t_wall: float) -> list[m.FloorPositions]:
        """Add one frame (``t_wall`` epoch s); returns the messages of intervals now complete."""
        start = math.floor(t_wall / self.interval_s) * self.interval_s
        out: list[m.FloorPositions] = []
        if self._start is not None and start != self._start:
            out = self.flush()
        if self._start is None:
            self._start = start
        if len(frame.people) > MAX_PEOPLE:
            self.truncated += len(frame.people) - MAX_PEOPLE
            log.warning(
                "floor batcher: %d people in one frame, kept %d", len(frame.people), MAX_PEOPLE
            )
        people = [
            m.FloorPosition(
                track_id=p.track_id,
                x=round(float(xy[0]), 3),
                y=round(float(xy[1]), 3),
                conf=round(min(max(p.score, 0.0), 1.0), 3),
                coasted_s=round(min(p.coasted_s, 60.0), 3),
            )
            for p, xy in zip(frame.people, frame.floor_xy, strict=True)
            if np.isfinite(xy).all()
        ][:MAX_PEOPLE]
        for p, xy in zip(frame.people, frame.floor_xy, strict=True):  # the self-check:
            if np.isfinite(xy).all():  # how tall the people it counts appear
                self._heights[m.height_band(float(p.box[3] - p.box[1]))] += 1
        self._samples.append(m.FloorSample(t=round(t_wall, 3), people=people))
        return out

    def flush(self) -> list[m.FloorPositions]:
        """The pending interval as messages (usually one; split if it would exceed 64 KiB)."""
        if self._start is None or not self._samples:
            self._start, self._samples = None, []
            self._heights = [0] * len(m.FLOOR_HEIGHT_BANDS_PX)
            return []
        out = self._pack(self._start, self._start + self.interval_s, self._samples)
        out[0] = out[0].model_copy(update={"height_counts": self._heights})  # once per interval
        self._start, self._samples = None, []
        self._heights = [0] * len(m.FLOOR_HEIGHT_BANDS_PX)
        return out

    def _pack(
        self, start: float, end: float, samples: list[m.FloorSample]
    ) -> list[m.FloorPositions]:
        msg = m.FloorPositions(
            camera_id=self.camera_id,
            run_id=self.run_id,
            seq=self._seq,
            interval_start=start,
            interval_s=round(end - start, 6),
            samples=samples,
        )
        if (len(msg.to_bytes()) <= m.MAX_PAYLOAD_BYTES - 1024 and len(samples) <= 600) or len(
            samples
        ) < 2:
            self._seq += 1
            return [msg]
        # Too big (a crowd at a high frame rate): split at a sample time; the two halves tile
        # the interval exactly, so person-seconds on the hub add up the same.
        mid = len(samples) // 2
        cut = samples[mid].t
        if not start < cut < end:
            cut = start + (end - start) / 2
        return self._pack(start, cut, samples[:mid]) + self._pack(cut, end, samples[mid:])
