"""Zones: which zone a floor point is in, visits with dwell, journeys across cameras.

A visit needs a *state machine with hysteresis*, not a point-in-polygon per frame, or a person
standing on a zone border (detector jitter of a few cm) would enter and leave many times:

    OUT ──strictly inside──▶ ENTERING ──within the buffer for dwell_enter_s──▶ IN
    ENTERING ──leaves the buffer──▶ OUT                   (a passer-by: no visit)
    IN ──outside the buffer──▶ LEAVING ──back inside the buffer──▶ IN   (same visit)
    LEAVING ──outside for dwell_exit_s──▶ OUT, visit = [first inside, first outside)

The buffer is the polygon grown by ``zone_margin_m``. Each camera track runs one machine per
zone. Tracks of different cameras that the occupancy fusion found on the same spot are one
person (union-find); when all of a person's tracks have ended their visits are merged per zone,
so a zone seen by two cameras counts one visit. A person who spends ``staff_mark_s`` in a
``staff`` zone is staff: none of their visits count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import shapely
from shapely.geometry import Polygon

from storesense.floor_config import FloorConfig, ZoneConfig

OUT, ENTERING, IN, LEAVING = 0, 1, 2, 3


@dataclass(frozen=True)
class Visit:
    zone: str
    enter_t: float
    exit_t: float

    @property
    def dwell_s(self) -> float:
        return self.exit_t - self.enter_t


class ZoneSet:
    """The configured zones as shapely geometry; vectorised point tests."""

    def __init__(self, zones: list[ZoneConfig], margin_m: float) -> None:
        self.zones = zones
        self.names = [z.name for z in zones]
        self.polys = [Polygon(z.polygon) for z in zones]
        self.buffered = [p.buffer(margin_m) if margin_m > 0 else p for p in self.polys]
        for g in (*self.polys, *self.buffered):
            shapely.prepare(g)
        self.staff_idx = [i for i, z in enumerate(zones) if z.kind == "staff"]

    def __len__(self) -> int:
        return len(self.zones)

    def inside(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(strictly inside, inside the buffer), each a bool array (n_zones, n_points)."""
        n = len(x)
        strict = np.zeros((len(self.zones), n), dtype=bool)
        loose = np.zeros((len(self.zones), n), dtype=bool)
        for i, (p, b) in enumerate(zip(self.polys, self.buffered, strict=True)):
            strict[i] = shapely.contains_xy(p, x, y)
            loose[i] = shapely.contains_xy(b, x, y)
        return strict, loose

    def staff_area(self, strict: np.ndarray) -> np.ndarray:
        """Points strictly inside any staff zone (kept off the occupancy grid)."""
        if not self.staff_idx:
            return np.zeros(strict.shape[1], dtype=bool)
        return strict[self.staff_idx].any(axis=0)


@dataclass
class _Machine:
    state: int = OUT
    first_in: float = 0.0
    left_at: float = 0.0
    last_in: float = 0.0


class TrackZones:
    """One camera track's zone state machines (one per zone)."""

    def __init__(self, zones: ZoneSet, floor: FloorConfig) -> None:
        self.zones = zones
        self.enter_s = floor.dwell_enter_s
        self.exit_s = floor.dwell_exit_s
        self.staff_mark_s = floor.staff_mark_s
        self.machines = [_Machine() for _ in range(len(zones))]
        self.visits: list[Visit] = []
        self.staff = False
        self.last_t = -np.inf

    def step(self, t: float, strict: np.ndarray, loose: np.ndarray) -> None:
        """Advance every zone's machine with one frame (``strict``/``loose``: bool per zone).

        Frames older than the track's last one are ignored: a re-delivered message must not
        rewind a visit.
        """
        if t < self.last_t:
            return
        self.last_t = t
        for i, m in enumerate(self.machines):
            s, b = bool(strict[i]), bool(loose[i])
            if m.state == OUT:
                if s:
                    m.state, m.first_in, m.last_in = ENTERING, t, t
            elif m.state == ENTERING:
                if not b:
                    m.state = OUT
                else:
                    m.last_in = t
                    if t - m.first_in >= self.enter_s:
                        m.state = IN
            elif m.state == IN:
                if b:
                    m.last_in = t
                else:
                    m.state, m.left_at = LEAVING, t
            elif b:  # LEAVING, back within the buffer: the same visit goes on
                m.state, m.last_in = IN, t
            elif t - m.left_at >= self.exit_s:
                self._close(i, m.left_at)
            if m.state == IN and i in self.zones.staff_idx and t - m.first_in >= self.staff_mark_s:
                self.staff = True

    def _close(self, i: int, exit_t: float) -> None:
        m = self.machines[i]
        self.visits.append(Visit(self.zones.names[i], m.first_in, exit_t))
        m.state = OUT

    def end(self) -> list[Visit]:
        """The track ended: close open visits at the last time seen inside; all visits."""
        for i, m in enumerate(self.machines):
            if m.state == IN:
                self._close(i, m.last_in)
            elif m.state == LEAVING:
                self._close(i, m.left_at)
            elif m.state == ENTERING and m.last_in - m.first_in >= self.enter_s:
                self._close(i, m.last_in)
            m.state = OUT
        return self.visits


