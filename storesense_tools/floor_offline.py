"""Offline floor analysis over video files: ``storesense track`` / ``occupancy``, bench/mot_eval.py.

Kept out of the camera's runtime (``edge/floor/``) because a camera never reads a file to the
end or bins its own positions: it reads through ``edge.video.VideoSource`` (paced, newest
frame only, reconnecting) and the hub does the binning. Evaluation needs the opposite: every
frame in order, numbered like the file's, and the grid computed here to compare with ground
truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from storesense.floor_grid import cell_indices, slot_index


def read_video(path: str, max_frames: int | None = None) -> tuple[float, Iterator[np.ndarray]]:
    """(container fps, BGR frames) of a video file, decoded in order; ValueError if unreadable.

    Offline evaluation reads every frame (no drop, no pacing), unlike ``VideoSource``, so frame
    numbers in the output match the file's.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise ValueError(f"{path}: no decodable frame")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def frames() -> Iterator[np.ndarray]:
        try:
            n, frame = 0, first
            while _ok_frame(frame) and (max_frames is None or n < max_frames):
                yield frame
                n += 1
                good, frame = cap.read()
                if not good:
                    break
        finally:
            cap.release()

    return fps, frames()


def _ok_frame(frame: np.ndarray | None) -> bool:
    return frame is not None and getattr(frame, "size", 0) > 0


def occupancy_grid(
    samples: Iterable[tuple[float, np.ndarray]], cell_m: float, interval_s: float
) -> list[tuple[float, int, int, float]]:
    """Mean number of people per floor cell per interval, from (t seconds, (N,2) metres) samples.

    The hub's quantity (``storesense.floor_grid``): person-seconds in the cell / seconds
    observed, with every analysed frame its own slot: one camera, all its frames equally long,
    so an interval's mean is the people counted in the cell over its frames divided by the
    number of its frames (frames with nobody count as zeros). Unlike the hub, which keeps only
    its floor, off-floor points land in their (possibly negative) cells: ground truth and
    prediction are compared wherever they are. Only cells with someone in them are returned,
    sorted by interval then cell. NaN positions (beyond the horizon) are skipped.
    """
    if cell_m <= 0 or interval_s <= 0:
        raise ValueError("cell size and interval must be positive")
    frames_in: Counter[int] = Counter()
    counts: Counter[tuple[int, int, int]] = Counter()
    for t, xy in samples:
        k = slot_index(t, interval_s)
        frames_in[k] += 1
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        for cx, cy in cell_indices(pts[np.isfinite(pts).all(axis=1)], cell_m):
            counts[(k, int(cx), int(cy))] += 1
    return [(k * interval_s, cx, cy, n / frames_in[k]) for (k, cx, cy), n in sorted(counts.items())]
