"""Occupancy grid: person-seconds per floor cell per day, several cameras fused into one floor.

Method (docs/floor-analytics.md): time is cut into slots of ``floor.sample_s`` seconds. In each
slot every camera contributes ONE analysed frame (the one nearest the slot's middle), so a camera
analysing 8 fps and one analysing 2 fps weigh the same. The frames of all cameras in a slot are
fused (points of two cameras within ``fusion_radius_m`` are one person, matched by an optimal
assignment, never two points of the same camera), and every fused person adds ``sample_s``
person-seconds to the cell under them. A person standing 10 s in one cell therefore adds 10
person-seconds, whichever cameras see them.

Cameras report late (outbox replay after an outage) and out of order, so a slot stays in memory
for ``late_s`` after the newest data seen: when a frame arrives for it, or one of its tracks
turns out to be staff, the slot is fused again and only the *difference* to what it already
wrote is applied to SQLite. Maths here, drawing in ``hub/floor/report.py``.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from storesense.floor_config import FloorConfig
from storesense.floor_grid import cell_indices, slot_index

log = logging.getLogger(__name__)

# The floor tables' schema is in hub/store/migrations (0001_baseline.sql); this room owns them.


def local_day(t: float) -> str:
    """The store's local date of an epoch time (the hub runs in the store's time zone)."""
    return time.strftime("%Y-%m-%d", time.localtime(t))


@dataclass(frozen=True)
class Frame:
    """One camera frame's people on the floor, already filtered (on floor, not staff area)."""

    camera_id: str
    t: float
    xy: np.ndarray  # (n, 2) metres
    conf: np.ndarray  # (n,)
    keys: tuple[str, ...]  # track key of each point


@dataclass(frozen=True)
class Cluster:
    """One fused person: position and the camera tracks that saw them."""

    x: float
    y: float
    members: tuple[str, ...]


