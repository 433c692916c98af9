"""hub.floor.analysis / kpis / the spatial helpers: the rules behind the advice, one by one.

The end-to-end checks against planted truth are in tests/storesense_tools/test_store_sim.py.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from hub.floor.analysis import _Floor, analyse, confidence, insights_json
from hub.floor.insights import access_cells, walk_reach
from hub.floor.kpis import VisitRow, arrivals_from, busiest_hours, footfall, period_kpis, trends
from hub.store import db
from storesense.config import parse_config
from storesense_tools.store_sim import local_start


def test_confidence_levels_and_caps():
    cams = ["cam-a"]
    assert confidence(30_000, 7200, 60, 0.9, cams, False)[0] == "high"
    level, why = confidence(30_000, 7200, 60, None, cams, False)
    assert level == "medium" and "unknown" in why and "measured detection recall" in why
    assert confidence(10_000, 7200, 60, 0.9, cams, False)[0] == "medium"
    assert confidence(30_000, 7200, 10, 0.9, cams, False)[0] == "low"
    assert confidence(30_000, 7200, 60, 0.5, cams, False)[0] == "low"
    level, why = confidence(30_000, 7200, 500, 0.99, cams, True)
    assert level == "low" and "less than 2.0 h" in why


def test_store_without_floor_cameras_says_so(tmp_path):
    cfg = parse_config("store_id: nofloor\n")
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    a = analyse(conn, cfg, date(2026, 11, 2), date(2026, 11, 2))
    assert not a.has_floor_cameras and a.provisional
    assert "no floor camera" in (a.provisional_reason or "")
    doc = insights_json(a)
    assert doc["insights"] == [] and doc["not_observed"] == []
    assert doc["period"]["observed_s"] == 0


def test_unknown_coverage_claims_nothing_unobserved(tmp_path):
    cfg = parse_config(
        "store_id: nocov\ncameras: [{id: cam-a, role: floor, source: x}]\n"
        "floor: {width_m: 6, height_m: 4}\n"
    )
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    a = analyse(conn, cfg, date(2026, 11, 2), date(2026, 11, 8))
    assert a.has_floor_cameras and not a.coverage_known
    assert a.not_observed == []
    assert any("not configured" in n for n in a.notes)
    assert a.provisional and a.kpis.previous is None


def test_walking_distance_goes_round_a_shelf():
    walkable = np.ones((10, 10), dtype=bool)
    walkable[5, 0:9] = False  # a shelf across the floor, open at the right end
    region = np.zeros_like(walkable)
    region[6:10, 0:3] = True  # the zone behind it, bottom-left
    near = walk_reach(region, walkable, 1.0, 0.5)  # 2 cells
    assert not near[0:5].any()  # never through the shelf
    assert near[6:10, 3:5].all()
    gate = access_cells(region, walkable)
    assert gate.sum() == 4  # open only towards the right: its side of 4 cells


def test_kpi_figures():
    day = local_start("2026-11-02", 10)
    rows = [
        VisitRow("p1", "door", day, day + 3),
        VisitRow("p1", "aisle", day + 5, day + 20),
        VisitRow("p1", "back", day + 25, day + 30),
        VisitRow("p2", "door", day + 3600, day + 3603),
        VisitRow("p2", "back", day + 3610, day + 3650),
        VisitRow("p3", "door", day + 3700, day + 3702),
    ]
    cfg = parse_config(
        "store_id: k\nfloor: {width_m: 6, height_m: 4}\nzones:\n"
        "  - {name: door, kind: entrance, polygon: [[0,0],[1,0],[1,1]]}\n"
        "  - {name: aisle, polygon: [[2,0],[3,0],[3,1]]}\n"
        "  - {name: back, polygon: [[4,0],[5,0],[5,1]]}\n"
    )
    assert footfall(cfg.zones, rows) == 3
    assert busiest_hours(rows, ["door"]) == [(11, 2), (10, 1)]
    assert arrivals_from(rows, "back") == {"aisle": 1, "door": 1}
    assert footfall([z for z in cfg.zones if z.kind != "entrance"], rows) is None


@pytest.mark.parametrize("bad", [(date(2026, 11, 3), date(2026, 11, 2))])
def test_period_must_be_in_order(tmp_path, bad):
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    with pytest.raises(ValueError, match="before start"):
        analyse(conn, parse_config("store_id: o\n"), *bad)


WHERE_YAML = """store_id: w
floor:
  width_m: 10
  height_m: 8
  plan:
    entrances: [{name: front door, at: [5, 0]}]
    fixtures:
      - {name: display table, kind: table, polygon: [[4, 3], [6, 3], [6, 4], [4, 4]]}
      - {kind: shelf, polygon: [[0, 7], [3, 7], [3, 7.5], [0, 7.5]]}
