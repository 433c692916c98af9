"""hub.floor.analysis / kpis / the spatial helpers: the rules behind the advice, one by one.

The end-to-end checks against planted truth are in tests/storesense_tools/test_store_sim.py.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from hub.floor.analysis import analyse, confidence, insights_json
from hub.floor.insights import access_cells, walk_reach
from hub.floor.kpis import VisitRow, arrivals_from, busiest_hours, footfall
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
