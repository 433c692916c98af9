"""The advice against planted truth: a simulated store fed through the hub's real floor ingest
and POS store into a real SQLite file, then ``hub.floor.analysis`` (issue 12, "Checks")."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import Point, Polygon

from hub.floor.analysis import Analysis, analyse, insights_json
from hub.store import db
from storesense_tools.store_sim import (
    ATTRACTORS,
    HOT_SPOT,
    local_start,
    simulate,
    store_config,
)

DAY = "2026-11-02"
KINDS = {"advertising", "new_product", "cold_region", "high_footfall_low_sales"}
CODES = {"off_main_path", "few_entries", "short_dwell", "no_sales", "narrow_access"}


TRUTH: dict[float, dict] = {}  # hours -> what simulate() planted (shoppers = true footfall)


def _run(tmp: Path, hours: float) -> Analysis:
    cfg = store_config()
    conn = db.migrate_db(tmp / "hub.sqlite3")
    got = simulate(conn, cfg, local_start(DAY), hours * 3600, seed=7)
    assert got["messages"] > 0 and got["invoices"] > 0
    TRUTH[hours] = got
    d = date.fromisoformat(DAY)
    a = analyse(conn, cfg, d, d)
    conn.close()
    return a


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Analysis]:
    return {h: _run(tmp_path_factory.mktemp(f"h{h}"), h) for h in (8.2, 2.5, 0.5)}


def test_footfall_across_two_overlapping_cameras(runs, tmp_path):
    """Everyone walks from cam-b's door area across the 0.5 m overlap (x 3–3.5 m) into
    cam-a's view and back: too fast for fusion to link them (Journeys.LINK_SLOTS), so before
    the hand-over between cameras each crossing made a new person: 1,053 counted for 971
    shoppers (+8.4 %). With it the error left is people who vanish into the uncovered books
    zone for 15–25 s and come back (no camera can link those): +4.1 % here, +0.3 % when
    nobody goes there (1 h: 139 for 138)."""
    truth, got = TRUTH[8.2]["shoppers"], runs[8.2].kpis.footfall
    assert got is not None and TRUTH[8.2]["handovers"] > truth  # in and out: 2+ each
    assert abs(got - truth) / truth <= 0.05, (got, truth)
    no_books = {k: v for k, v in ATTRACTORS.items() if k != "books"}
    cfg = store_config()
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    sim = simulate(conn, cfg, local_start(DAY), 3600, seed=7, attractors=no_books)
    d = date.fromisoformat(DAY)
    k = analyse(conn, cfg, d, d).kpis
    conn.close()
    assert k.footfall is not None and sim["shoppers"] > 100
    assert abs(k.footfall - sim["shoppers"]) / sim["shoppers"] <= 0.02, (k.footfall, sim)
    # journeys are no longer split at the overlap (before: 2.3 people per shopper; now 146
    # for 138 in this run)
    assert k.people <= 1.1 * sim["shoppers"]


def test_top_advertising_spot_is_the_planted_hot_spot(runs):
    a = runs[8.2]
    top = a.of_kind("advertising")[0]
    assert top.rank == 1
    assert Polygon(top.polygon).distance(Point(HOT_SPOT)) == 0
    assert "formula" not in top.advice and "×" not in top.advice.replace("2 m × 2 m", "")
    assert top.evidence["time_in_spot"].unit == "min/day"


def test_planted_cold_zone_with_its_reasons(runs):
    cold = runs[8.2].of_kind("cold_region")
    assert [c.zone for c in cold] == ["garden"]
    codes = {r.code for r in cold[0].reasons}
    assert {"narrow_access", "off_main_path", "few_entries"} <= codes
    gap = next(r for r in cold[0].reasons if r.code == "narrow_access")
    assert gap.value == pytest.approx(1.0)  # the planted 1 m gap
    assert "1.0 m" in gap.text
    # each reason carries its number in the sentence
    few = next(r for r in cold[0].reasons if r.code == "few_entries")
    assert "arrive from" in few.text


def test_high_footfall_low_sales_zone_found(runs):
    hfls = runs[8.2].of_kind("high_footfall_low_sales")
    assert hfls and hfls[0].zone == "toys"
    assert hfls[0].evidence["conversion"].value == 0
    assert all(i.zone != "kitchen" for i in hfls)


def test_uncovered_zone_is_not_observed_not_cold(runs):
    a = runs[8.2]
    books = Polygon([(0, 5.5), (3, 5.5), (3, 8), (0, 8)])
    assert any(Polygon(p).intersection(books).area > 0.9 * books.area for p in a.not_observed)
    assert all(c.zone != "books" for c in a.of_kind("cold_region"))
    k = a.kpis.zone("books")
    assert k is not None and not k.observed


def test_confidence_falls_as_observed_time_shrinks(runs):
    order = {"high": 2, "medium": 1, "low": 0}

    def top(a: Analysis) -> str:
        return a.of_kind("advertising")[0].confidence

    assert (top(runs[8.2]), top(runs[2.5]), top(runs[0.5])) == ("high", "medium", "low")
    assert not runs[8.2].provisional and not runs[2.5].provisional
    short = runs[0.5]
    assert short.provisional and "min of camera time" in (short.provisional_reason or "")
    assert all(order[i.confidence] == 0 for i in short.insights)
    assert "less than 2.0 h" in short.insights[0].confidence_reason


def test_insights_json_contract(runs, tmp_path):
    doc = json.loads(json.dumps(insights_json(runs[2.5])))
    assert set(doc) == {"period", "provisional", "provisional_reason", "insights", "not_observed"}
    assert doc["period"] == {"start": DAY, "end": DAY, "observed_s": pytest.approx(9000, abs=60)}
    assert doc["provisional"] is False and doc["provisional_reason"] is None
    for i in doc["insights"]:
        assert i["kind"] in KINDS
        keys = {"kind", "rank", "advice", "evidence", "confidence", "confidence_reason"}
        assert set(i) >= keys | {"zone", "polygon"}
        assert i["zone"] is None or isinstance(i["zone"], str)
        assert isinstance(i["advice"], str) and isinstance(i["confidence_reason"], str)
        assert i["confidence"] in {"high", "medium", "low"}
        assert all(set(e) == {"value", "unit"} for e in i["evidence"].values())
        assert all(isinstance(e["value"], int | float) for e in i["evidence"].values())
        assert all(isinstance(e["unit"], str) and e["unit"] for e in i["evidence"].values())
        assert len(i["polygon"]) >= 3
        if i["kind"] == "cold_region":
            assert i["reasons"] and {r["code"] for r in i["reasons"]} <= CODES
            assert all(set(r) == {"code", "text", "value"} for r in i["reasons"])
        else:
            assert "reasons" not in i
    ranks = [i["rank"] for i in doc["insights"] if i["kind"] == "advertising"]
    assert ranks == [1, 2, 3]


def test_kpis(runs):
    k = runs[2.5].kpis
    assert k.footfall is not None and k.footfall > 100
    assert k.busiest_hours[0][0] in (9, 10, 11)
    kitchen = k.zone("kitchen")
    assert kitchen is not None and kitchen.sales and kitchen.conversion
    assert kitchen.dwell_median_s is not None and 20 <= kitchen.dwell_median_s <= 45
    assert kitchen.dwell_p90_s is not None and kitchen.dwell_p90_s >= kitchen.dwell_median_s
