"""Issue 12 part R2: the drawn floor plan, the five outputs, periods, the pages a manager sees
when the data are short or missing, and screenshots of the HTML and the PDF as artefacts.

A store with a drawn plan (walls, shelves, a till, the door, two cameras whose views leave the
back-right corner unseen) gets 2.5 h of simulated shoppers through the hub's real ingest
(a real SQLite file); the report is then read as files, pictures and a rendered page.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub.floor import plan as floor_plan
from hub.floor.ingest import FloorIngest
from hub.floor.occupancy import local_day
from hub.floor.report import REPORT_FILES, build_report, latest_report, period_bounds
from hub.store import db
from storesense.config import StoreConfig, parse_config
from storesense.topics import Topics
from storesense_tools import cli
from tests.browser import chromium
from tests.hub.floor_synth import T0, messages, shoppers

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
SECONDS = 9000  # 2.5 h: above the 2 h below which advice is provisional
START = T0 + 12 * 3600  # 10:13 local (UTC) the next morning: 2.5 h stay within one day
DAY = dt.date.fromisoformat(local_day(START))

PLAN_YAML = """
floor:
  width_m: 10
  height_m: 8
  cell_m: 0.5
  sample_s: 5
  track_gap_s: 5
  dwell_enter_s: 2
  dwell_exit_s: 3
  staff_mark_s: 10
  plan:
    north_deg: 30
    outline: [[0, 0], [10, 0], [10, 8], [0, 8]]
    fixtures:
      - {name: jeans wall, kind: shelf, polygon: [[0, 0], [0.5, 0], [0.5, 4], [0, 4]]}
      - {name: bags, kind: table, polygon: [[2, 5], [3.5, 5], [3.5, 6], [2, 6]]}
      - {name: till, kind: till, polygon: [[7, 0], [9, 0], [9, 0.6], [7, 0.6]]}
    entrances: [{name: entrance, at: [5, 8], width_m: 2}]
    cameras:
      - {camera: cam-a, at: [0.2, 7.8], coverage: [[0, 0], [8, 0], [8, 8], [0, 8]]}
      - {camera: cam-b, at: [9.8, 0.2], coverage: [[6, 0], [10, 0], [10, 5], [6, 5]]}
zones:
  - {name: denim, polygon: [[0, 0], [4, 0], [4, 4], [0, 4]], categories: [bags]}
  - {name: till, kind: till, polygon: [[6, 0], [10, 0], [10, 3], [6, 3]], categories: [toys]}
  - {name: office, kind: staff, polygon: [[8, 6], [10, 6], [10, 8], [8, 8]]}
cameras:
  - {id: cam-a, role: floor, source: 0}
  - {id: cam-b, role: floor, source: 1}
