"""The occupancy grid's rule: which cell a floor point is in, which time slot a frame is in.

Part of the contract because two sides must count alike: the hub's occupancy grid
(``hub/floor/occupancy.py``: person-seconds per cell) and the offline ``storesense occupancy``
command (``storesense_tools/floor_offline.py``), whose figures are compared with what the hub
would store. Neither may import the other's room, so the rule lives here, once.

The quantity both report (docs/floor-analytics.md): the mean number of people in a cell over
a period = person-seconds in the cell / seconds observed. Time is cut into slots of
``slot_s`` (the hub: ``floor.sample_s``; offline: one slot per analysed frame); each observed
slot adds ``slot_s`` observed seconds and ``slot_s`` person-seconds per person in the cell.
"""

from __future__ import annotations

import math

import numpy as np

# A time an exact multiple of the slot length (frame i at i / fps) must not fall into the
# slot before through rounding (0.3 / 0.1 = 2.9999999999999996); far below any clock's jitter.
_SLOT_EPS = 1e-9


def slot_index(t: float, slot_s: float) -> int:
    """Index of the slot ``[k * slot_s, (k + 1) * slot_s)`` that time ``t`` (seconds) is in."""
    if slot_s <= 0:
        raise ValueError("slot length must be positive")
    return math.floor(t / slot_s + _SLOT_EPS)


def cell_indices(xy: np.ndarray, cell_m: float) -> np.ndarray:
    """(N,2) int cell indices ``floor(x / cell_m), floor(y / cell_m)`` of (N,2) floor metres.

    Points must be finite; callers drop NaN (beyond the horizon) first. Cells left of or above
    the floor's origin are negative: whether such points count is the caller's rule (the hub
    keeps only points on its floor).
    """
    if cell_m <= 0:
        raise ValueError("cell size must be positive")
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.floor(pts / cell_m).astype(np.int64)
