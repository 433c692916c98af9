"""Multi-person tracker for floor cameras: ByteTrack association with a constant-velocity Kalman.

Why tracking at all: occupancy and dwell must count *people*, not boxes. One shopper missed
for three frames behind a shelf, or detected twice, must stay one person with one id.

Why written here rather than taken from a library (evaluated for this issue, pins as of now):

* ``supervision`` 0.31.2 no longer ships a tracker (it no longer requires OpenCV either: it
  vendors a small ``_cv2`` layer), and its ByteTrack now lives in ``trackers`` 2.6.1, which
  requires ``numpy>=2.0.2`` and ``opencv-python>=4.8`` (the GUI build, installed next to our
  ``opencv-python-headless``, both owning ``cv2``); that clashes with our numpy 1.26
  (tflite-runtime) and headless 4.11 (which keeps the HOG people detector). Checked with
  ``pip download --no-deps`` of both, reading their METADATA;
* ``norfair`` 2.3 requires ``rich<15`` (we pin 15) and pulls matplotlib + filterpy onto the
  edge device, and has no low-score second association;
* ``motpy`` 0.0.10 is unmaintained since 2021 and pulls matplotlib.

ByteTrack (Zhang et al., ECCV 2022) is ~150 lines on top of ``scipy.optimize.
linear_sum_assignment``, which we already ship. The algorithm, per frame:

1. predict every track with the Kalman filter (state cx, cy, aspect, height and their rates;
   time steps are real seconds, so a camera that drops frames under load stays consistent);
2. match *high*-score detections to confirmed and recently lost tracks by IoU (Hungarian);
3. match the *low*-score detections to the tracks still unmatched — a person half-hidden by a
   shelf gives a weak box, which is exactly the one that keeps their id alive;
4. match the remaining high-score detections to tentative tracks (seen once); unmatched
   tentative tracks die, so a one-frame false positive never becomes a person;
5. start tentative tracks from unmatched detections above ``new_track_score``; tracks lost
   longer than ``max_lost_s`` are dropped.

A track gets its public id when it is confirmed (second match), so ids count people: 1, 2, 3…
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.boxes import coverage_matrix, grow, iou_matrix
from edge.floor.person_detect import Detections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack settings. The paper's score thresholds (0.5 / 0.1 / 0.6) are for YOLOX scores;
    these suit the SSDLite person detector's lower scores (swept on PETS09-S2L1 and TUD-Campus
    with bench/mot_eval.py; ``high_score`` re-chosen for issue 14 on PETS09 and checked on
    held-out TUD-Campus with bench/floor_track_search.py, see docs/floor-tracking.md)."""

    high_score: float = 0.25  # detections at or above: first association
    low_score: float = 0.1  # between low and high: second association only
    new_track_score: float = 0.45  # an unmatched detection must be this sure to start a track
    match_iou: float = 0.2  # first association: minimum IoU with the predicted box
    low_match_iou: float = 0.5  # second association (weak boxes): stricter
    tentative_iou: float = 0.3  # tentative tracks: confirm on this overlap
    # A tentative track gets its id on this many consecutive matches (its birth included); one
    # unmatched frame kills it. 2 is ByteTrack's rule; more lets ``new_track_score`` go lower
    # with the same false tracks (bench/floor_track_search.py, docs/floor-tracking.md).
    confirm_hits: int = 2
    max_lost_s: float = 2.0  # keep a lost track this long for re-association
    buffer: float = 0.2  # C-BIoU: grow boxes by this share of w,h on each side before IoU
    lost_buffer_per_s: float = 1.0  # …and a lost track's by this much more per second lost
    duplicate_overlap: float = 0.6  # no new track from a box this much inside a matched one
    ref_fps: float = 10.0  # the Kalman noise below is per frame at this rate
    # Coasting (:meth:`PersonTracker.coasting`) only for a track matched this often: a false
    # positive confirmed on two flickers must not be counted for another second. 4 gave the
    # lowest count error and fewer false counts than 2 on both MOT clips with both detector
    # tilings measured (bench/floor_count_eval.py, docs/floor-tracking.md).
    coast_min_hits: int = 4


