"""Read MOTChallenge sequences (``gt/gt.txt`` + ``seqinfo.ini`` + a video) for evaluation.

Why one shared reader: person-detector scoring (``bench/person_detect.py``) and tracker scoring
both need the same three corrections, and getting any of them wrong silently halves a score:

* the ground truth is in the pixel frame of ``seqinfo.ini`` (PETS09: 768x576) while the video
  we have may be re-encoded smaller (``vtest.avi`` is 480x360): boxes are scaled by
  ``video width / seqinfo width`` (0.625 for PETS09), checked equal for both axes;
* ``frame`` is 1-based, ``cv2.VideoCapture`` indices are 0-based: video frame ``i`` is gt
  frame ``i + 1``;
* rows with ``conf == 0`` are "ignore" regions (PETS09: ids 11, 12, 16 in frames 147-244):
  a detection on them is neither a hit nor a false positive.

The frame rate comes from ``seqinfo.ini`` (PETS09: 7 fps; the avi container claims 10).
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.boxes import iou_matrix  # the edge's one IoU: scores match what the tracker saw

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of ``seqinfo.ini``."""

    name: str
    frame_rate: float
    length: int
    width: int
    height: int


@dataclass(frozen=True)
class GroundTruth:
    """All gt rows of one sequence as parallel arrays, boxes already in *video* pixels.

    ``frames`` is the 0-based video frame index (gt frame - 1). ``boxes`` are x1,y1,x2,y2.
    ``ignore`` marks ``conf == 0`` rows. ``world`` is (wx, wy) in metres, NaN where the file
    has -1 (no world coordinates, e.g. TUD-Campus).
    """

    frames: np.ndarray  # (N,) int64
    ids: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N,4) float32
    ignore: np.ndarray  # (N,) bool
    world: np.ndarray  # (N,2) float64
    _index: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.frames.size)

    def rows(self, frame: int) -> np.ndarray:
        """Row indices of 0-based video frame ``frame`` (empty when it has no gt)."""
        if not self._index:
            order = np.argsort(self.frames, kind="stable")
            uniq, starts = np.unique(self.frames[order], return_index=True)
            for f, part in zip(uniq, np.split(order, starts[1:]), strict=True):
                self._index[int(f)] = part
        return self._index.get(int(frame), np.empty(0, dtype=np.int64))

    def at(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes, ids, ignore) of one 0-based video frame."""
        r = self.rows(frame)
        return self.boxes[r], self.ids[r], self.ignore[r]


@dataclass(frozen=True)
class MotSequence:
    """One sequence folder: info, gt scaled to the video, and the video path."""

    root: Path
    info: SeqInfo
    video: Path
    video_size: tuple[int, int]  # (width, height) as OpenCV decodes it
    scale: float  # video pixels per seqinfo pixel
    gt: GroundTruth

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (0-based index, BGR frame) from ``start`` up to ``stop`` (exclusive)."""
        cap = cv2.VideoCapture(str(self.video))
        if not cap.isOpened():
            raise ValueError(f"cannot open video {self.video}")
        try:
            if start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            i = start
            while stop is None or i < stop:
                ok, frame = cap.read()
                if not ok:
                    break
                yield i, frame
                i += 1
        finally:
            cap.release()

    def frame(self, index: int) -> np.ndarray:
        """One BGR frame by 0-based index (decodes sequentially; fine for tests)."""
        for _, img in self.frames(index, index + 1):
            return img
        raise ValueError(f"{self.video} has no frame {index}")


def read_seqinfo(path: Path) -> SeqInfo:
    """Parse ``seqinfo.ini``; a missing key is a ValueError naming the file and key."""
    cp = configparser.ConfigParser()
    if not cp.read(path):
        raise ValueError(f"cannot read {path}")
    if "Sequence" not in cp:
        raise ValueError(f"{path}: no [Sequence] section")
    sec = cp["Sequence"]
    try:
        return SeqInfo(
            name=sec["name"],
            frame_rate=float(sec["frameRate"]),
            length=int(sec["seqLength"]),
            width=int(sec["imWidth"]),
            height=int(sec["imHeight"]),
        )
    except KeyError as exc:
        raise ValueError(f"{path}: missing key {exc.args[0]} in [Sequence]") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def read_gt(path: Path, scale: float = 1.0) -> GroundTruth:
    """Parse a MOT ``gt.txt`` (``frame,id,x,y,w,h,conf,wx,wy,wz``), boxes times ``scale``.

    Malformed lines raise ValueError with the line number: a silently skipped gt row would make
    every downstream score wrong without anyone noticing.
    """
    rows: list[list[float]] = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            if len(parts) < 7:
                raise ValueError(f"{path}:{n}: expected >= 7 comma-separated fields")
            try:
                vals = [float(p) for p in parts[:10]]
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
            vals += [-1.0] * (10 - len(vals))
            if vals[0] < 1 or vals[4] <= 0 or vals[5] <= 0:
                raise ValueError(f"{path}:{n}: frame must be >= 1 and w,h > 0")
            rows.append(vals)
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 10)
    xywh = a[:, 2:6] * scale
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
    world = a[:, 7:9].copy()
    world[(a[:, 7] == -1) & (a[:, 8] == -1)] = np.nan
    return GroundTruth(
        frames=a[:, 0].astype(np.int64) - 1,
        ids=a[:, 1].astype(np.int64),
        boxes=boxes,
        ignore=a[:, 6] == 0,
        world=world,
    )


