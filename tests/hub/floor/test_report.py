"""The nightly report from a simulated store day: files, picture, figures, insights, CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub.floor.ingest import FloorIngest
from hub.floor.occupancy import local_day
from hub.floor.report import REPORT_FILES, build_report, latest_report
from hub.store import db
from storesense.topics import Topics
from storesense_tools import cli
from tests.hub.floor_synth import T0, floor_cfg, messages, shoppers

SECONDS = 240


@pytest.fixture(scope="module")
def store_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A hub database holding 4 simulated minutes of 12 shoppers seen by two cameras."""
    home = tmp_path_factory.mktemp("home")
    cfg = floor_cfg()
    conn = db.migrate_db(home / "hub.sqlite3")
    ing = FloorIngest(conn, cfg)
    who = shoppers(12, seed=5, seconds=SECONDS)
    msgs = messages("cam-a", T0, SECONDS, who) + messages(
        "cam-b", T0, SECONDS, lambda t: [(p, x + 0.1, y) for p, x, y in who(t)]
    )
    msgs.sort(key=lambda msg: msg.interval_start)
    topics = Topics(cfg.store_id)
    for msg in msgs:
        ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=T0 + 86400)
    ing.close()
    conn.close()
    return home, cfg


def test_report_files_picture_and_figures(store_day, tmp_path):
    home, cfg = store_day
    conn = db.migrate_db(home / "hub.sqlite3")
    day = np.datetime64(local_day(T0)).astype(object)
    res = build_report(conn, cfg, day, tmp_path, sales_per_day={"bags": 300.0, "toys": 900.0})
    for name in REPORT_FILES:
        assert (tmp_path / name).stat().st_size > 0, name

    img = np.asarray(Image.open(tmp_path / "heatmap.png").convert("RGB")).astype(float)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert img.std() > 20  # not a uniform picture
    # the colour-bar legend: a tall strip on the right whose colour runs dark → bright
    strip = img[:, int(img.shape[1] * 0.80) : int(img.shape[1] * 0.95)]
    rows_with_many_colours = (strip.std(axis=1).sum(axis=1) > 30).sum()
    assert rows_with_many_colours > img.shape[0] * 0.3
    assert "seconds people spent a day" in res.colorbar_label

    zones = {r["zone"]: r for r in csv.DictReader((tmp_path / "zones.csv").open())}
    assert set(zones) == {"denim", "till", "office"}
    assert float(zones["denim"]["visits_per_day"]) == 12  # every shopper, once, both cameras
    assert float(zones["till"]["visits_per_day"]) == 12
    assert 15 <= float(zones["denim"]["median_dwell_s"]) <= 60
    assert float(zones["till"]["revenue_per_visit"]) == 75.0  # 900 / 12
    assert zones["office"]["visits_per_day"] == "0.0"

    doc = json.loads((tmp_path / "insights.json").read_text())
    assert doc["transitions"][0] == {"from": "denim", "to": "till", "count": 12}
    # person-seconds on the floor: each shopper's time, never doubled by the second camera
    assert 12 * 20 <= doc["person_s_per_day"] <= 12 * 100
    # one definition of the figures (hub.floor.kpis): the tiles, the zone table and zones.csv
    # agree with the analysis's KPIs
    assert doc["kpis"]["visits_per_day"] == 24  # denim 12 + till 12 (not the staff office)
    assert doc["kpis"]["footfall_source"] == "people seen in any zone"  # no entrance zone
    assert doc["kpis"]["footfall_per_day"] == 12
    assert sum(b["arrivals"] for b in doc["kpis"]["busiest_hours"]) == 12  # people arriving
    assert doc["kpis"]["conversion"] == 50.0  # (300 + 900) / 24 visits
    assert [z["visits_per_day"] for z in doc["zones"]] == [12, 12, 0]
    kinds = [i["kind"] for i in doc["insights"]]
    assert kinds.count("advertising") == 3  # R1's analysis, in the issue-12 contract
    for i in doc["insights"]:
        assert {"kind", "rank", "advice", "evidence", "confidence", "zone", "polygon"} <= set(i)
    assert doc["provisional"] is True and "4 min" in doc["provisional_reason"]
    assert all(i["confidence"] == "low" for i in doc["insights"])  # 4 minutes observed
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "Where to advertise" in html


def test_report_over_a_plan_image(store_day, tmp_path):
    home, cfg = store_day
    plan = tmp_path / "plan.png"
    Image.new("RGB", (500, 400), (200, 220, 240)).save(plan)  # 10 x 8 m at 50 px/m
    conn = db.migrate_db(home / "hub.sqlite3")
    day = np.datetime64(local_day(T0)).astype(object)
    build_report(conn, cfg, day, tmp_path / "r", plan_image=plan)
    img = np.asarray(Image.open(tmp_path / "r" / "heatmap.png").convert("RGB"))
    assert (np.abs(img.astype(int) - (200, 220, 240)).sum(axis=2) < 10).sum() > 10_000