zones:
  - {name: kitchen, polygon: [[0, 5], [4, 5], [4, 8], [0, 8]]}
"""


def test_places_are_named_by_fixture_and_zone_not_by_coordinates():
    """Issue 12 item 2: "at the front of the display table", "by the kitchen shelf"; the
    side facing the way in is the front."""
    cfg = parse_config(WHERE_YAML)
    g = _Floor(cfg, (16, 20), [])
    assert g.where(5.0, 2.5) == "at the front of the display table"  # door side (y 0)
    assert g.where(5.0, 4.6) == "behind the display table"
    assert g.where(6.6, 3.5) == "beside the display table"
    assert g.where(1.5, 6.5) == "at the front of the shelf, in 'kitchen'"  # named by kind
    assert g.where(1.0, 5.2) == "in 'kitchen', 1.8 m from the shelf"
    assert g.where(9.5, 0.5) == "on the open floor, 4.5 m from the front door"
    assert g.where(6.5, 6.0) == "on the open floor, 2.5 m from 'kitchen'"
    for x, y in ((5.0, 2.5), (1.5, 6.5), (9.5, 0.5)):
        assert "x " not in g.where(x, y) and "(" not in g.where(x, y)


def test_store_figures_have_one_definition():
    """The report's tiles come from hub.floor.kpis: zone visits leave out the door and the
    staff room, busiest hours count people arriving (entrance visits), footfall counts
    people through the door, conversion is the observed zones' sales over their visits."""
    day = local_start("2026-11-02", 10)
    cfg = parse_config(
        "store_id: k\nfloor: {width_m: 6, height_m: 4}\nzones:\n"
        "  - {name: door, kind: entrance, polygon: [[0,0],[1,0],[1,1]]}\n"
        "  - {name: aisle, polygon: [[2,0],[3,0],[3,1]], categories: [food]}\n"
        "  - {name: office, kind: staff, polygon: [[4,0],[5,0],[5,1]]}\n"
    )
    rows = [
        VisitRow("p1", "door", day, day + 3),
        VisitRow("p1", "aisle", day + 5, day + 25),
        VisitRow("p1", "aisle", day + 40, day + 50),
        VisitRow("p2", "door", day + 3600, day + 3603),
        VisitRow("p2", "aisle", day + 3610, day + 3640),
        VisitRow("p3", "aisle", day + 3700, day + 3702),  # never seen at the door
        VisitRow("p4", "office", day + 3800, day + 3900),
    ]
    k = period_kpis(list(cfg.zones), rows, {"food": 80.0}, {}, 1, 3 * 3600)
    assert k.footfall == 2 and k.people == 4
    assert k.visits == 4  # aisle only: the door and the office are not zone visits
    assert k.dwell_median_s == 15.0  # of 20, 10, 30, 2 s
    assert k.busiest_hours == [(10, 1), (11, 1)]  # people arriving through the door
    assert k.conversion == 20.0  # 80 / 4 aisle visits
    before = period_kpis(list(cfg.zones), rows[:3], {"food": 80.0}, {}, 1, 3 * 3600)
    from dataclasses import replace

    change = trends(replace(k, previous=before))
    assert change["footfall_per_day"] == pytest.approx(1.0)  # 2 people against 1
    assert change["visits_per_day"] == pytest.approx(1.0)  # 4 aisle visits against 2


def test_two_spots_by_the_same_fixture_are_told_apart():
    g = _Floor(parse_config(WHERE_YAML), (16, 20), [])
    near, far = (5.0, 2.5), (4.2, 2.6)
    assert g.where(*near) == g.where(*far)
    a, b = g.places([near, far])
    assert a == "at the front of the display table, 2.5 m from the front door"
    assert b == "at the front of the display table, 2.7 m from the front door"
    assert g.places([near, (9.5, 0.5)])[0] == "at the front of the display table"


def test_time_in_a_spot_reads_in_seconds_under_a_minute():
    """The demo's live day (9 s of camera time) read "shoppers spend 0.0 minutes a day"."""
    from hub.floor.analysis import _spent

    assert _spent(0.1) == "6 seconds" and _spent(1 / 60) == "1 second"
    assert _spent(0.0) == "0 seconds"
    assert _spent(4.9) == "4.9 minutes" and _spent(12.8) == "13 minutes"
