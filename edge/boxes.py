"""Axis-aligned boxes ``x1, y1, x2, y2`` (pixels): overlap measures, one definition for the edge.

Why one module: the face NMS, the face tracker, ByteTrack, the person detector's part filter and
the offline scorers all ask "how much do these boxes overlap?". Four private copies had drifted
apart in their edge cases (empty inputs, zero-area boxes, the epsilon in the division); here
every caller gets the same answer. All functions are vectorised over (N,4) and (M,4) arrays
because they sit inside per-frame loops (NMS over hundreds of anchors, ByteTrack's three
association rounds); a single pair is just the 1x1 case.

Degenerate boxes (zero or negative width/height) have area 0: their IoU with anything is 0, not
NaN, so a malformed detection can never win an assignment.
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-9  # guards the divisions; far below any real box area in pixels


def as_boxes(boxes: np.ndarray | list | tuple) -> np.ndarray:
    """(N,4) float64 view of one box, a list of boxes or an array (an empty input is (0,4))."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def areas(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas; inverted or empty boxes count as 0."""
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def intersection_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) intersection areas of every box of ``a`` with every box of ``b``."""
    a, b = as_boxes(a), as_boxes(b)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(hi - lo, 0, None)
    return wh[..., 0] * wh[..., 1]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) intersection over union; 0 where the union is empty."""
    a, b = as_boxes(a), as_boxes(b)
    inter = intersection_matrix(a, b)
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, _TINY), 0.0)


def coverage_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) share of each box of ``a`` that lies inside each box of ``b`` (intersection / area a).

    Not symmetric, unlike IoU: a head box inside a body box covers 1.0 of itself while its IoU
    with the body is small. Used to spot body-part and duplicate detections.
    """
    a = as_boxes(a)
    return intersection_matrix(a, b) / np.maximum(areas(a), _TINY)[:, None]


def grow(boxes: np.ndarray, share: np.ndarray | float) -> np.ndarray:
    """Boxes enlarged by ``share`` x (w, h) on every side (one value, or one per box)."""
    b = as_boxes(boxes)
    s = np.asarray(share, dtype=np.float64).reshape(-1, 1)
    wh = b[:, 2:] - b[:, :2]
    return np.hstack([b[:, :2] - s * wh, b[:, 2:] + s * wh])
