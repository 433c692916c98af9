"""Zone visits: the hysteresis state machine's edges, staff exclusion, cross-camera journeys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hub.floor.ingest import FloorIngest
from hub.floor.zones import Journeys, TrackZones, Visit, ZoneSet, merge_visits, transitions
from hub.store import db
from storesense.topics import Topics
from tests.hub.floor_synth import T0, floor_cfg, messages

CFG = floor_cfg()
ZONES = ZoneSet(list(CFG.zones), CFG.floor.zone_margin_m)  # denim = [0,4] x [0,4]


def run(track: list[tuple[float, float, float]]) -> list[Visit]:
    """Feed (t, x, y) frames to one track and end it; its visits to real zones."""
    tz = TrackZones(ZONES, CFG.floor)
    for t, x, y in track:
        strict, loose = ZONES.inside(np.array([x]), np.array([y]))
        tz.step(t, strict[:, 0], loose[:, 0])
    return tz.end()


def frames(t0: float, t1: float, pos, fps: float = 2.0):
    n = round((t1 - t0) * fps)
    return [(t0 + i / fps, *pos(t0 + i / fps)) for i in range(n)]


def test_passer_by_shorter_than_enter_threshold_is_no_visit():
    # 1.5 s inside denim (enter threshold 2 s), then away
    track = frames(0, 1.5, lambda t: (2.0, 2.0)) + frames(1.5, 10, lambda t: (7.0, 6.0))
    assert run(track) == []


def test_standing_on_the_border_with_jitter_is_one_visit():
    # on denim's right edge x=4, jittering ±0.15 m for a minute (inside the 0.3 m buffer)
    rng = np.random.default_rng(3)
    track = [(t, 4.0 + rng.uniform(-0.15, 0.15), 2.0) for t in np.arange(0, 60, 0.5)]
    visits = run(track)
    assert len(visits) == 1
    assert visits[0].zone == "denim"


def test_leaving_and_returning_within_exit_threshold_is_the_same_visit():
    inside, away = (lambda t: (2.0, 2.0)), (lambda t: (7.0, 6.0))
    short = frames(0, 10, inside) + frames(10, 12, away) + frames(12, 20, inside)
    visits = run(short + frames(20, 30, away))
    assert visits == [Visit("denim", 0.0, 20.0)]


def test_leaving_longer_than_exit_threshold_makes_two_visits():
    inside, away = (lambda t: (2.0, 2.0)), (lambda t: (7.0, 6.0))
    track = frames(0, 10, inside) + frames(10, 14, away) + frames(14, 20, inside)
    visits = run(track + frames(20, 30, away))
    assert visits == [Visit("denim", 0.0, 10.0), Visit("denim", 14.0, 20.0)]
    assert visits[0].dwell_s == 10.0


def test_track_ending_inside_closes_the_visit_at_the_last_frame():
    visits = run(frames(0, 8, lambda t: (2.0, 2.0)))
    assert visits == [Visit("denim", 0.0, 7.5)]


def test_a_frame_older_than_the_last_one_is_ignored():
    tz = TrackZones(ZONES, CFG.floor)
    for t in (0.0, 1.0, 2.0, 3.0):
        s, b = ZONES.inside(np.array([2.0]), np.array([2.0]))
        tz.step(t, s[:, 0], b[:, 0])
    s, b = ZONES.inside(np.array([7.0]), np.array([6.0]))
    tz.step(1.5, s[:, 0], b[:, 0])  # re-delivered old frame outside: must not end the visit
    assert tz.machines[0].state == 2  # IN


def test_transitions_and_merge():
    vs = [Visit("denim", 0, 10), Visit("till", 12, 20), Visit("denim", 25, 30)]
    assert transitions(vs) == [("denim", "till"), ("till", "denim")]
    merged = merge_visits([Visit("denim", 0, 10), Visit("denim", 5, 12), Visit("denim", 30, 40)], 3)
    assert merged == [Visit("denim", 0, 12), Visit("denim", 30, 40)]


def test_a_track_id_reused_while_its_fused_partner_is_open_does_not_crash():
    """Camera a ends track 1 (fused with camera b's track 7), then reuses id 1 while b's track
    is still open: ending everything must give journeys, not a KeyError."""
    j = Journeys(ZONES, CFG.floor)
    j.track("a/1"), j.track("b/7")
    j.link(("a/1", "b/7"))
    assert j.end_tracks(["a/1"]) == []  # b/7 still open: the person goes on
    j.track("a/1")  # the id again
    assert j.end_tracks(["b/7"]) == []
    done = j.end_tracks(["a/1"])
    assert len(done) == 1 and done[0].tracks == 2
    j.track("a/1")  # and once more, after the group has ended: a new person
    assert len(j.end_tracks(["a/1"])) == 1


def test_staff_zone_marks_the_whole_person_staff():
    j = Journeys(ZONES, CFG.floor)
    tz = j.track("cam/r/1")
    for t, x, y in frames(0, 10, lambda t: (2.0, 2.0)) + frames(10, 25, lambda t: (9.0, 7.0)):
        s, b = ZONES.inside(np.array([x]), np.array([y]))
        tz.step(t, s[:, 0], b[:, 0])
    (journey,) = j.end_tracks(["cam/r/1"])
    assert journey.staff and journey.visits == ()


@pytest.fixture
def ingest(tmp_path: Path) -> FloorIngest:
    return FloorIngest(db.migrate_db(tmp_path / "hub.sqlite3"), CFG)


def _feed(ingest: FloorIngest, msgs) -> None:
    topics = Topics(CFG.store_id)
    for msg in msgs:
        ingest.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=T0 + 86400)


def test_two_cameras_seeing_one_person_in_a_zone_store_one_visit(ingest):
    # 12 s in denim, then 10 s at the till, seen by both cameras (0.2 m apart); then gone
    def path(dx):
        return lambda t: [(5, 2.0 + dx, 2.0)] if t < T0 + 12 else [(5, 8.0 + dx, 1.5)]

    msgs = messages("cam-a", T0, 22, path(0.0)) + messages("cam-b", T0, 22, path(0.2))
    msgs.sort(key=lambda msg: msg.interval_start)  # interleaved, as they would arrive
    _feed(ingest, msgs)
    _feed(
        ingest,
        messages("cam-a", T0 + 22, 10, lambda t: []) + messages("cam-b", T0 + 22, 10, lambda t: []),
    )
    rows = ingest.conn.execute(
        "SELECT person_key, zone, enter_t, exit_t FROM floor_visits ORDER BY enter_t"
    ).fetchall()
    assert [(r["zone"], r["enter_t"] - T0, r["exit_t"] - T0) for r in rows] == [
        ("denim", 0.0, 12.0),
        ("till", 12.0, 21.5),  # the track ended there: closed at its last frame
    ]
    assert len({r["person_key"] for r in rows}) == 1
    assert ingest.stats.journeys == 1


def test_staff_person_stores_no_visits(ingest):
    path = lambda t: [(1, 2.0, 2.0)] if t < T0 + 10 else [(1, 9.0, 7.0)]  # noqa: E731
    _feed(ingest, messages("cam-a", T0, 30, path) + messages("cam-a", T0 + 30, 10, lambda t: []))
    assert ingest.stats.staff_people == 1
    assert ingest.conn.execute("SELECT count(*) FROM floor_visits").fetchone()[0] == 0