def _video_size(video: Path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(video))
    try:
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise ValueError(f"cannot decode a frame of {video}")
    return int(frame.shape[1]), int(frame.shape[0])


def load_sequence(root: Path, video: Path | None = None) -> MotSequence:
    """Load ``root/seqinfo.ini``, ``root/gt/gt.txt`` and the (only) video file in ``root``.

    The gt is scaled to the decoded video size; a non-uniform scale is refused because it
    means the video is not the sequence the gt describes.
    """
    root = Path(root)
    info = read_seqinfo(root / "seqinfo.ini")
    if video is None:
        vids = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if len(vids) != 1:
            raise ValueError(f"{root}: expected exactly one video file, found {vids}")
        video = vids[0]
    w, h = _video_size(video)
    sx, sy = w / info.width, h / info.height
    if abs(sx - sy) > 1e-3:
        raise ValueError(f"{video}: {w}x{h} is not a uniform scale of {info.width}x{info.height}")
    return MotSequence(root, info, video, (w, h), sx, read_gt(root / "gt" / "gt.txt", sx))


@dataclass(frozen=True)
class FrameScore:
    """Detection counts of one frame; ``dont_care`` detections count as neither tp nor fp."""

    tp: int
    fp: int
    fn: int
    dont_care: int
    matched_gt: np.ndarray  # (G,) bool over the frame's non-ignore gt boxes


def score_frame(
    det: np.ndarray,
    gt: np.ndarray,
    gt_ignore: np.ndarray | None = None,
    iou: float = 0.5,
    roi: np.ndarray | None = None,
) -> FrameScore:
    """Match detections to gt one-to-one (Hungarian on IoU, pairs below ``iou`` refused).

    Unmatched detections are don't-care (not false positives) when they overlap an ignore box
    by IoU >= ``iou``, or when ``roi`` (a polygon, (K,2) pixels) is given and the detection's
    foot point (bottom centre) lies outside it: the gt does not annotate every visible person
    (PETS09: walkers on the far footpath), so precision is only scored where the gt is complete.
    """
    from scipy.optimize import linear_sum_assignment

    det = np.asarray(det, np.float32).reshape(-1, 4)
    gt = np.asarray(gt, np.float32).reshape(-1, 4)
    ign = np.zeros(len(gt), bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
    care, ignored = gt[~ign], gt[ign]
    matched_det = np.zeros(len(det), bool)
    matched_gt = np.zeros(len(care), bool)
    if len(det) and len(care):
        m = iou_matrix(det, care)
        r, c = linear_sum_assignment(-m)
        ok = m[r, c] >= iou
        matched_det[r[ok]] = True
        matched_gt[c[ok]] = True
    rest = ~matched_det
    dc = np.zeros(len(det), bool)
    if len(ignored) and rest.any():
        dc |= iou_matrix(det, ignored).max(axis=1) >= iou
    if roi is not None and rest.any():
        poly = np.asarray(roi, np.float32).reshape(-1, 1, 2)
        for i in np.flatnonzero(rest & ~dc):
            foot = (float(det[i, 0] + det[i, 2]) / 2, float(det[i, 3]))
            dc[i] = cv2.pointPolygonTest(poly, foot, False) < 0
    tp = int(matched_det.sum())
    dont_care = int((rest & dc).sum())
    return FrameScore(
        tp, int(rest.sum()) - dont_care, int((~matched_gt).sum()), dont_care, matched_gt
    )


def gt_roi(gt: GroundTruth, margin: float = 0.0) -> np.ndarray:
    """Convex hull (K,2) of every evaluated gt foot point, grown by ``margin`` pixels.

    The area where the annotators did label people; see :func:`score_frame`.
    """
    b = gt.boxes[~gt.ignore]
    feet = np.stack([(b[:, 0] + b[:, 2]) / 2, b[:, 3]], axis=1).astype(np.float32)
    hull = cv2.convexHull(feet).reshape(-1, 2)
    if margin:
        c = hull.mean(axis=0)
        d = hull - c
        n = np.linalg.norm(d, axis=1, keepdims=True)
        hull = c + d * (1 + margin / np.maximum(n, 1e-6))
    return hull.astype(np.float32)