"""


def plan_cfg() -> StoreConfig:
    return parse_config("store_id: plan1\nname: Denim & Co\n" + PLAN_YAML)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StoreConfig]:
    """2.5 h of 40 shoppers (door → denim → till) seen by cam-a, in a real hub database."""
    home = tmp_path_factory.mktemp("home")
    cfg = plan_cfg()
    conn = db.migrate_db(home / "hub.sqlite3")
    ing = FloorIngest(conn, cfg)
    who = _shift(shoppers(40, seed=7, seconds=SECONDS), START)
    topics = Topics(cfg.store_id)
    for msg in messages("cam-a", START, SECONDS, who, fps=0.5, interval_s=10.0):
        ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=START + 86400)
    ing.close()
    conn.close()
    return home, cfg


def _report(home: Path, cfg: StoreConfig, out: Path, **kw) -> dict:
    conn = db.open_db(home / "hub.sqlite3")
    try:
        build_report(conn, cfg, DAY, out, sales_per_day={"bags": 300.0, "toys": 900.0}, **kw)
    finally:
        conn.close()
    return json.loads((out / "insights.json").read_text())


def test_plan_is_drawn_with_y_up_hatching_and_a_legend(store, tmp_path):
    home, cfg = store
    doc = _report(home, cfg, tmp_path)
    for name in REPORT_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    # the corner right of cam-a's view and above cam-b's is not observed, and listed apart
    assert doc["not_observed"], doc["not_observed"]
    xs = [x for poly in doc["not_observed"] for x, _ in poly]
    ys = [y for poly in doc["not_observed"] for _, y in poly]
    assert min(xs) == pytest.approx(8.0) and min(ys) == pytest.approx(5.0)
    assert all(i["kind"] != "cold_region" or i["zone"] != "office" for i in doc["insights"])
    assert doc["provisional"] is False and doc["provisional_reason"] is None
    assert doc["period"]["observed_s"] >= 2 * 3600

    img = np.asarray(Image.open(tmp_path / "heatmap.png").convert("RGB")).astype(int)
    assert img.shape[1] > 800
    img = img[: int(img.shape[0] * 0.75)]  # the plan, without the legend under it
    # y up: the door marker (green square at y = 8, the top wall) is in the top of the plan
    green = np.abs(img - (0, 122, 122)).sum(axis=2) < 30  # the teal door marker
    third = img.shape[0] // 3
    assert green[:third].sum() > 20 and green[2 * third :].sum() == 0
    # the hatching of the unobserved corner: grey diagonal strokes in its region
    grey = (np.abs(img - (127, 127, 127)).sum(axis=2) < 40).sum()
    assert grey > 500


def test_legend_names_every_overlay_drawn(store) -> None:
    """The legend's labels, read from the figure itself: one per overlay kind drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hub.floor.report import heatmap_figure

    _, cfg = store
    views = floor_plan.camera_views(cfg)
    unobserved = floor_plan.not_observed(cfg, views)
    items = [
        {"kind": "advertising", "rank": 1, "polygon": [[1, 1], [3, 1], [3, 3], [1, 3]]},
        {"kind": "cold_region", "rank": 1, "polygon": [[4, 4], [6, 4], [6, 6], [4, 6]]},
    ]
    fig = heatmap_figure(cfg, np.ones((16, 20)), "person-s", "t", None, items, views, unobserved)
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        bottom, top = ax.get_ylim()
        assert bottom < 0 < cfg.floor.height_m < top  # y grows upwards, the floor all shown
        # the door (y = 8) is drawn above the till (y = 0.3) on the screen
        assert ax.transData.transform((5, 8))[1] > ax.transData.transform((8, 0.3))[1]
    finally:
        plt.close(fig)
    for want in (
        "walls",
        "shelf",
        "table",
        "till",
        "not observed",
        "camera view",
        "camera",
        "entrance",
        "zone",
        "A = advertising spot",
        "C = rarely visited area",
    ):
        assert want in labels, (want, labels)
    assert "N = new-product spot" not in labels  # none drawn: not named
    assert "time people spent (colour bar)" in labels and len(fig.axes) == 2  # the colour bar
    # a store without floor cameras: the plan only, no empty colour bar pretending to be data
    fig = heatmap_figure(cfg, np.zeros((16, 20)), "p", "t", None, [], views, [], occupancy=False)
    try:
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert len(fig.axes) == 1 and "time people spent (colour bar)" not in labels
        assert "no floor cameras" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_html_fits_a_phone_and_a_desktop_screenshots(store, tmp_path):
    home, cfg = store
    out = ARTIFACTS / "floor-report"
    _report(home, cfg, out, period="day")
    for browser in chromium():  # one browser; closed when the loop ends
        for width, name in ((390, "phone"), (1280, "desktop")):
            page = browser.new_page(viewport={"width": width, "height": 844})
            page.goto((out / "report.html").as_uri())
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, (name, scroll)  # no horizontal scroll
            tiles = page.locator(".tile").count()
            assert tiles == 4
            # KPI tiles come first: above the plan picture
            tile_y = page.locator(".tile").first.bounding_box()["y"]
            img_y = page.locator("img").first.bounding_box()["y"]
            assert tile_y < img_y
            # the plan's key is shown at its own size, never shrunk: the legend inside the
            # plan picture shrinks to a few pixels on a phone (seen in the 390 px screenshot)
            key = page.locator("img.key")
            natural, shown = key.evaluate("k => [k.naturalWidth, k.getBoundingClientRect().width]")
            assert natural >= 300 and shown >= natural - 1, (name, natural, shown)
            assert key.bounding_box()["y"] > img_y
            page.screenshot(path=str(ARTIFACTS / f"floor-report-{name}.png"), full_page=True)
            page.close()
    text = (out / "report.html").read_text()
    for label in ("walls", "not observed", "camera view", "entrance", "A = advertising spot"):
        assert label in text.split('alt="Key to the plan: ')[1].split('"')[0], label
    assert "confidence medium</span> medium:" not in text  # the level is not said twice
    assert "position x" not in text and "metres from the left wall (x)" in text
    assert "Provisional" not in text and "Where to advertise" in text
    assert "Sales are assigned to zones by product category" in text
    assert "formula" not in text.lower() and "score" not in text.lower()
    _, _, week = period_bounds("week", DAY)
    assert f'href="/reports/weeks/{week}/report.html"' in text  # the week holding the day
    assert f'href="/reports/{DAY.isoformat()}/report.pdf"' in text


