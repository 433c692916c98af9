"""Hand-over between cameras (hub/floor/zones.py): a shopper who walks from one camera's view
into the next across a narrow overlap is one person, through the hub's real ingest and a real
SQLite file; two different people are never joined."""

from __future__ import annotations

from pathlib import Path

from hub.floor.ingest import FloorIngest
from hub.store import db
from storesense.config import StoreConfig
from storesense.topics import Topics
from storesense_tools.store_sim import position_on_route
from tests.hub.floor_synth import T0, floor_cfg, messages

NOW = T0 + 86400
SPLIT = 5.0  # cam-a sees x < 5.25, cam-b x > 5: a 0.25 m overlap, crossed in a quarter second


def _walkers(routes: dict[int, tuple[float, list[tuple[float, float, float]]]]):
    def at(t: float) -> list[tuple[int, float, float]]:
        out = []
        for tid, (start, route) in routes.items():
            p = position_on_route(route, start, t)
            if p is not None:
                out.append((tid, *p))
        return out

    return at


def _feed(tmp: Path, cfg: StoreConfig, who, seconds: float, b_first: bool = False) -> list:
    def seen_by(lo: float, hi: float, offset: int):
        return lambda t: [(tid + offset, x, y) for tid, x, y in who(t) if lo <= x < hi]

    a = messages("cam-a", T0, seconds, seen_by(0, SPLIT + 0.25, 0), run_id="a" * 32)
    b = messages("cam-b", T0, seconds, seen_by(SPLIT, 10, 100), run_id="b" * 32)
    # in each interval the cameras' messages arrive in either order
    msgs = sorted(a + b, key=lambda m: (m.interval_start, (m.camera_id == "cam-a") == b_first))
    conn = db.migrate_db(tmp / "hub.sqlite3")
    ing = FloorIngest(conn, cfg)
    for m in msgs:
        ing.handle(Topics(cfg.store_id).floor(m.camera_id), m.to_bytes(), now=NOW)
    ing.close()
    rows = [
        tuple(r)
        for r in conn.execute(
            "SELECT person_key, zone FROM floor_visits ORDER BY person_key, enter_t"
        )
    ]
    conn.close()
    return rows


def test_walking_from_one_view_into_the_next_is_one_person(tmp_path):
    cfg = floor_cfg()
    # denim (x 0-4) on cam-a, the till (x 6-10) on cam-b; in at (1, 5), out the same way
    route = [(1.0, 5.0, 0), (2.0, 2.0, 20), (8.0, 1.5, 15), (1.0, 5.0, 0)]
    who = _walkers({1: (T0 + 2, route), 2: (T0 + 40, route)})
    for b_first in (False, True):
        rows = _feed(tmp_path / str(b_first), cfg, who, 120, b_first)
        people = {p for p, _ in rows}
        assert len(people) == 2, (b_first, rows)  # not 4 (there) or 6 (there and back)
        for p in people:
            assert [z for q, z in rows if q == p] == ["denim", "till"], rows


def test_two_people_far_apart_or_minutes_apart_stay_two(tmp_path):
    """One leaves cam-a's view at the overlap; another appears on cam-b 3 m away at the same
    moment, a third at the same place 20 s later: neither continues the first."""
    cfg = floor_cfg()
    who = _walkers(
        {
            1: (T0 + 2, [(2.0, 2.0, 10), (5.6, 2.0, 0)]),  # into the overlap, then gone
            2: (T0 + 15.5, [(5.6, 5.0, 5), (8.0, 1.5, 15)]),  # appears 3 m away, same time
            3: (T0 + 35, [(5.6, 2.0, 0), (8.0, 1.5, 15)]),  # same place, 20 s later
        }
    )
    rows = _feed(tmp_path, cfg, who, 90)
    people = {p for p, _ in rows}
    assert len(people) == 3, rows