def test_cli_report_writes_under_home_and_latest_finds_it(store_day, tmp_path, capsys):
    # a copy of the shared home: the command, as the nightly job, also deletes raw floor rows
    # older than floor.raw_keep_days before today, and this day is from 2023
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(store_day[0] / "hub.sqlite3", home / "hub.sqlite3")
    conf = tmp_path / "store.yaml"
    conf.write_text(
        "store_id: s1\nfloor: {width_m: 10, height_m: 8}\nzones:\n"
        "  - {name: denim, polygon: [[0, 0], [4, 0], [4, 4], [0, 4]], categories: [bags]}\n"
    )
    rc = cli.main(["--home", str(home), "--config", str(conf), "report", "--date", local_day(T0)])
    assert rc == 0, capsys.readouterr()
    assert latest_report(home) == home / "reports" / local_day(T0)
    out = capsys.readouterr().out
    assert "1 zones" in out and "zone visits and" in out  # and the 2023 visits went
    with pytest.raises(SystemExit) as exc:  # argparse: usage error, exit code 2
        cli.main(["--home", str(home), "--config", str(conf), "report", "--date", "2025-02-30"])
    assert exc.value.code == 2
    assert "is not YYYY-MM-DD" in capsys.readouterr().err


def test_cli_report_bad_plan_image_is_a_clear_error(store_day, tmp_path, capsys):
    home, _ = store_day
    (tmp_path / "plan.png").write_text("not a picture")
    conf = tmp_path / "store.yaml"
    conf.write_text("store_id: s1\nfloor: {plan_image: plan.png}\n")
    rc = cli.main(["--home", str(home), "--config", str(conf), "report", "--date", "today"])
    assert rc == 2
    assert "cannot read the floor plan image" in capsys.readouterr().err


def test_durations_read_well_for_short_and_long_days() -> None:
    from hub.floor.report import _duration

    assert [_duration(s) for s in (12, 600, 9 * 3600)] == ["12 s", "10 min", "9.0 h"]


def test_report_page_escapes_store_text_and_marks_missing_figures(tmp_path: Path) -> None:
    """Zone names and insight titles come from the store's YAML: the page shows them as text,
    never as markup, and a figure the hub does not have (no POS data) shows as an en dash."""
    from hub.floor.insights import ZoneStats
    from hub.floor.report import _html

    png = tmp_path / "heatmap.png"
    Image.new("RGB", (4, 4)).save(png)
    zone = ZoneStats("<script>x</script>", "shop", 4.0, 3.0, 12.0, 30.0, 40.0, None, None, "")
    doc = {
        "observed_s_per_day": 7200.0,
        "person_s_per_day": 45.0,
        "insights": [
            {
                "kind": "advertising",
                "rank": 1,
                "advice": "A & <b>",
                "evidence": {"<i>": {"value": 3.0, "unit": "s"}},
                "confidence": "low",
                "confidence_reason": "<u>",
                "zone": None,
                "polygon": None,
            }
        ],
        "transitions": [{"from": "in", "to": "<out>", "count": 3}],
    }
    page = _html("Store <1>", png, [zone], doc)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<title>Store &lt;1&gt;</title>" in page
    assert '<div class="advice">1. A &amp; &lt;b&gt;</div>' in page
    assert "in → &lt;out&gt;: 3" in page
    assert "<li>&lt;i&gt;: 3 s</li>" in page and "&lt;u&gt;" in page
    # revenue/day and revenue/visit unknown
    assert '<td data-label="sales/day">–</td><td data-label="sales/visit">–</td></tr>' in page
    assert "2.0 h per day" in page and "45 s of people" in page
    assert page.count("Nothing to report.") == 3  # the three empty insight sections


def test_report_money_in_the_store_currency_and_locale(store_day, tmp_path):
    """Amounts on the page, in the PDF and in the advice are written as the customer card
    writes them (hub.shop.money: loyalty.currency / loyalty.locale), not as bare numbers."""
    from hub.shop.money import money_text

    home, _ = store_day
    cfg = floor_cfg("loyalty: {currency: EUR, locale: de_DE}\n")
    conn = db.migrate_db(home / "hub.sqlite3")
    day = np.datetime64(local_day(T0)).astype(object)
    build_report(conn, cfg, day, tmp_path, sales_per_day={"bags": 1300.0, "toys": 900.0})
    conn.close()
    html = (tmp_path / "report.html").read_text()
    assert money_text(1300.0, "EUR", "de_DE") == "1.300,00\xa0€"
    assert '<td data-label="sales/day">1.300,00\xa0€</td>' in html  # the zone table
    assert "91,67\xa0€" in html  # sales per visit tile: (1300 + 900) / 24 visits
    doc = json.loads((tmp_path / "insights.json").read_text())
    assert doc["money"] == {"currency": "EUR", "locale": "de_DE"}
    units = {e["unit"] for i in doc["insights"] for e in i["evidence"].values()}
    assert "EUR/day" in units and not {"sales/day", "sales/visit"} & units
    assert "1.300,00\xa0€ a day" in html  # an evidence amount with its unit in words
    sentences = " ".join(i["advice"] for i in doc["insights"])
    assert "1.300,00\xa0€" in sentences and "1,300.00" not in sentences
