"""Coasted positions on the hub: counted in occupancy (people, not boxes), never walking anyone
into a zone, and refused beyond ``floor.coast_s``. Real SQLite file, real ingest path."""

from __future__ import annotations

from pathlib import Path

from hub.floor.ingest import FloorIngest
from hub.store import db
from storesense import messages as m
from storesense.config import parse_config
from storesense.topics import Topics

T0 = 1_700_000_000.0
NOW = T0 + 3600
FPS = 4


def _cfg(store: str, coasting: str = "coast_s: 2"):
    return parse_config(
        f"store_id: {store}\n"
        "floor: {width_m: 10, height_m: 8, cell_m: 0.5, sample_s: 1, track_gap_s: 5,\n"
        "        dwell_enter_s: 1, dwell_exit_s: 1, zone_margin_m: 0.3, staff_mark_s: 600,\n"
        f"        {coasting}}}\n"
        "zones:\n"
        "  - {name: till, kind: till, polygon: [[6, 0], [10, 0], [10, 3], [6, 3]]}\n"
    )


def _messages(mark_coasted: bool) -> list[m.FloorPositions]:
    """Person 1 stands at (5, 6) for 2 s, is missed for 1.75 s while the tracker predicts them
    at (7, 1) inside the till zone, then is seen at (5, 6) again for 2 s. Person 2 appears
    once, coasted 2.5 s: longer than the store allows."""
    run = "e" * 32
    out = []
    for k in range(6):
        samples = []
        for i in range(FPS):
            t = k + i / FPS
            if 2 <= t < 4:
                people = [
                    m.FloorPosition(
                        track_id=1,
                        x=7.0,
                        y=1.0,
                        conf=0.8,
                        coasted_s=t - 1.75 if mark_coasted else 0.0,
                    )
                ]
            else:
                people = [m.FloorPosition(track_id=1, x=5.0, y=6.0, conf=0.8)]
            if k == 1 and i == 2:
                people.append(m.FloorPosition(track_id=2, x=1.0, y=7.0, conf=0.8, coasted_s=2.5))
            samples.append(m.FloorSample(t=T0 + t, people=people))
        out.append(
            m.FloorPositions(
                camera_id="cam-a",
                run_id=run,
                seq=k,
                interval_start=T0 + k,
                interval_s=1.0,
                samples=samples,
            )
        )
    return out


def _run(
    tmp_path: Path, mark_coasted: bool, coasting: str = "coast_s: 2"
) -> tuple[FloorIngest, list[tuple]]:
    cfg = _cfg(f"c{int(mark_coasted)}", coasting)
    ingest = FloorIngest(db.migrate_db(tmp_path / f"hub-{mark_coasted}.sqlite3"), cfg)
    topic = Topics(cfg.store_id).floor("cam-a")
    for msg in _messages(mark_coasted):
        assert ingest.handle(topic, msg.to_bytes(), NOW)
    ingest.close()
    visits = [tuple(r) for r in ingest.conn.execute("SELECT zone FROM floor_visits")]
    return ingest, visits


def test_a_coasted_person_counts_in_occupancy_but_enters_no_zone(tmp_path: Path) -> None:
    ingest, visits = _run(tmp_path, mark_coasted=True)
    assert ingest.stats.coasted == 8  # t = 2.0 … 3.75 s
    assert ingest.stats.over_coasted == 1  # person 2, 2.5 s > floor.coast_s
    grid = {
        (r["ix"], r["iy"]): r["person_s"]
        for r in ingest.conn.execute("SELECT ix, iy, person_s FROM floor_grid")
    }
    assert grid[(14, 2)] == 2.0  # the two 1 s slots while predicted at (7, 1): still a person
    assert grid[(10, 12)] == 4.0  # seen at (5, 6) in the other four slots
    assert (2, 14) not in grid  # person 2 (over-coasted) never counted
    assert visits == []  # the prediction walked nobody to the till


def test_the_same_positions_seen_make_a_till_visit(tmp_path: Path) -> None:
    """The control: had those points been detections, they would have made a visit, so the
    test above shows the coasted mark is what keeps the zones clean."""
    ingest, visits = _run(tmp_path, mark_coasted=False)
    assert ingest.stats.coasted == 0
    assert visits == [("till",)]


def test_filled_positions_are_accepted_up_to_fill_gaps_s_and_no_further(tmp_path: Path) -> None:
    """A camera that fills gaps (edge.floor.smoothing) reports the filled people coasted up to
    floor.fill_gaps_s, which may exceed its forward coasting: the hub takes them up to the
    larger of the two."""
    ingest, _ = _run(tmp_path, mark_coasted=True, coasting="coast_s: 0.5, fill_gaps_s: 2")
    assert ingest.stats.coasted == 8 and ingest.stats.over_coasted == 1  # as with coast_s 2


def test_without_filling_points_coasted_past_coast_s_are_refused(tmp_path: Path) -> None:
    ingest, _ = _run(tmp_path, mark_coasted=True, coasting="coast_s: 0.5, fill_gaps_s: 0")
    # coasted 0.25 and 0.5 s are taken; 0.75 ... 2.0 s and person 2 (2.5 s) are refused
    assert ingest.stats.coasted == 2 and ingest.stats.over_coasted == 7