@dataclass(frozen=True)
class Journey:
    """A finished person: their merged visits in time order (empty if staff)."""

    person_key: str
    visits: tuple[Visit, ...]
    staff: bool
    tracks: int


def merge_visits(visits: Iterable[Visit], gap_s: float) -> list[Visit]:
    """Union per zone of possibly overlapping visits (several cameras, one person)."""
    out: list[Visit] = []
    by_zone: dict[str, list[Visit]] = {}
    for v in visits:
        by_zone.setdefault(v.zone, []).append(v)
    for zone, vs in by_zone.items():
        vs.sort(key=lambda v: v.enter_t)
        cur = vs[0]
        for v in vs[1:]:
            if v.enter_t <= cur.exit_t + gap_s:
                cur = Visit(zone, cur.enter_t, max(cur.exit_t, v.exit_t))
            else:
                out.append(cur)
                cur = v
        out.append(cur)
    out.sort(key=lambda v: (v.enter_t, v.zone))
    return out


def transitions(visits: Iterable[Visit]) -> list[tuple[str, str]]:
    """Zone-to-zone moves of one person, in time order (a→a is not a move)."""
    seq = [v.zone for v in sorted(visits, key=lambda v: v.enter_t)]
    return [(a, b) for a, b in pairwise(seq) if a != b]


@dataclass
class _Group:
    members: set[str] = field(default_factory=set)
    open: set[str] = field(default_factory=set)
    visits: list[Visit] = field(default_factory=list)
    staff: bool = False