def fuse(frames: Sequence[Frame], radius_m: float) -> list[Cluster]:
    """Fuse simultaneous frames of different cameras into people.

    Camera by camera, each new point is matched to an existing person by minimum total distance
    (Hungarian assignment), accepting pairs closer than ``radius_m``; unmatched points are new
    people. Two points of one camera are never merged: its detector already told them apart.
    The fused position is the confidence-weighted mean.
    """
    sx: list[float] = []
    sy: list[float] = []
    sw: list[float] = []
    members: list[list[str]] = []
    for fr in frames:
        n = len(fr.keys)
        if n == 0:
            continue
        w = np.maximum(fr.conf, 1e-3)
        matched = np.full(n, -1)
        if sx and radius_m > 0:
            cx = np.asarray(sx) / np.asarray(sw)
            cy = np.asarray(sy) / np.asarray(sw)
            d = np.hypot(cx[:, None] - fr.xy[None, :, 0], cy[:, None] - fr.xy[None, :, 1])
            cost = np.where(d <= radius_m, d, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if d[r, c] <= radius_m:
                    matched[c] = r
        for i in range(n):
            x, y, wi = float(fr.xy[i, 0]), float(fr.xy[i, 1]), float(w[i])
            r = int(matched[i])
            if r < 0:
                sx.append(x * wi)
                sy.append(y * wi)
                sw.append(wi)
                members.append([fr.keys[i]])
            else:
                sx[r] += x * wi
                sy[r] += y * wi
                sw[r] += wi
                members[r].append(fr.keys[i])
    return [Cluster(sx[i] / sw[i], sy[i] / sw[i], tuple(members[i])) for i in range(len(members))]


@dataclass
class _Slot:
    index: int
    day: str
    frames: dict[str, tuple[float, Frame]] = field(default_factory=dict)  # cam → (|t-mid|, fr)
    # person-seconds per cell already written to SQLite for this slot (floats, so no Counter)
    applied: dict[tuple[int, int], float] = field(default_factory=dict)
    observed: bool = False


@dataclass
class GridStats:
    frames: int = 0
    late_frames: int = 0  # older than late_s behind the newest data: not fused, counted
    slots_fused: int = 0


class OccupancyGrid:
    """In-memory slots awaiting late data, written to ``floor_grid`` as deltas."""

    def __init__(self, floor: FloorConfig) -> None:
        self.floor = floor
        self.cell_mm = round(floor.cell_m * 1000)
        self.nx = math.ceil(floor.width_m / floor.cell_m - 1e-9)
        self.ny = math.ceil(floor.height_m / floor.cell_m - 1e-9)
        self.stats = GridStats()
        self.staff: set[str] = set()
        self.watermark = -math.inf  # newest frame time seen
        self.sealed = -math.inf  # slots up to this index were written but are not held
        self.geometry = f"{self.cell_mm}mm/{floor.sample_s}s/{self.nx}x{self.ny}"
        self._slots: dict[int, _Slot] = {}
        self._dirty: set[int] = set()

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """Cell indices of a floor point (callers keep points on the floor).

        The rule is the contract's (``storesense.floor_grid``), shared with the offline
        ``storesense occupancy``; the far edge (x == width) belongs to the last cell.
        """
        ix, iy = cell_indices(np.array([x, y]), self.floor.cell_m)[0]
        return min(int(ix), self.nx - 1), min(int(iy), self.ny - 1)

    def add_frame(self, frame: Frame) -> bool:
        """Offer a frame to its slot; False (and counted) if it is too late to fuse."""
        self.stats.frames += 1
        s = self.floor.sample_s
        index = slot_index(frame.t, s)
        if frame.t < self.watermark - self.floor.late_s or index <= self.sealed:
            self.stats.late_frames += 1
            return False
        self.watermark = max(self.watermark, frame.t)
        slot = self._slots.get(index)
        if slot is None:
            slot = self._slots[index] = _Slot(index, local_day(index * s))
        dist = abs(frame.t - (index + 0.5) * s)
        held = slot.frames.get(frame.camera_id)
        if held is None or dist < held[0]:
            slot.frames[frame.camera_id] = (dist, frame)
            self._dirty.add(index)
        return True

    def mark_staff(self, keys: Iterable[str]) -> None:
        """Tracks found to be staff: drop them from every slot still held (and from now on)."""
        new = set(keys) - self.staff
        if not new:
            return
        self.staff |= new
        for index, slot in self._slots.items():
            if any(k in new for _, fr in slot.frames.values() for k in fr.keys):
                self._dirty.add(index)

    def flush(self, conn: sqlite3.Connection) -> list[tuple[int, tuple[str, ...]]]:
        """Fuse changed slots, write the differences; inside the caller's transaction.

        Returns (slot index, camera tracks) for every person fused from several cameras.
        """
        links: list[tuple[int, tuple[str, ...]]] = []
        grid_rows: list[tuple[str, int, int, int, float]] = []
        day_rows: list[tuple[str, float]] = []
        slot_rows: list[tuple[int, str, str]] = []
        s = self.floor.sample_s
        for index in sorted(self._dirty):
            slot = self._slots.get(index)
            if slot is None:
                continue
            # Staff never become shoppers again, so their points are dropped for good: the
            # saved slot then needs no staff list to be fused the same way after a restart.
            slot.frames = {c: (d, self._without_staff(fr)) for c, (d, fr) in slot.frames.items()}
            frames = [fr for _, fr in slot.frames.values()]
            clusters = fuse(frames, self.floor.fusion_radius_m)
            self.stats.slots_fused += 1
            want: dict[tuple[int, int], float] = {}
            for c in clusters:
                cell = self.cell_of(c.x, c.y)
                want[cell] = want.get(cell, 0.0) + s
                if len(c.members) > 1:
                    links.append((index, c.members))
            delta = {
                cell: want.get(cell, 0.0) - slot.applied.get(cell, 0.0)
                for cell in {**want, **slot.applied}  # want's cells first, as written before
            }
            for (ix, iy), v in delta.items():
                if v:
                    grid_rows.append((slot.day, self.cell_mm, ix, iy, v))
            slot.applied = want
            if not slot.observed:
                slot.observed = True
                day_rows.append((slot.day, s))
            slot_rows.append((index, self.geometry, _slot_json(slot)))
        self._dirty.clear()
        if grid_rows:
            conn.executemany(
                "INSERT INTO floor_grid(day, cell_mm, ix, iy, person_s) VALUES (?,?,?,?,?) "
                "ON CONFLICT(day, cell_mm, ix, iy) DO UPDATE SET person_s = person_s + "
                "excluded.person_s",
                grid_rows,
            )
        if day_rows:
            conn.executemany(
                "INSERT INTO floor_days(day, observed_s) VALUES (?,?) "
                "ON CONFLICT(day) DO UPDATE SET observed_s = observed_s + excluded.observed_s",
                day_rows,
            )
        if slot_rows:
            conn.executemany(
                "INSERT OR REPLACE INTO floor_slots(slot, grid, body) VALUES (?,?,?)", slot_rows
            )
        self._expire(conn)
        return links

    def _without_staff(self, fr: Frame) -> Frame:
        if not self.staff or not any(k in self.staff for k in fr.keys):
            return fr
        keep = np.array([k not in self.staff for k in fr.keys], dtype=bool)
        keys = tuple(k for k, ok in zip(fr.keys, keep, strict=True) if ok)
        return Frame(fr.camera_id, fr.t, fr.xy[keep], fr.conf[keep], keys)

    def _expire(self, conn: sqlite3.Connection) -> None:
        """Forget slots no late frame can reach any more (memory stays bounded)."""
        if not math.isfinite(self.watermark):
            return
        limit = math.floor((self.watermark - self.floor.late_s) / self.floor.sample_s) - 1
        gone = [i for i in self._slots if i < limit]
        for index in gone:
            del self._slots[index]
        if gone:
            conn.execute("DELETE FROM floor_slots WHERE slot < ?", (limit,))
        if len(self.staff) > 10_000:
            self.staff.clear()  # staff tracks end within minutes; this only bounds memory

    @property
    def held_slots(self) -> int:
        return len(self._slots)

    # -- crash recovery -----------------------------------------------------------------
    def state(self) -> dict:
        """What the periodic snapshot keeps of the grid (slots are saved as they change)."""
        return {"watermark": self.watermark, "sealed": self.sealed, "staff": sorted(self.staff)}

    def load_state(self, state: dict) -> None:
        self.watermark = max(self.watermark, float(state["watermark"]))
        self.sealed = max(self.sealed, float(state["sealed"]))
        self.staff |= {str(k) for k in state["staff"]}

    def restore(self, conn: sqlite3.Connection) -> str | None:
        """Reload the slots saved by ``flush``; the reason if they had to be dropped.

        Dropped slots (another grid geometry, unreadable rows) were already written to
        ``floor_grid``: they are *sealed*, so a late frame for them is counted as late instead
        of being added a second time on top of what they wrote.
        """
        rows = conn.execute("SELECT slot, grid, body FROM floor_slots ORDER BY slot").fetchall()
        if not rows:
            return None
        reason = None
        slots: dict[int, _Slot] = {}
        try:
            for index, geometry, body in rows:
                if geometry != self.geometry:
                    reason = f"saved grid {geometry} differs from the configured {self.geometry}"
                    break
                slots[int(index)] = _slot_from_json(int(index), body)
        except Exception as exc:  # a damaged row must never stop the hub
            reason = f"unreadable saved slot ({type(exc).__name__}: {exc})"
        if reason is not None:
            self.sealed = max(self.sealed, max(int(r[0]) for r in rows))
            conn.execute("DELETE FROM floor_slots")
            log.warning("floor: %d held occupancy slots dropped: %s", len(rows), reason)
            return reason
        self._slots = slots
        newest = max((fr.t for sl in slots.values() for _, fr in sl.frames.values()), default=None)
        if newest is not None:
            self.watermark = max(self.watermark, newest)
        return None


def _slot_json(slot: _Slot) -> str:
    frames = [
        [cam, d, fr.t, fr.xy.tolist(), fr.conf.tolist(), list(fr.keys)]
        for cam, (d, fr) in slot.frames.items()
    ]
    applied = [[ix, iy, v] for (ix, iy), v in slot.applied.items()]
    return json.dumps({"day": slot.day, "obs": slot.observed, "frames": frames, "ap": applied})


def _slot_from_json(index: int, body: str) -> _Slot:
    d = json.loads(body)
    slot = _Slot(index, str(d["day"]), observed=bool(d["obs"]))
    for cam, dist, t, xy, conf, keys in d["frames"]:
        arr = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        c = np.asarray(conf, dtype=np.float64).reshape(-1)
        if not len(arr) == len(c) == len(keys):
            raise ValueError(f"slot {index}: frame of {cam} has mismatched lengths")
        slot.frames[str(cam)] = (float(dist), Frame(str(cam), float(t), arr, c, tuple(keys)))
    slot.applied = {(int(ix), int(iy)): float(v) for ix, iy, v in d["ap"]}
    return slot


def load_grid(
    conn: sqlite3.Connection, floor: FloorConfig, days: Sequence[str]
) -> tuple[np.ndarray, float]:
    """Mean person-seconds per cell per observed day (ny, nx), and the mean observed seconds.

    Days without any camera data are left out of the mean instead of diluting it.
    """
    cell_mm = round(floor.cell_m * 1000)
    nx = math.ceil(floor.width_m / floor.cell_m - 1e-9)
    ny = math.ceil(floor.height_m / floor.cell_m - 1e-9)
    grid = np.zeros((ny, nx), dtype=np.float64)
    if not days:
        return grid, 0.0
    marks = ",".join("?" * len(days))
    observed = conn.execute(
        f"SELECT day, observed_s FROM floor_days WHERE day IN ({marks})", tuple(days)
    ).fetchall()
    n_days = len(observed)
    if n_days == 0:
        return grid, 0.0
    for ix, iy, ps in conn.execute(
        f"SELECT ix, iy, person_s FROM floor_grid WHERE cell_mm=? AND day IN ({marks})",
        (cell_mm, *days),
    ):
        if 0 <= ix < nx and 0 <= iy < ny:
            grid[iy, ix] += ps
    return grid / n_days, sum(r[1] for r in observed) / n_days
