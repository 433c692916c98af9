"""A small store simulator with planted truth, to check the report's advice against it.

Shoppers walk (shortest walkable path round the fixtures, 1 m/s) from the door to a few
attractors and the till and out again. What is planted (docs/floor-analytics.md,
"Checks of the advice against known truth"):

* ``HOT_SPOT``: a promotion stand on the main path where most shoppers stop 15–25 s;
* ``garden``: a zone behind the back shelf, reached only through a 1 m gap at the far end:
  few go there (cold for ``narrow_access`` / ``off_main_path``);
* ``toys``: a zone next to the main path many visit, whose categories never sell;
* ``books``: a zone no camera covers (must be ``not_observed``, never cold).

Each camera reports only the people inside its coverage, as ``FloorPositions`` messages that
go through the hub's real ingest (``hub.floor.ingest.FloorIngest.handle``); sales go into the
real POS tables (``hub.shop.pos_store.insert_invoices``). The demo can use ``simulate`` for
synthetic history (label it as demo data).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
from shapely.geometry import Point, Polygon

from hub.floor.ingest import FloorIngest
from hub.shop import pos_store
from hub.shop.categories import Categorizer
from hub.store import db
from storesense import messages as m
from storesense.config import StoreConfig, parse_config
from storesense.topics import Topics

HOT_SPOT = (6.0, 1.5)
NAV_M = 0.25
DT_S = 1.0
INTERVAL_S = 30.0
GAP = (11.5, 5.75)

STORE_YAML = """\
store_id: {store_id}
name: Simulated store
cameras:
  - {{id: cam-a, role: floor, source: sim}}
  - {{id: cam-b, role: floor, source: sim}}
floor:
  width_m: 12
  height_m: 8
  cell_m: 0.5
  sample_s: 5
  snapshot_s: 600
  plan:
    fixtures:
      - {{name: back shelf, kind: shelf, polygon: [[7, 5.5], [11, 5.5], [11, 6], [7, 6]]}}
      - {{name: side shelf, kind: shelf, polygon: [[7, 6], [7.5, 6], [7.5, 8], [7, 8]]}}
    entrances:
      - {{name: door, at: [1, 0], width_m: 1.5}}
    cameras:
      - {{camera: cam-a, at: [12, 0], coverage: [[3, 0], [12, 0], [12, 8], [3, 8]],
         detection_recall: {recall}}}
      - {{camera: cam-b, at: [0, 0], coverage: [[0, 0], [3.5, 0], [3.5, 5.5], [0, 5.5]],
         detection_recall: {recall}}}
zones:
  - {{name: entrance, kind: entrance, polygon: [[0, 0], [2, 0], [2, 2], [0, 2]]}}
  - {{name: till, kind: till, polygon: [[10, 0], [12, 0], [12, 2], [10, 2]]}}
  - {{name: kitchen, polygon: [[2, 3.5], [6, 3.5], [6, 5], [2, 5]], categories: [kitchen]}}
  - {{name: toys, polygon: [[6.5, 3.5], [10, 3.5], [10, 5], [6.5, 5]], categories: [toys]}}
  - {{name: bags, polygon: [[3.5, 6], [6.5, 6], [6.5, 8], [3.5, 8]], categories: [bags]}}
  - {{name: books, polygon: [[0, 5.5], [3, 5.5], [3, 8], [0, 8]], categories: [books]}}
  - {{name: garden, polygon: [[7.5, 6], [12, 6], [12, 8], [7.5, 8]], categories: [garden]}}
"""

# zone → (probability a shopper goes there, dwell range s, probability of buying, price)
ATTRACTORS: dict[str, tuple[float, tuple[float, float], float, float]] = {
    "kitchen": (0.6, (20, 40), 0.8, 20.0),
    "toys": (0.6, (10, 20), 0.0, 12.0),
    "bags": (0.5, (15, 30), 0.4, 15.0),
    "books": (0.3, (15, 25), 0.3, 10.0),
    "garden": (0.05, (8, 15), 0.5, 25.0),
}


def position_on_route(
    route: list[tuple[float, float, float]],
    start_t: float,
    t: float,
    *,
    speed_m_s: float = 1.0,
    min_walk_s: float = 0.0,
) -> tuple[float, float] | None:
    """Where a scripted walker is at ``t``: it stands at ``route[0]`` at ``start_t``, walks in
    straight lines at ``speed_m_s`` to each next ``(x, y, dwell_s)`` and stands there for its
    dwell; None before the start and once the route is done (it has left the floor).

    Shared by the demo's synthetic aisle shoppers and the tests' scripted shoppers; the
    simulator's own agents path-find around fixtures instead."""
    if t < start_t:
        return None
    x, y = route[0][0], route[0][1]
    clock = start_t
    for sx, sy, dwell in route[1:]:
        walk = max(float(np.hypot(sx - x, sy - y)) / speed_m_s, min_walk_s)
        if t < clock + walk:
            f = (t - clock) / walk
            return (x + f * (sx - x), y + f * (sy - y))
        clock += walk
        x, y = sx, sy
        if t < clock + dwell:
            return (x, y)
        clock += dwell
    return None