def test_pdf_pages_render(store, tmp_path):
    home, cfg = store
    _report(home, cfg, tmp_path)
    pdf = tmp_path / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftoppm") is None:
        pytest.skip("no pdftoppm (Debian poppler-utils) to look at the pages")
    ARTIFACTS.mkdir(exist_ok=True)
    prefix = ARTIFACTS / "floor-report-pdf"
    for old in ARTIFACTS.glob("floor-report-pdf-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(prefix)], check=True)
    pages = sorted(ARTIFACTS.glob("floor-report-pdf-*.png"))
    assert len(pages) >= 2  # the summary with the plan, then the advice and the zones
    first = np.asarray(Image.open(pages[0]).convert("RGB")).astype(int)
    assert first.std() > 20  # the plan and tiles are there, not a blank page


def test_short_observation_is_provisional_with_low_confidence(store, tmp_path):
    """The same store seen for 4 minutes: the page says provisional and why."""
    _, cfg = store
    home = tmp_path / "h"
    home.mkdir()
    conn = db.migrate_db(home / "hub.sqlite3")
    ing = FloorIngest(conn, cfg)
    topics = Topics(cfg.store_id)
    for msg in messages("cam-a", START, 240, _shift(shoppers(12, seed=5, seconds=240), START)):
        ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=START + 86400)
    ing.close()
    conn.close()
    doc = _report(home, cfg, tmp_path / "r")
    assert doc["provisional"] is True and "4 min" in doc["provisional_reason"]
    assert doc["insights"] and all(i["confidence"] == "low" for i in doc["insights"])
    assert "Provisional." in (tmp_path / "r" / "report.html").read_text()
    _screenshot(tmp_path / "r" / "report.html", "floor-report-provisional")