@dataclass(frozen=True)
class TrackedPerson:
    """A confirmed track. ``box`` is the Kalman-filtered x1,y1,x2,y2.

    ``coasted_s`` is 0 for a person matched in this frame; for a track being coasted through
    a miss (:meth:`PersonTracker.coasting`) it is the time since its last detection, so
    whoever counts the person knows the position is a prediction.
    """

    track_id: int
    box: np.ndarray
    score: float
    coasted_s: float = 0.0


class _Kalman:
    """Constant-velocity Kalman filter on (cx, cy, a, h) as in ByteTrack/DeepSORT.

    Noise scales with box height: a far (small) person moves fewer pixels than a near one.
    """

    POS, VEL = 1.0 / 20, 1.0 / 160

    def __init__(self, z: np.ndarray, ref_dt: float) -> None:
        self.ref_dt = ref_dt
        h = z[3]
        self.x = np.r_[z, np.zeros(4)]
        p, v = 2 * self.POS * h, 10 * self.VEL * h / ref_dt
        std = np.array([p, p, 1e-2, p, v, v, 1e-5 / ref_dt, v])
        self.P = np.diag(std**2)

    def predict(self, dt: float) -> None:
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        h = self.x[3]
        k = max(dt / self.ref_dt, 1e-3)  # variance grows with elapsed time, per reference frame
        q_pos = [self.POS * h, self.POS * h, 1e-2, self.POS * h]
        q_vel = [self.VEL * h / self.ref_dt] * 2 + [1e-5 / self.ref_dt, self.VEL * h / self.ref_dt]
        q = np.diag(np.square(q_pos + q_vel)) * k
        self.x = f @ self.x
        self.x[3] = max(self.x[3], 1.0)
        self.P = f @ self.P @ f.T + q

    def update(self, z: np.ndarray) -> None:
        h = self.x[3]
        r = np.diag(np.square([self.POS * h, self.POS * h, 1e-1, self.POS * h]))
        s = self.P[:4, :4] + r
        gain = np.linalg.solve(s, self.P[:4, :]).T  # P Hᵀ S⁻¹ with H = [I 0]
        self.x = self.x + gain @ (z - self.x[:4])
        self.P = self.P - gain @ self.P[:4, :]

    def box(self) -> np.ndarray:
        cx, cy, a, h = self.x[:4]
        w = a * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _foot_inside(box: np.ndarray, frame_size: tuple[int, int]) -> bool:
    """Is the bottom centre of ``box`` inside the frame?

    2 px of slack at the bottom: a person cut by the bottom edge has a box ending exactly
    there, and is still in view. (Box centre or foot x alone gave the same counts on both
    MOT clips: a track lost at the edge drifts out quickly.)
    """
    w, h = frame_size
    fx, fy = (box[0] + box[2]) / 2, box[3]
    return bool(0 <= fx <= w and 0 <= fy <= h + 2)


def _to_cxcyah(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    h = max(y2 - y1, 1e-3)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / h, h])


@dataclass
class _Track:
    kf: _Kalman
    score: float
    last_t: float
    hits: int = 1
    track_id: int = 0  # 0 until confirmed
    lost_since: float | None = None
    box: np.ndarray = field(default_factory=lambda: np.zeros(4))


