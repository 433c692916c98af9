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

Fusion needs a person seen by both cameras in ``Journeys.LINK_SLOTS`` occupancy slots; someone
walking across a narrow overlap (or a gap) between two views is on both for a second or not at
all, and became two people (the store simulator: +8 % footfall). So tracks are also linked by
*hand-over*: a track that starts on one camera within ``HANDOVER_S`` and ``HANDOVER_M`` of
where a track of another camera was last seen continues that person, one successor per track
(docs/floor-analytics.md, "Hand-over between cameras").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import cast

import numpy as np
import shapely
from shapely.geometry import Polygon

from storesense.floor_config import FloorConfig, ZoneConfig

OUT, ENTERING, IN, LEAVING = 0, 1, 2, 3
HANDOVER_S = 3.0  # a track starting this soon (camera time) after another camera's was last seen
HANDOVER_M = 1.5  # ... and this close to where it was last seen, is the same person
TAIL_KEEP_S = 120.0  # ended tracks are remembered this long (data time) for a late successor


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
        # where the track started and was last seen (floor metres, camera time), for hand-over
        self.first: tuple[float, float, float] | None = None  # (t, x, y)
        self.seen: tuple[float, float, float] | None = None

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
    # the person key of an already stored journey this one continues (hand-over from a track
    # whose person had finished): the journey is stored under it, so the person counts once
    adopt: str | None = None