def _screenshot(page_path: Path, name: str) -> None:
    """A phone-width (390 px) screenshot as a test artefact, with no horizontal scroll."""
    ARTIFACTS.mkdir(exist_ok=True)
    for browser in chromium():
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(page_path.as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
        page.close()


def test_store_without_floor_cameras_gets_a_clear_page_and_exit_0(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    db.migrate_db(home / "hub.sqlite3").close()
    conf = tmp_path / "store.yaml"
    conf.write_text("store_id: door1\ncameras:\n  - {id: door, role: entrance, source: 0}\n")
    rc = cli.main(["--home", str(home), "--config", str(conf), "report", "--date", "2025-03-05"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "no floor cameras" in out
    page = (home / "reports" / "2025-03-05" / "report.html").read_text()
    assert "This store has no floor cameras." in page
    # the plan with its zones stays (the wheel smoke test reads it), explained, not blank
    assert "the floor plan and zones only: no floor camera data" in page
    # no tiles of zeros, no empty advice, no zone table: the banner is the explanation
    assert 'class="tile"' not in page and "Nothing to report." not in page
    assert "<h2>Zones</h2>" not in page
    _screenshot(home / "reports" / "2025-03-05" / "report.html", "floor-report-no-cameras")


def test_floor_cameras_that_sent_nothing_exit_1_with_a_page(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    db.migrate_db(home / "hub.sqlite3").close()
    conf = tmp_path / "store.yaml"
    conf.write_text("store_id: s1\n" + PLAN_YAML)
    rc = cli.main(["--home", str(home), "--config", str(conf), "report", "--date", "2025-03-05"])
    assert rc == 1
    assert "no floor camera data" in capsys.readouterr().err
    page = (home / "reports" / "2025-03-05" / "report.html").read_text()
    assert "No floor data in this period." in page and "cam-a, cam-b" in page


def test_period_all_keeps_day_week_and_month_history(store, tmp_path, capsys):
    # a copy of the shared home: the command, as the nightly job, also deletes raw floor rows
    # older than floor.raw_keep_days before today, and this day is from 2023
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(store[0] / "hub.sqlite3", home / "hub.sqlite3")
    conf = tmp_path / "store.yaml"
    conf.write_text("store_id: plan1\n" + PLAN_YAML)
    rc = cli.main(
        ["--home", str(home), "--config", str(conf), "report", "--date", DAY.isoformat(),
         "--period", "all"]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr()
    _, _, week = period_bounds("week", DAY)
    _, _, month = period_bounds("month", DAY)
    assert latest_report(home) == home / "reports" / DAY.isoformat()
    assert latest_report(home, "week") == home / "reports" / week
    assert latest_report(home, "month") == home / "reports" / month
    doc = json.loads((home / "reports" / week / "insights.json").read_text())
    first, last, _ = period_bounds("week", DAY)
    assert doc["period"]["start"] == first.isoformat() and first.weekday() == 0
    assert doc["period"]["end"] == last.isoformat() and (last - first).days == 6
    assert doc["days_with_data"] == 1


def test_period_bounds() -> None:
    assert period_bounds("week", dt.date(2025, 1, 1)) == (
        dt.date(2024, 12, 30), dt.date(2025, 1, 5), "2025-W01"
    )  # fmt: skip
    assert period_bounds("month", dt.date(2024, 2, 10)) == (
        dt.date(2024, 2, 1), dt.date(2024, 2, 29), "2024-02"
    )  # fmt: skip
    assert period_bounds("day", dt.date(2024, 2, 10))[2] == "2024-02-10"


def test_trends_against_last_week(store, tmp_path):
    """A day whose week-earlier twin had half the shoppers shows footfall up ~100 %."""
    home = tmp_path / "h"
    home.mkdir()
    cfg = plan_cfg()
    conn = db.migrate_db(home / "hub.sqlite3")
    topics = Topics(cfg.store_id)
    for start, n in ((START - 7 * 86400, 10), (START, 20)):
        ing = FloorIngest(conn, cfg)
        for msg in messages("cam-a", start, 600, _shift(shoppers(n, seed=n, seconds=600), start)):
            ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=start + 86400)
        ing.close()
    conn.close()
    doc = _report(home, cfg, tmp_path / "r")
    assert doc["previous"]["footfall_per_day"] == 10
    assert doc["kpis"]["footfall_per_day"] == 20
    assert doc["trends"]["footfall_per_day"] == pytest.approx(1.0)
    assert "▲ 100% on the week before" in (tmp_path / "r" / "report.html").read_text()


def _shift(at, start: float):
    """``shoppers`` are planned from T0: move them to ``start``."""
    return lambda t: at(t - start + T0)


def test_plan_image_placed_by_two_reference_points(tmp_path):
    """Two pixels with their floor metres fix scale and origin; y runs up, rows down."""
    cfg = parse_config(
        "store_id: s\nfloor:\n  width_m: 10\n  height_m: 8\n  plan:\n    ref_points:\n"
        "      - {px: [100, 500], m: [0, 0]}\n      - {px: [600, 500], m: [10, 0]}\n"
    )
    # 50 px per metre; pixel (100, 500) is (0, 0): the image's left edge is at x = -2 m, its
    # top row (v = 0) at y = 10 m, its bottom (v = 600) at y = -2 m
    assert floor_plan.image_extent(cfg.floor, (600, 800, 3)) == pytest.approx((-2, 14, -2, 10))
    legacy = parse_config("store_id: s\nfloor: {width_m: 10, height_m: 8, plan_px_per_m: 50}\n")
    assert floor_plan.image_extent(legacy.floor, (400, 500, 3)) == pytest.approx((0, 10, 0, 8))
    with pytest.raises(ValueError, match="either ref_points or px_per_m"):
        parse_config(
            "store_id: s\nfloor:\n  plan:\n    px_per_m: 5\n    ref_points:\n"
            "      - {px: [0, 0], m: [0, 0]}\n      - {px: [10, 0], m: [1, 0]}\n"
        )


def test_coverage_from_a_calibration_file() -> None:
    """Without a measured coverage the camera's calibrated frame, mapped to the floor, is
    what it sees: the demo aisle camera sees a region inside its 6 x 10 m floor."""
    from storesense_tools.demo_floor import CALIBRATION, asset

    cfg = parse_config(
        "store_id: s\nfloor: {width_m: 6, height_m: 10}\ncameras:\n"
        f"  - {{id: a, role: floor, source: 0, calibration: '{asset(CALIBRATION)}'}}\n"
    )
    (view,) = floor_plan.camera_views(cfg)
    assert view.source == "calibration" and len(view.coverage) >= 3
    from shapely.geometry import Polygon

    seen = Polygon(view.coverage)
    assert 5 < seen.area <= 60 + 1e-6


def test_advice_names_the_place_by_fixture_or_zone(store, tmp_path):
    """Issue 12 item 2: the sentence says where as a manager finds it (the jeans wall, the
    bags table, the 'denim' zone); the metres are only evidence."""
    import re

    home, cfg = store
    doc = _report(home, cfg, tmp_path)
    spots = [i for i in doc["insights"] if i["kind"] in ("advertising", "new_product")]
    assert spots
    places = ("jeans wall", "bags", "till", "'denim'", "'till'", "entrance")
    for i in spots:
        assert not re.search(r"\bx \d|\by \d|\(\s*x", i["advice"]), i["advice"]
        assert any(p in i["advice"] for p in places), i["advice"]
        assert i["evidence"]["position_x"]["unit"] == "m"
        assert 0 <= i["evidence"]["position_y"]["value"] <= 8
    # at least one spot is named by its fixture and the side facing the door
    assert any(
        re.search(r"(at the front of|behind|beside) the (jeans wall|bags|till)", i["advice"])
        for i in spots
    ), [i["advice"] for i in spots]


def test_a_new_product_spot_on_an_advertising_spot_says_so(store, tmp_path):
    """In this store the best new-product squares are advertising squares too: each such
    N says in its sentence that one display serves both, an N elsewhere does not, and the
    plan's key explains the two boxes on one square; no N names a zone twice ("in 'denim':
    … there, inside 'denim'", as it read)."""
    import re

    from shapely.geometry import Polygon

    home, cfg = store
    doc = _report(home, cfg, tmp_path)
    ads = [i for i in doc["insights"] if i["kind"] == "advertising"]
    twins = 0
    for n in (i for i in doc["insights"] if i["kind"] == "new_product"):
        named = re.findall(r"'[^']+'", n["advice"])  # zones are quoted: each said once
        assert len(named) == len(set(named)), n["advice"]
        mine = Polygon(n["polygon"])
        shared = [(mine.intersection(Polygon(a["polygon"])).area / mine.area, a) for a in ads]
        on = [a for share, a in shared if share > 0.5]
        touching = [a for share, a in shared if share > 0]
        if on:
            twins += 1
            assert f"advertising spot {on[0]['rank']} too" in n["advice"], n["advice"]
            assert "one display there serves both" in n["advice"]
        elif touching:
            assert f"overlaps advertising spot {touching[0]['rank']}" in n["advice"]
        else:
            assert "advertising spot" not in n["advice"], n["advice"]
    assert twins >= 1
    import matplotlib.pyplot as plt

    from hub.floor.report import TWIN_TEXT, heatmap_figure

    views = floor_plan.camera_views(cfg)
    fig = heatmap_figure(cfg, np.ones((16, 20)), "s", "t", None, doc["insights"], views, [])
    try:
        assert TWIN_TEXT in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    finally:
        plt.close(fig)
    assert TWIN_TEXT in (tmp_path / "report.html").read_text()  # the page's key says it too