def _associate(
    tracks: list[_Track], boxes: np.ndarray, min_iou: float, buffers: np.ndarray | float = 0.0
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on 1 - buffered IoU; pairs under ``min_iou`` are not matches.

    Why buffered (C-BIoU, Yang et al. 2023): people far from the camera have boxes ~20 px wide
    that move half their width between frames at 7 fps, and a prediction that is a few pixels
    off gives IoU 0 with the right box. Growing both boxes keeps the overlap while the
    Hungarian step still prefers the nearest pairing.
    """
    if not tracks or len(boxes) == 0:
        return [], list(range(len(tracks))), list(range(len(boxes)))
    pred = np.stack([t.kf.box() for t in tracks])
    b = np.broadcast_to(np.asarray(buffers, dtype=np.float64), (len(tracks),))
    iou = np.vstack(
        [iou_matrix(grow(pred[i : i + 1], b[i]), grow(boxes, b[i])) for i in range(len(pred))]
    )
    rows, cols = linear_sum_assignment(1.0 - iou)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]
    matched_t = {r for r, _ in pairs}
    matched_d = {c for _, c in pairs}
    return (
        pairs,
        [i for i in range(len(tracks)) if i not in matched_t],
        [j for j in range(len(boxes)) if j not in matched_d],
    )


class PersonTracker:
    """ByteTrack over person boxes; :meth:`update` once per analysed frame, in time order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.cfg = config or TrackerConfig()
        if self.cfg.confirm_hits < 1:
            raise ValueError(f"confirm_hits must be >= 1, got {self.cfg.confirm_hits}")
        self._active: list[_Track] = []  # confirmed, matched recently
        self._tentative: list[_Track] = []
        self._lost: list[_Track] = []
        self._next_id = 1
        self._last_t: float | None = None
        self.rejections: Counter[str] = Counter()

    @property
    def confirmed_count(self) -> int:
        """People currently followed (matched or briefly lost)."""
        return len(self._active) + len(self._lost)

    def active(self) -> bool:
        """True while any track is alive, tentative ones included (``edge.role.Tracker``)."""
        return bool(self._active or self._lost or self._tentative)

    def _clean(self, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop boxes a detector should never produce (NaN, inverted); count them."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        ok = (
            np.isfinite(boxes).all(axis=1)
            & np.isfinite(scores)
            & (boxes[:, 2] > boxes[:, 0])
            & (boxes[:, 3] > boxes[:, 1])
        )
        if not ok.all():
            self.rejections["bad_box"] += int((~ok).sum())
            log.warning("tracker: dropped %d malformed boxes", int((~ok).sum()))
        return boxes[ok], scores[ok]

    def update(self, t: float, detections: Detections, /) -> list[TrackedPerson]:
        """Feed one frame's detections (x1,y1,x2,y2 px; scores) at time ``t`` seconds.

        Returns the confirmed tracks matched in this frame. Lost ones are not in it (a person we
        cannot see keeps their id if they reappear soon); :meth:`coasting` lists them. Time
        first, as in ``FaceTracker.update``: both are ``edge.role.Tracker``s.
        """
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"frame time went backwards ({t} < {self._last_t})")
        boxes, scores = self._clean(detections.boxes, detections.scores)
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        cfg = self.cfg
        for tr in self._active + self._tentative + self._lost:
            if dt > 0:
                tr.kf.predict(dt)

        high = scores >= cfg.high_score
        low = (scores >= cfg.low_score) & ~high
        hi_idx, lo_idx = np.flatnonzero(high), np.flatnonzero(low)

        pool = self._active + self._lost
        buffers = np.array(
            [
                cfg.buffer
                + cfg.lost_buffer_per_s * (0.0 if tr.lost_since is None else t - tr.lost_since)
                for tr in pool
            ]
        )
        pairs, un_t, un_d = _associate(pool, boxes[hi_idx], cfg.match_iou, buffers)
        for ti, di in pairs:
            self._hit(pool[ti], boxes[hi_idx[di]], scores[hi_idx[di]], t)
        # second chance for tracks that were being followed (not already lost) with weak boxes
        remaining = [pool[i] for i in un_t if pool[i].lost_since is None]
        pairs2, un_t2, _ = _associate(remaining, boxes[lo_idx], cfg.low_match_iou)
        for ti, di in pairs2:
            self._hit(remaining[ti], boxes[lo_idx[di]], scores[lo_idx[di]], t)
        for i in un_t2:
            if remaining[i].lost_since is None:
                remaining[i].lost_since = t

        left = hi_idx[un_d]
        pairs3, _, un_d3 = _associate(self._tentative, boxes[left], cfg.tentative_iou)
        for ti, di in pairs3:
            self._hit(self._tentative[ti], boxes[left[di]], scores[left[di]], t)

        births = left[un_d3]
        births = births[scores[births] >= cfg.new_track_score]
        births = self._not_duplicates(boxes, births, t)
        new = [
            _Track(
                kf=_Kalman(_to_cxcyah(boxes[j]), 1.0 / cfg.ref_fps),
                score=float(scores[j]),
                last_t=t,
                box=boxes[j].copy(),
            )
            for j in births
        ]
        everyone = self._active + self._lost + self._tentative
        self._active = [tr for tr in everyone if tr.track_id and tr.lost_since is None]
        self._lost = [
            tr
            for tr in everyone
            if tr.track_id and tr.lost_since is not None and t - tr.lost_since <= cfg.max_lost_s
        ]
        # a tentative track not matched in the frame after its birth was a false positive
        self._tentative = [tr for tr in everyone if not tr.track_id and tr.last_t == t] + new
        return [
            TrackedPerson(track_id=tr.track_id, box=tr.kf.box(), score=tr.score)
            for tr in self._active
            if tr.last_t == t
        ]

    def coasting(
        self,
        max_s: float,
        frame_size: tuple[int, int] | None = None,
        *,
        min_hits: int | None = None,
    ) -> list[TrackedPerson]:
        """Confirmed tracks unseen for at most ``max_s`` s, at their Kalman-predicted boxes.

        For occupancy: a shopper hidden behind a display for half a second is still in the
        shop, so counting people rather than boxes means counting them through short misses.
        Only confirmed tracks matched ``coast_min_hits`` times coast (a tentative or barely
        confirmed one may be a false positive), and with
        ``frame_size`` (w, h) only while the predicted foot point is inside the frame: someone
        who walked out of view has left, not hidden (on TUD-Campus this halves the false
        counts coasting adds, docs/floor-tracking.md). ``max_s`` is counted from the last
        detection. ``min_hits`` overrides ``coast_min_hits`` (the tile scheduler wants every
        lost track in view, not only those it would count). Call right after
        :meth:`update`; ``score`` is the last detection's and ``coasted_s`` the time since it.
        """
        t = self._last_t
        if t is None or max_s <= 0:
            return []
        need = self.cfg.coast_min_hits if min_hits is None else min_hits
        out = []
        for tr in self._lost:
            unseen = t - tr.last_t
            if tr.lost_since is None or unseen > max_s or tr.hits < need:
                continue
            box = tr.kf.box()
            if frame_size is not None and not _foot_inside(box, frame_size):
                continue
            out.append(
                TrackedPerson(
                    track_id=tr.track_id, box=box, score=tr.score, coasted_s=float(unseen)
                )
            )
        return out

    def _not_duplicates(self, boxes: np.ndarray, idx: np.ndarray, t: float) -> np.ndarray:
        """Drop would-be new tracks lying mostly inside a box matched in this frame.

        Why: a detector sometimes returns a person twice (e.g. one box per overlapping tile,
        offset too much for NMS). A second track born on the duplicate then competes with the
        real one for the same person and steals its id a few frames later — the commonest
        identity switch on PETS09 before this check.
        """
        taken = [tr.box for tr in self._active + self._tentative if tr.last_t == t]
        if not len(idx) or not taken:
            return idx
        cover = coverage_matrix(boxes[idx], np.stack(taken))
        inside = cover.max(axis=1) >= self.cfg.duplicate_overlap
        if inside.any():
            self.rejections["duplicate_box"] += int(inside.sum())
        return idx[~inside]

    def _hit(self, tr: _Track, box: np.ndarray, score: float, t: float) -> None:
        tr.kf.update(_to_cxcyah(box))
        tr.score, tr.last_t, tr.box = float(score), t, box.copy()
        tr.hits += 1
        tr.lost_since = None
        if not tr.track_id and tr.hits >= self.cfg.confirm_hits:
            tr.track_id = self._next_id
            self._next_id += 1