@dataclass
class _Tail:
    """An ended track, kept ``TAIL_KEEP_S`` for a successor on another camera."""

    camera: str
    t: float
    x: float
    y: float
    person: str | None = None  # the stored journey's key once its person has finished
    handed: bool = False


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
        self._tails: dict[str, _Tail] = {}
        self._handed: set[str] = set()  # open tracks already continued on another camera
        self._inherited: set[str] = set()  # open tracks that continue another camera's
        self.handovers = 0

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

    # -- hand-over between cameras ----------------------------------------------------
    def seen_at(self, key: str, t: float, x: float, y: float) -> None:
        """Track ``key`` was at floor (x, y) at camera time ``t`` (after its ``step``). Its
        first sighting looks for the track it continues on another camera."""
        tz = self.tracks.get(key)
        if tz is None:
            return
        if tz.first is None:
            tz.first = tz.seen = (t, x, y)
            self._born(key, tz)
        elif tz.seen is None or t >= tz.seen[0]:
            tz.seen = (t, x, y)

    def _open_on(self, key: str, camera: str) -> bool:
        """Does ``key``'s person already have an open track on ``camera``? (Then a new track
        there is someone else: one person is one track per camera.)"""
        g = self._groups[self._find(key)]
        return any(k.split("/", 1)[0] == camera for k in g.open)

    def _born(self, key: str, tz: TrackZones) -> None:
        cam = key.split("/", 1)[0]
        assert tz.first is not None
        t, x, y = tz.first
        best: tuple[float, str, bool] | None = None  # (distance, key, is a tail)
        for k, other in self.tracks.items():
            if k == key or other.seen is None or k in self._handed:
                continue
            if k.split("/", 1)[0] == cam or abs(other.seen[0] - t) > HANDOVER_S:
                continue
            d = math.dist((x, y), other.seen[1:])
            if d <= HANDOVER_M and (best is None or d < best[0]) and not self._open_on(k, cam):
                best = (d, k, False)
        stale = [k for k, tail in self._tails.items() if tail.t < t - TAIL_KEEP_S]
        for k in stale:
            del self._tails[k]
        for k, tail in self._tails.items():
            if tail.handed or tail.camera == cam or abs(tail.t - t) > HANDOVER_S:
                continue
            if k in self._root and self._open_on(k, cam):
                continue
            d = math.dist((x, y), (tail.x, tail.y))
            if d <= HANDOVER_M and (best is None or d < best[0]):
                best = (d, k, True)
        if best is None:
            return
        _, k, is_tail = best
        self.handovers += 1
        self._inherited.add(key)
        if not is_tail:
            self._handed.add(k)
            self.link((k, key))
            return
        self._tails[k].handed = True
        if k in self._root:  # its person is still open on another track
            self.link((k, key))
        else:
            self._groups[self._find(key)].adopt = self._tails[k].person

    def _ending(self, key: str, tz: TrackZones) -> None:
        """``key`` ends: a track on another camera that started where and when it was last
        seen continues it (its data came before this one's, so its birth found nothing)."""
        if tz.seen is None or key in self._handed:
            return
        cam = key.split("/", 1)[0]
        t, x, y = tz.seen
        best: tuple[float, str] | None = None
        for k, other in self.tracks.items():
            if k == key or other.first is None or k in self._inherited:
                continue
            if k.split("/", 1)[0] == cam or abs(other.first[0] - t) > HANDOVER_S:
                continue
            if self._find(k) == self._find(key):
                return  # already one person (fused, or handed over at its start)
            d = math.dist((x, y), other.first[1:])
            if d > HANDOVER_M or (best is not None and d >= best[0]):
                continue
            if not self._open_on(k, cam):
                best = (d, k)
        if best is None:
            return
        self.handovers += 1
        self._handed.add(key)
        self._inherited.add(best[1])
        self.link((key, best[1]))

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
            g.adopt = g.adopt or other.adopt
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
            if key not in self.tracks:
                continue
            self._ending(key, self.tracks[key])
            tz = self.tracks.pop(key)
            if tz.seen is not None:
                self._tails[key] = _Tail(key.split("/", 1)[0], *tz.seen, handed=key in self._handed)
            self._handed.discard(key)
            self._inherited.discard(key)
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
                person = g.adopt or root
                for k in g.members:
                    if k in self._tails:
                        self._tails[k].person = person
                merged = [] if g.staff else merge_visits(g.visits, self.floor.dwell_exit_s)
                done.append(Journey(person, tuple(merged), g.staff, len(g.members)))
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
                    [list(tz.first) if tz.first else None, list(tz.seen) if tz.seen else None],
                ]
                for k, tz in self.tracks.items()
            },
            "root": self._root,
            "groups": {
                r: [sorted(g.members), sorted(g.open), visits(g.visits), g.staff, g.adopt]
                for r, g in self._groups.items()
            },
            "together": [[a, b, sorted(s)] for (a, b), s in self._together.items()],
            "evicted": self.evicted,
            "handover": {
                "tails": {
                    k: [tl.camera, tl.t, tl.x, tl.y, tl.person, tl.handed]
                    for k, tl in self._tails.items()
                },
                "handed": sorted(self._handed),
                "inherited": sorted(self._inherited),
            },
        }

    def load_state(self, state: dict) -> None:
        """Inverse of ``state``; raises (and changes nothing) if it does not fit these zones."""
        n = len(self.zones)
        tracks: dict[str, TrackZones] = {}
        for key, (last_t, staff, machines, visits, *where) in state["tracks"].items():
            if len(machines) != n:
                raise ValueError(f"track {key} has {len(machines)} zone machines, not {n}")
            tz = TrackZones(self.zones, self.floor)
            tz.last_t, tz.staff = float(last_t), bool(staff)
            tz.machines = [
                _Machine(int(a), float(b), float(c), float(d)) for a, b, c, d in machines
            ]
            tz.visits = [Visit(str(z), float(a), float(b)) for z, a, b in visits]
            # saved before hand-over existed: a started track, never a new one
            first, seen = where[0] if where else (None, None)
            tz.seen = _txy(seen)
            tz.first = _txy(first) or tz.seen or (tz.last_t, math.nan, math.nan)
            tracks[str(key)] = tz
        groups = {
            str(r): _Group(
                set(g[0]),
                set(g[1]),
                [Visit(str(z), float(a), float(b)) for z, a, b in g[2]],
                bool(g[3]),
                None if len(g) < 5 or g[4] is None else str(g[4]),
            )
            for r, g in state["groups"].items()
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
        hand = state.get("handover") or {}
        tails = {
            str(k): _Tail(str(c), float(t), float(x), float(y), None if p is None else str(p), h)
            for k, (c, t, x, y, p, h) in (hand.get("tails") or {}).items()
        }
        self.tracks, self._root, self._groups = tracks, root, groups
        self._together = {(str(a), str(b)): {int(i) for i in s} for a, b, s in state["together"]}
        self.evicted = int(state["evicted"])
        self._tails = tails
        self._handed = {str(k) for k in hand.get("handed") or ()}
        self._inherited = {str(k) for k in hand.get("inherited") or ()}


def _txy(v: object) -> tuple[float, float, float] | None:
    """A saved (t, x, y) or None."""
    if v is None:
        return None
    t, x, y = cast("Sequence[float]", v)
    return float(t), float(x), float(y)
