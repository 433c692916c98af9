"""The headless demo end to end: embedded broker, hub, real face pipeline on the bundled door
clip, the winning phone's customer card, and a real floor camera (SSDLite) on the store-aisle
clip feeding today's floor report."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image

from storesense.paths import hub_db_path
from storesense_tools.cli import main
from storesense_tools.demo import DEMO_CUSTOMER, STAFF

DEMO_ZONES = {"left shelves", "display table", "right shelves"}


def test_headless_demo_alerts_cards_and_floor_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "--home",
            str(tmp_path / "home"),
            "demo",
            "--headless",
            "--seconds",
            # two arrivals: each is the 3.4 s clip and a 9 s empty doorway, after the models
            # load (demo.ARRIVAL_GAP_S; 12 s of demo left room for only one on a loaded machine)
            "30",
            "--out",
            str(out),
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0
    assert summary["arrivals"] >= 2
    alerts = summary["alerts"]
    # the enrolled walker is recognised on every arrival; the other two walkers never match
    assert len(alerts) == summary["arrivals"]
    assert {a["customer_id"] for a in alerts} == {DEMO_CUSTOMER[0]}
    assert summary["unknown_visitors"] >= 2 * summary["arrivals"]
    for a in alerts:
        assert a["claimed_by"] in STAFF
        assert a["claim_attempts"] == len(STAFF)  # all three phones raced
        assert a["phones_alerted"] == len(STAFF)
        assert 0 < a["latency_ms"] < 5000
    won = sum(r.count("won") for r in summary["claim_results"].values())
    taken = sum(r.count("taken") for r in summary["claim_results"].values())
    assert (won, taken) == (len(alerts), 2 * len(alerts))
    assert summary["hub"]["rejected"] == {}
    # the door camera sealed every track (storesense.face_seal), the hub opened every one
    received = summary["hub"]["received"]
    assert received["sealed_face_track"] == received["face_track"] > 0
    assert "face_track_plain" not in received
    # no face image is left behind in the demo home
    assert not [p for p in (tmp_path / "home").rglob("*") if p.suffix in (".png", ".jpg")]

    # the winner of every claim opened the customer card, as the phone app does
    assert summary["card_errors"] == []
    for a in alerts:
        card = a["card"]
        assert card["customer_id"] == DEMO_CUSTOMER[0] and card["name"] == DEMO_CUSTOMER[1]
        assert card["totals"]["baskets"] == 5 and card["recent_baskets"]
        assert card["loyalty"]["tier"] == "Silver" and card["loyalty"]["points"] > 0
        assert {b["kind"] for b in card["active_bonuses"]} >= {"birthday", "promotion"}
        assert card["usual_items"] and card["new_for_you"]
        bought = {ln["stock_code"] for b in card["recent_baskets"] for ln in b["lines"]}
        assert not {i["stock_code"] for i in card["new_for_you"]} & bought
    # one audit row per card view: who, which customer, why (the alert they claimed)
    conn = sqlite3.connect(hub_db_path(tmp_path / "home"))
    audit = conn.execute(
        "SELECT actor, customer_id, detail FROM audit WHERE action = 'view_profile'"
    ).fetchall()
    conn.close()
    assert sorted(audit) == sorted(
        (a["claimed_by"], DEMO_CUSTOMER[0], f"claimed alert {a['alert_id']}") for a in alerts
    )
    # the floor camera ran alongside the door and its positions reached the hub
    floor = summary["floor"]
    assert floor["messages_received"] > 0 and floor["positions_received"] > 0
    assert summary["hub"]["received"]["floor_positions"] == floor["messages_received"]
    report = Path(floor["report_dir"])
    assert report == out / "report"
    png = np.asarray(Image.open(report / "heatmap.png").convert("L"), dtype=np.float64)
    assert png.std() > 10  # a picture, not a blank canvas
    with open(report / "zones.csv", newline="") as fh:
        zones = {row["zone"]: row for row in csv.DictReader(fh)}
    assert set(zones) == DEMO_ZONES
    person_s = [float(z["person_s_per_day"]) for z in zones.values()]
    assert max(person_s) > 0 and min(person_s) < max(person_s)  # occupancy is not uniform
    insights = json.loads((report / "insights.json").read_text())
    assert insights["observed_s_per_day"] > 0 and insights["sales_source"] == "pos"
    assert (report / "report.html").is_file()
    # issue 12: the live clip's day is provisional, the week with the labelled synthetic
    # history is not, and shows a trend; both pages say demo data; the plan is drawn
    assert insights["provisional"] is True and insights["demo_data"]
    assert (report / "report.pdf").read_bytes()[:5] == b"%PDF-"
    week = json.loads((out / "report-week" / "insights.json").read_text())
    assert week["provisional"] is False and week["demo_data"]
    assert week["days_with_data"] == 4  # three synthetic days and today
    assert any(v is not None for v in insights["trends"].values())  # against a week ago
    page = (out / "report-week" / "report.html").read_text()
    assert "Demo data." in page and "synthetic" in page
    assert floor["synthetic_history_messages"] > 0
