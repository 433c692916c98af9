"""Fixed-lag smoothing of floor tracks: a person missed and then seen again is filled in.

Why: the detector misses people for a few frames (behind a shopper, in a group, too small for
one frame). Coasting forward (:meth:`PersonTracker.coasting`) keeps counting a missed track at
its predicted place, but it cannot tell "missed" from "left": a shopper who walks behind a
pillar and one who walks out of the door both coast, so forward coasting adds false counts when
it is long and loses people when it is short. Occupancy is summed over the day, so a floor
camera can afford to publish each interval a moment late; holding frames that long lets it
decide after the fact for the people who come back. When a track is detected again after a
miss, the frames in between get the straight line between its two sightings (box, foot point
and floor position), which is where the person was, replacing any coasted prediction there.
A coasted prediction whose track is *not* seen again within the lag can also be dropped
(``drop_unresolved``); the camera keeps them, because people hidden in a group for longer than
the lag are still there (dropping doubled TUD-Campus's count error, docs/floor-tracking.md).

This is ByteTrack's linear interpolation of track gaps (Zhang et al., ECCV 2022, section 4.4),
bounded to a fixed lag so that it runs live. Filled people keep ``coasted_s`` > 0 (the time
since their last detection), so the hub and the benches still know which positions were seen.
Issue 14: measured on both MOT clips, chosen with the cross-clip hold-out in
docs/floor-tracking.md ("Fixed-lag smoothing").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from edge.floor.person_tracker import TrackedPerson
from edge.floor.pipeline import FloorFrame

# The camera holds frames this long and fills a track's gap up to this long (``floor.
# fill_gaps_s``). Chosen with forward coasting (``FLOOR_COAST_S``) by the cross-clip hold-out
# of bench/floor_smoothing.py: TUD-Campus's choice (fill 0.75 s, coast 0.5 s), held out on
# PETS09: recall 0.781 -> 0.819, MOTA 0.630 -> 0.642, ID switches 76 -> 55, count error 0.506
# -> 0.496, at precision 0.854 -> 0.833 (docs/floor-tracking.md). It delays every interval the
# camera publishes by this much, which occupancy (summed over the day) does not feel.
FLOOR_FILL_GAPS_S = 0.75


@dataclass
class _Entry:
    person: TrackedPerson
    foot: np.ndarray  # (2,)
    floor: np.ndarray  # (2,)
    resolved: bool  # seen in this frame, or filled between two sightings


@dataclass
class _Held:
    index: int  # frames pushed before this one
    frame: FloorFrame
    t_wall: float
    people: dict[int, _Entry]


@dataclass(frozen=True)
class _Sighting:
    index: int
    t: float
    entry: _Entry


class FixedLagSmoother:
    """Hold floor frames ``lag_s`` seconds (capture clock), filling track gaps on re-detection.

    :meth:`push` takes each frame as the pipeline makes it and returns the frames now older
    than the lag, in order, with ``(frame, t_wall)``; :meth:`flush` returns the rest (shutdown,
    end of a clip). ``lag_s`` 0 passes frames through unchanged (nothing can be filled).
    """

    def __init__(
        self, lag_s: float, *, max_gap_s: float | None = None, drop_unresolved: bool = False
    ) -> None:
        if not 0.0 <= lag_s <= 10.0:
            raise ValueError(f"lag_s must be in [0, 10] s, got {lag_s}")
        self.lag_s = float(lag_s)
        self.max_gap_s = self.lag_s if max_gap_s is None else float(max_gap_s)
        if not 0.0 <= self.max_gap_s <= 60.0:
            raise ValueError(f"max_gap_s must be in [0, 60] s, got {max_gap_s}")
        self.drop_unresolved = bool(drop_unresolved) and lag_s > 0
        self._held: deque[_Held] = deque()
        self._last: dict[int, _Sighting] = {}
        self._n = 0
        self.filled = 0  # person-frames filled between two sightings
        self.dropped = 0  # coasted person-frames dropped: not seen again within the lag

    def push(self, frame: FloorFrame, t_wall: float) -> list[tuple[FloorFrame, float]]:
        """One frame in (capture times must not go back); the frames now due out."""
        people = {
            p.track_id: _Entry(p, np.asarray(foot, float), np.asarray(xy, float), p.coasted_s == 0)
            for p, foot, xy in zip(frame.people, frame.foot_px, frame.floor_xy, strict=True)
        }
        held = _Held(self._n, frame, t_wall, people)
        self._n += 1
        if self.lag_s > 0:
            for tid, e in people.items():
                if e.person.coasted_s == 0:
                    self._fill(tid, held)
            self._held.append(held)
            horizon = frame.t - self.lag_s
            for tid in [k for k, s in self._last.items() if s.t < horizon - 10.0]:
                del self._last[tid]  # ended tracks: nothing left to fill from them
        else:
            self._held.append(held)
        out = []
        while self._held and self._held[0].frame.t <= frame.t - self.lag_s + 1e-9:
            out.append(self._release(self._held.popleft()))
        return out

    def flush(self) -> list[tuple[FloorFrame, float]]:
        """Every held frame, in order (the end of a clip or of the camera's run)."""
        out = [self._release(h) for h in self._held]
        self._held.clear()
        self._last.clear()
        return out

    def _fill(self, tid: int, now: _Held) -> None:
        """``tid`` is seen in ``now``: fill the held frames since its last sighting."""
        seen = now.people[tid]
        last = self._last.get(tid)
        self._last[tid] = _Sighting(now.index, now.frame.t, seen)
        if last is None or last.index >= now.index - 1:
            return
        span = now.frame.t - last.t
        if not 0 < span <= self.max_gap_s + 1e-9:
            return
        a_box, b_box = np.asarray(last.entry.person.box, float), np.asarray(seen.person.box, float)
        for h in self._held:
            if h.index <= last.index:
                continue
            w = (h.frame.t - last.t) / span
            box = (1 - w) * a_box + w * b_box
            foot = (1 - w) * last.entry.foot + w * seen.foot
            floor = (1 - w) * last.entry.floor + w * seen.floor  # NaN stays NaN
            person = replace(
                seen.person,
                box=box,
                score=min(last.entry.person.score, seen.person.score),
                coasted_s=round(h.frame.t - last.t, 6),
            )
            if tid not in h.people or not h.people[tid].resolved:
                self.filled += 1
            h.people[tid] = _Entry(person, foot, floor, True)

    def _release(self, h: _Held) -> tuple[FloorFrame, float]:
        entries = list(h.people.values())
        if self.drop_unresolved:
            self.dropped += sum(not e.resolved for e in entries)
            entries = [e for e in entries if e.resolved]
        frame = FloorFrame(
            t=h.frame.t,
            frame_size=h.frame.frame_size,
            people=[e.person for e in entries],
            foot_px=np.array([e.foot for e in entries], float).reshape(-1, 2),
            floor_xy=np.array([e.floor for e in entries], float).reshape(-1, 2),
        )
        return frame, h.t_wall