class Journeys:
    """Camera tracks → people (union-find over fused tracks) → finished journeys."""

    MAX_TRACKS = 20_000  # memory bound; a store never has this many people at once
    LINK_SLOTS = 3  # fused together in this many occupancy slots (15 s at 5 s) = one person

    def __init__(self, zones: ZoneSet, floor: FloorConfig) -> None:
        self.zones = zones
        self.floor = floor
        self.tracks: dict[str, TrackZones] = {}
        self._root: dict[str, str] = {}
        self._groups: dict[str, _Group] = {}
        self._together: dict[tuple[str, str], set[int]] = {}
        self.evicted = 0

    def track(self, key: str) -> TrackZones:
        tz = self.tracks.get(key)
        if tz is None:
            tz = self.tracks[key] = TrackZones(self.zones, self.floor)
            if key in self._root:
                # A camera reused an ended track's id while the person it was fused with is
                # still open on another camera: the same group again. (Registering it anew
                # left the group's other members pointing at a root that then vanished.)
                self._groups[self._find(key)].open.add(key)
            else:
                self._root[key] = key
                self._groups[key] = _Group(members={key}, open={key})
        return tz

    def _find(self, key: str) -> str:
        root = self._root[key]
        while self._root[root] != root:
            root = self._root[root]
        self._root[key] = root
        return root

    def seen_together(self, slot: int, keys: Iterable[str]) -> None:
        """Tracks of different cameras fused into one person in occupancy slot ``slot``.

        One shared slot is weak evidence (two shoppers passing each other); ``LINK_SLOTS``
        distinct slots make them one person.
        """
        live = sorted(k for k in keys if k in self._root)
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                if a.split("/", 1)[0] == b.split("/", 1)[0]:
                    continue
                slots = self._together.setdefault((a, b), set())
                slots.add(slot)
                if len(slots) >= self.LINK_SLOTS:
                    self.link((a, b))

    def link(self, keys: Iterable[str]) -> None:
        """These tracks are one person (seen on the same spot by different cameras)."""
        live = [k for k in keys if k in self._root]
        if len(live) < 2:
            return
        roots = {self._find(k) for k in live}
        if len(roots) < 2:
            return
        keep, *rest = sorted(roots)
        g = self._groups[keep]
        for r in rest:
            other = self._groups.pop(r)
            g.members |= other.members
            g.open |= other.open
            g.visits += other.visits
            g.staff |= other.staff
            self._root[r] = keep

    def staff_tracks(self) -> list[str]:
        """Open tracks whose person is now known to be staff."""
        out: list[str] = []
        for g in self._groups.values():
            if g.staff or any(self.tracks[k].staff for k in g.open):
                out.extend(g.members)
        return out

    def end_tracks(self, keys: Iterable[str]) -> list[Journey]:
        """End these tracks; return the people all of whose tracks have now ended."""
        done: list[Journey] = []
        for key in keys:
            tz = self.tracks.pop(key, None)
            if tz is None:
                continue
            root = self._find(key)
            g = self._groups[root]
            g.visits += tz.end()
            g.staff |= tz.staff
            g.open.discard(key)
            if not g.open:
                del self._groups[root]
                for k in g.members:
                    self._root.pop(k, None)
                if self._together:
                    gone = g.members
                    for pair in [p for p in self._together if p[0] in gone or p[1] in gone]:
                        del self._together[pair]
                merged = [] if g.staff else merge_visits(g.visits, self.floor.dwell_exit_s)
                done.append(Journey(root, tuple(merged), g.staff, len(g.members)))
        if len(self.tracks) > self.MAX_TRACKS:
            oldest = sorted(self.tracks, key=lambda k: self.tracks[k].last_t)
            self.evicted += len(self.tracks) - self.MAX_TRACKS
            done += self.end_tracks(oldest[: len(self.tracks) - self.MAX_TRACKS])
        return done

    # -- crash recovery (hub/floor/ingest.py saves this as JSON) ------------------------
    def state(self) -> dict:
        """Plain data of every open track, person and link under way."""

        def visits(vs: Iterable[Visit]) -> list[list]:
            return [[v.zone, v.enter_t, v.exit_t] for v in vs]

        return {
            "tracks": {
                k: [
                    tz.last_t,
                    tz.staff,
                    [[m.state, m.first_in, m.left_at, m.last_in] for m in tz.machines],
                    visits(tz.visits),
                ]
                for k, tz in self.tracks.items()
            },
            "root": self._root,
            "groups": {
                r: [sorted(g.members), sorted(g.open), visits(g.visits), g.staff]
                for r, g in self._groups.items()
            },
            "together": [[a, b, sorted(s)] for (a, b), s in self._together.items()],
            "evicted": self.evicted,
        }

    def load_state(self, state: dict) -> None:
        """Inverse of ``state``; raises (and changes nothing) if it does not fit these zones."""
        n = len(self.zones)
        tracks: dict[str, TrackZones] = {}
        for key, (last_t, staff, machines, visits) in state["tracks"].items():
            if len(machines) != n:
                raise ValueError(f"track {key} has {len(machines)} zone machines, not {n}")
            tz = TrackZones(self.zones, self.floor)
            tz.last_t, tz.staff = float(last_t), bool(staff)
            tz.machines = [
                _Machine(int(a), float(b), float(c), float(d)) for a, b, c, d in machines
            ]
            tz.visits = [Visit(str(z), float(a), float(b)) for z, a, b in visits]
            tracks[str(key)] = tz
        groups = {
            str(r): _Group(
                set(members),
                set(open_),
                [Visit(str(z), float(a), float(b)) for z, a, b in vs],
                staff,
            )
            for r, (members, open_, vs, staff) in state["groups"].items()
        }
        root = {str(k): str(v) for k, v in state["root"].items()}
        if not set(tracks) <= set(root) or not set(root.values()) <= set(root):
            raise ValueError("union-find does not cover the open tracks")
        for key in tracks:
            r, hops = key, 0
            while root[r] != r and hops <= len(root):
                r, hops = root[r], hops + 1
            if r not in groups:
                raise ValueError(f"track {key} belongs to no person")
        self.tracks, self._root, self._groups = tracks, root, groups
        self._together = {(str(a), str(b)): {int(i) for i in s} for a, b, s in state["together"]}
        self.evicted = int(state["evicted"])