def store_config(store_id: str = "sim", recall: float | None = 0.9) -> StoreConfig:
    """The simulated store (12 × 8 m, two cameras, books uncovered)."""
    return parse_config(
        STORE_YAML.format(store_id=store_id, recall="null" if recall is None else recall)
    )


class _Nav:
    """Shortest walkable paths on a 0.25 m grid (breadth-first distance fields per target)."""

    def __init__(self, cfg: StoreConfig) -> None:
        f = cfg.floor
        self.nx, self.ny = round(f.width_m / NAV_M), round(f.height_m / NAV_M)
        self.free = np.ones((self.ny, self.nx), dtype=bool)
        polys = [Polygon(fx.polygon).buffer(0.2) for fx in f.plan.fixtures]
        for iy in range(self.ny):
            for ix in range(self.nx):
                p = Point((ix + 0.5) * NAV_M, (iy + 0.5) * NAV_M)
                self.free[iy, ix] = not any(q.contains(p) for q in polys)
        self._fields: dict[tuple[int, int], np.ndarray] = {}

    def cell(self, x: float, y: float) -> tuple[int, int]:
        ix = min(max(int(x / NAV_M), 0), self.nx - 1)
        iy = min(max(int(y / NAV_M), 0), self.ny - 1)
        return iy, ix

    def field(self, target: tuple[int, int]) -> np.ndarray:
        if target not in self._fields:
            d = np.full((self.ny, self.nx), np.inf)
            d[target] = 0
            q = deque([target])
            while q:
                iy, ix = q.popleft()
                for dy, dx in (
                    (1, 0),
                    (-1, 0),
                    (0, 1),
                    (0, -1),
                    (1, 1),
                    (1, -1),
                    (-1, 1),
                    (-1, -1),
                ):
                    jy, jx = iy + dy, ix + dx
                    if 0 <= jy < self.ny and 0 <= jx < self.nx and self.free[jy, jx]:
                        step = 1.4142 if dy and dx else 1.0
                        if d[jy, jx] > d[iy, ix] + step:
                            d[jy, jx] = d[iy, ix] + step
                            q.append((jy, jx))
            self._fields[target] = d
        return self._fields[target]

    def step(self, at: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
        d = self.field(target)
        iy, ix = at
        best = at
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                jy, jx = iy + dy, ix + dx
                if 0 <= jy < self.ny and 0 <= jx < self.nx and d[jy, jx] < d[best]:
                    best = (jy, jx)
        return best


@dataclass
class _Shopper:
    pid: int
    legs: list[tuple[tuple[int, int], float]]  # (target cell, dwell s)
    zones: list[str]
    at: tuple[int, int]
    wait: float = 0.0
    leg: int = 0
    done: bool = False
    bought: list[str] = field(default_factory=list)


def _free_point(nav: _Nav, rng: random.Random, poly: Polygon) -> tuple[int, int]:
    x0, y0, x1, y1 = poly.bounds
    for _ in range(200):
        x, y = rng.uniform(x0 + 0.3, x1 - 0.3), rng.uniform(y0 + 0.3, y1 - 0.3)
        c = nav.cell(x, y)
        if nav.free[c] and poly.contains(Point(x, y)):
            return c
    return nav.cell(*poly.representative_point().coords[0])


def simulate(
    conn: sqlite3.Connection,
    cfg: StoreConfig,
    start: float,
    seconds: float,
    *,
    arrival_s: float = 30.0,
    seed: int = 1,
    attractors: Mapping[str, tuple[float, tuple[float, float], float, float]] | None = None,
) -> dict[str, Any]:
    """Simulate ``seconds`` of trading from epoch ``start`` into the hub database ``conn``
    (migrated), through the real floor ingest and POS store. Returns counts for the docs and
    the planted truth: ``shoppers`` is the true footfall (each comes in through the door
    once), ``handovers`` the camera hand-overs the hub linked. ``attractors`` replaces
    ``ATTRACTORS`` (e.g. without the uncovered books zone)."""
    goals = ATTRACTORS if attractors is None else attractors
    rng = random.Random(seed)
    nav = _Nav(cfg)
    zones = {z.name: Polygon(z.polygon) for z in cfg.zones}
    cover = {c.camera: Polygon(c.coverage or []) for c in cfg.floor.plan.cameras}
    ingest = FloorIngest(conn, cfg)
    topics = Topics(cfg.store_id)
    door = nav.cell(1.0, 0.3)
    till = zones["till"]
    people: list[_Shopper] = []
    next_arrival, pid, t = start, 0, start
    seq = {c: 0 for c in cover}
    run = {c: m.new_msg_id() for c in cover}
    batch: dict[str, list[m.FloorSample]] = {c: [] for c in cover}
    interval_start = start
    ids: dict[str, dict[int, tuple[int, float]]] = {c: {} for c in cover}
    next_id = {c: 0 for c in cover}
    invoices: list[pos_store.Invoice] = []
    sent = 0
    end = start + seconds
    while t < end or any(not p.done for p in people):
        while next_arrival <= t and t < end:
            legs: list[tuple[tuple[int, int], float]] = [(door, rng.uniform(3, 5))]
            names: list[str] = []
            if rng.random() < 0.85:
                legs.append((nav.cell(*HOT_SPOT), rng.uniform(15, 25)))
            order = list(goals)
            rng.shuffle(order)
            for name in order:
                prob, (lo, hi), _, _ = goals[name]
                if rng.random() < prob:
                    legs.append((_free_point(nav, rng, zones[name]), rng.uniform(lo, hi)))
                    names.append(name)
            if rng.random() < 0.7:
                legs.append((_free_point(nav, rng, till), rng.uniform(8, 15)))
                names.append("till")
            legs.append((door, 0.0))
            people.append(_Shopper(pid, legs, names, door))
            pid += 1
            next_arrival += rng.expovariate(1.0 / arrival_s)
        for p in people:
            if p.done:
                continue
            target, dwell = p.legs[p.leg]
            if p.at == target:
                p.wait += DT_S
                if p.wait >= dwell:
                    p.leg, p.wait = p.leg + 1, 0.0
                    if p.leg == len(p.legs):
                        p.done = True
                continue
            for _ in range(round(1.0 * DT_S / NAV_M)):
                p.at = nav.step(p.at, target)
        live = [p for p in people if not p.done]
        for cam, poly in cover.items():
            seen = []
            for p in live:
                x = (p.at[1] + 0.5) * NAV_M + rng.gauss(0, 0.05)
                y = (p.at[0] + 0.5) * NAV_M + rng.gauss(0, 0.05)
                if poly.contains(Point(x, y)):
                    # a person back in view after a gap gets a new tracker id, as on a camera
                    tid, last = ids[cam].get(p.pid, (-1, -1.0))
                    if last < t - DT_S:
                        tid, next_id[cam] = next_id[cam], next_id[cam] + 1
                    ids[cam][p.pid] = (tid, t)
                    seen.append(m.FloorPosition(track_id=tid, x=x, y=y, conf=0.9))
            batch[cam].append(m.FloorSample(t=t, people=seen))
        for p in people:
            if p.done:
                _buy(p, rng, t, invoices, goals)
        people = [p for p in people if not p.done]
        t += DT_S
        if t - interval_start >= INTERVAL_S:
            for cam in cover:
                msg = m.FloorPositions(
                    camera_id=cam,
                    run_id=run[cam],
                    seq=seq[cam],
                    interval_start=interval_start,
                    interval_s=INTERVAL_S,
                    samples=batch[cam],
                )
                ingest.handle(topics.floor(cam), msg.to_bytes(), now=t)
                seq[cam] += 1
                sent += 1
                batch[cam] = []
            interval_start = t
    ingest.close()
    _store_sales(conn, invoices)
    return {
        "shoppers": pid,
        "messages": sent,
        "invoices": len(invoices),
        "handovers": ingest.journeys.handovers,
    }


def _buy(
    p: _Shopper,
    rng: random.Random,
    t: float,
    out: list[pos_store.Invoice],
    goals: Mapping[str, tuple[float, tuple[float, float], float, float]],
) -> None:
    """At the till: one invoice with a line per visited zone the shopper buys from."""
    if "till" not in p.zones:
        return
    lines = []
    for name in p.zones:
        if name in goals:
            _, _, buy, price = goals[name]
            if rng.random() < buy:
                lines.append(pos_store.Line(f"SIM-{name.upper()}", name, 1, price))
    if lines:
        out.append(
            pos_store.Invoice(
                invoice_no=f"S{int(t)}-{p.pid}",
                customer_id=f"sim{p.pid}",
                invoiced_at=datetime.fromtimestamp(t),
                country="XX",
                cancellation=False,
                lines=lines,
            )
        )


def _store_sales(conn: sqlite3.Connection, invoices: list[pos_store.Invoice]) -> None:
    def category(code: str, _description: str) -> str:
        return code.removeprefix("SIM-").lower()

    with db.write(conn):
        pos_store.insert_invoices(conn, invoices, cast(Categorizer, category), "store_sim")


def local_start(day: str, hour: int = 9) -> float:
    """Epoch seconds of ``hour``:00 local time on ``day`` (YYYY-MM-DD)."""
    return time.mktime(time.strptime(f"{day} {hour:02d}:00:00", "%Y-%m-%d %H:%M:%S"))
