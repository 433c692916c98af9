"""Occupancy grid arithmetic and camera fusion, through the real ingest path into SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hub.floor.ingest import FloorIngest
from hub.floor.occupancy import Frame, fuse, load_grid, local_day
from hub.store import db
from storesense.topics import Topics
from tests.hub.floor_synth import T0, floor_cfg, messages

NOW = T0 + 3 * 86400  # the hub clock: after every synthetic message


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.migrate_db(tmp_path / "hub.sqlite3")


def _ingest(conn: sqlite3.Connection, cfg, msgs) -> FloorIngest:
    ing = FloorIngest(conn, cfg)
    feed(ing, cfg, msgs)
    return ing


def feed(ing: FloorIngest, cfg, msgs) -> None:
    topics = Topics(cfg.store_id)
    for msg in msgs:
        ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=NOW)


def _cells(conn: sqlite3.Connection) -> dict[tuple[int, int], float]:
    rows = conn.execute("SELECT ix, iy, person_s FROM floor_grid WHERE person_s != 0")
    return {(ix, iy): ps for ix, iy, ps in rows}


def test_standing_ten_seconds_in_one_cell_is_ten_person_seconds(conn):
    cfg = floor_cfg()
    _ingest(conn, cfg, messages("cam-a", T0, 10, lambda t: [(1, 5.2, 4.7)]))
    assert _cells(conn) == {(10, 9): 10.0}  # x 5.2 / 0.5 → 10, y 4.7 / 0.5 → 9


def test_frame_rate_does_not_change_person_seconds(conn):
    cfg = floor_cfg()
    _ingest(conn, cfg, messages("cam-a", T0, 20, lambda t: [(1, 5.2, 4.7)], fps=8))
    assert _cells(conn) == {(10, 9): 20.0}


def test_walker_person_seconds_follow_the_path(conn):
    cfg = floor_cfg()
    # 0.1 m/s along y=5.1 from x=5.0: 20 s, slots of 5 s, sampled at each slot's middle frame
    _ingest(conn, cfg, messages("cam-a", T0, 20, lambda t: [(1, 5.0 + 0.1 * (t - T0), 5.1)]))
    cells = _cells(conn)
    assert sum(cells.values()) == 20.0
    assert set(cells) == {(10, 10), (11, 10), (12, 10), (13, 10)}


def test_two_cameras_seeing_one_person_count_once(conn):
    cfg = floor_cfg()
    # the same person, each camera's homography off by 0.25 m
    msgs = messages("cam-a", T0, 10, lambda t: [(7, 5.2, 4.7)]) + messages(
        "cam-b", T0, 10, lambda t: [(3, 5.45, 4.7)]
    )
    ing = _ingest(conn, cfg, msgs)
    cells = _cells(conn)
    assert sum(cells.values()) == 10.0
    assert ing.grid.stats.late_frames == 0


def test_two_cameras_two_people_apart_count_twice(conn):
    cfg = floor_cfg()
    both = lambda t: [(1, 2.2, 2.2), (2, 7.2, 5.2)]  # noqa: E731
    msgs = messages("cam-a", T0, 10, both) + messages("cam-b", T0, 10, both)
    _ingest(conn, cfg, msgs)
    assert _cells(conn) == {(4, 4): 10.0, (14, 10): 10.0}


def test_late_camera_refuses_the_slot_without_double_counting(conn):
    cfg = floor_cfg()
    ing = _ingest(conn, cfg, messages("cam-a", T0, 10, lambda t: [(1, 5.2, 4.7)]))
    assert sum(_cells(conn).values()) == 10.0
    # cam-b's outbox replays the same 10 s later: the person is the same, the total stays
    feed(ing, cfg, messages("cam-b", T0, 10, lambda t: [(9, 5.3, 4.8), (10, 1.2, 1.2)]))
    cells = _cells(conn)
    assert cells[(2, 2)] == 10.0  # the second person only cam-b saw
    assert sum(cells.values()) == 20.0


def test_data_older_than_late_s_is_counted_not_fused(conn):
    cfg = floor_cfg()  # late_s = 600 s by default
    ing = _ingest(conn, cfg, messages("cam-a", T0 + 1000, 5, lambda t: [(1, 5.2, 4.7)]))
    feed(ing, cfg, messages("cam-b", T0, 5, lambda t: [(1, 1.2, 1.2)]))
    assert ing.grid.stats.late_frames == 10
    assert _cells(conn) == {(10, 9): 5.0}


def test_duplicate_message_has_no_second_effect(conn):
    cfg = floor_cfg()
    msgs = messages("cam-a", T0, 10, lambda t: [(1, 5.2, 4.7)])
    ing = _ingest(conn, cfg, msgs)
    feed(ing, cfg, msgs)
    assert ing.stats.duplicates == len(msgs)
    assert _cells(conn) == {(10, 9): 10.0}


def test_staff_zone_time_removes_the_track_from_the_grid(conn):
    cfg = floor_cfg()
    # 10 s on the shop floor, then 15 s in the staff office (> staff_mark_s = 10 s)
    path = lambda t: [(1, 5.2, 4.7)] if t < T0 + 10 else [(1, 9.0, 7.0)]  # noqa: E731
    ing = _ingest(conn, cfg, messages("cam-a", T0, 25, path))
    assert _cells(conn) == {}  # the shop-floor time went back out once they proved staff
    assert ing.stats.staff_area > 0


def test_points_off_the_floor_are_counted_and_dropped(conn):
    cfg = floor_cfg()
    ing = _ingest(conn, cfg, messages("cam-a", T0, 5, lambda t: [(1, 12.0, 4.0), (2, 1.2, 1.2)]))
    assert ing.stats.off_floor == 10
    assert _cells(conn) == {(2, 2): 5.0}


def test_fuse_never_merges_two_points_of_one_camera():
    fr = Frame("a", 0.0, np.array([[1.0, 1.0], [1.2, 1.0]]), np.array([0.9, 0.9]), ("p", "q"))
    assert len(fuse([fr], 0.8)) == 2
    other = Frame("b", 0.0, np.array([[1.1, 1.0]]), np.array([0.9]), ("r",))
    clusters = fuse([fr, other], 0.8)
    assert len(clusters) == 2
    assert sorted(len(c.members) for c in clusters) == [1, 2]


def test_fuse_assignment_is_optimal_not_greedy():
    # greedy nearest-first would pair b's first point with a's second and leave one unmatched
    a = Frame("a", 0.0, np.array([[0.0, 0.0], [1.0, 0.0]]), np.ones(2), ("a1", "a2"))
    b = Frame("b", 0.0, np.array([[0.6, 0.0], [1.5, 0.0]]), np.ones(2), ("b1", "b2"))
    clusters = fuse([a, b], 0.7)
    assert sorted(c.members for c in clusters) == [("a1", "b1"), ("a2", "b2")]


def test_load_grid_averages_over_observed_days(conn):
    cfg = floor_cfg()
    day2 = T0 + 86400
    _ingest(conn, cfg, messages("cam-a", T0, 10, lambda t: [(1, 5.2, 4.7)]))
    _ingest(conn, cfg, messages("cam-a", day2, 20, lambda t: [(1, 5.2, 4.7)], run_id="1" * 32))
    grid, observed = load_grid(conn, cfg.floor, [local_day(T0), local_day(day2)])
    assert grid.shape == (16, 20)
    assert grid[9, 10] == 15.0  # (10 + 20) / 2 days
    assert observed == 15.0
    grid1, _ = load_grid(conn, cfg.floor, [local_day(T0), "1999-01-01"])  # no data that day
    assert grid1[9, 10] == 10.0
