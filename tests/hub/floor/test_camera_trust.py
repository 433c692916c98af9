"""Per-camera self-check: counted people per pixel-height band → expected recall, the share of
people where recall drops, and the report's "How far to trust each camera's counts" block.
Real SQLite file through the real ingest path; the committed recall table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from hub.floor import camera_trust as ct
from hub.floor.ingest import FloorIngest
from hub.floor.occupancy import local_day
from hub.floor.report import build_report
from hub.store import db
from storesense import messages as m
from storesense.topics import Topics
from tests.hub.floor_synth import T0, floor_cfg, messages

NB = len(m.FLOOR_HEIGHT_BANDS_PX)


def _table(*recall: float | None) -> ct.RecallTable:
    return ct.RecallTable(recall=tuple(recall) + (None,) * (NB - len(recall)), measured="test")


def test_the_committed_recall_table_matches_the_contract_and_says_how_it_was_measured() -> None:
    doc = yaml.safe_load(ct.RECALL_TABLE.read_text())
    assert "bench/floor_count_eval.py" in doc["measured"]["by"] and doc["measured"]["what"]
    table = ct.load_recall_table()
    measured = [r for r in table.recall if r is not None]
    assert len(measured) >= 5 and all(0 < r <= 1 for r in measured)
    # a band is measured exactly when the dev clips held enough people of that size
    for band, r in zip(doc["bands"], table.recall, strict=True):
        assert (r is None) == (band["gt_boxes"] < doc["measured"]["min_boxes"])


def test_expected_recall_undoes_the_misses_before_weighing_the_bands() -> None:
    # bands: 0 unmeasured, 1 recall 0.5 (low), 2 recall 0.8, 3 recall 1.0
    table = _table(None, 0.5, 0.8, 1.0)
    counts = [20, 50, 80, 100] + [0] * (NB - 4)
    t = ct.assess("cam-a", counts, table)
    # people there: 20 (unmeasured, as counted), 100, 100, 100 → 320
    assert t.counted == 250
    assert t.expected_recall == pytest.approx(230 / 300)  # over the measured bands
    assert t.share_low == pytest.approx(100 / 320)
    assert t.share_unmeasured == pytest.approx(20 / 320)
    assert t.low_bands_px == ("32-40",)
    assert t.enough
    text = t.sentence()
    assert "cam-a" in text and "77%" in text and "31%" in text and "6%" in text


def test_too_few_or_bad_counts_are_said_or_refused() -> None:
    table = _table(0.9, 0.9)
    few = ct.assess("cam-b", [10] + [0] * (NB - 1), table)
    assert not few.enough and "too few" in few.sentence()
    nobody = ct.assess("cam-c", [0] * NB, table)
    assert nobody.expected_recall is None and not nobody.enough
    with pytest.raises(ValueError, match="band counts"):
        ct.assess("cam-d", [1, 2], table)
    with pytest.raises(ValueError, match="negative"):
        ct.assess("cam-d", [-1] + [0] * (NB - 1), table)


def test_a_table_for_other_bands_or_broken_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(ct.RECALL_TABLE.read_text())
    doc["bands"] = doc["bands"][:-1]
    bad = tmp_path / "other.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ct.TrustError, match="differ from the cameras"):
        ct.load_recall_table(bad)
    (tmp_path / "broken.yaml").write_text("bands: [")
    with pytest.raises(ct.TrustError, match="unreadable"):
        ct.load_recall_table(tmp_path / "broken.yaml")


def _with_heights(msgs: list[m.FloorPositions], counts: list[int]) -> list[m.FloorPositions]:
    return [msg.model_copy(update={"height_counts": counts}) for msg in msgs]


@pytest.fixture
def store(tmp_path: Path):
    """cam-a (new agent) reports sizes: mostly small people; cam-b (an older agent) none."""
    cfg = floor_cfg()
    conn = db.migrate_db(tmp_path / "hub.sqlite3")
    ing = FloorIngest(conn, cfg)
    topics = Topics(cfg.store_id)
    small = [0, 6, 2, 0, 0, 0, 0, 0, 0, 0, 0]  # per 1 s message: 32-48 px people
    a = _with_heights(messages("cam-a", T0, 60, lambda t: [(1, 2.0, 2.0)]), small)
    b = messages("cam-b", T0, 60, lambda t: [(1, 2.1, 2.0)])
    for msg in sorted(a + b, key=lambda x: x.interval_start):
        ing.handle(topics.floor(msg.camera_id), msg.to_bytes(), now=T0 + 86400)
    ing.close()
    return conn, cfg, [n * 60 for n in small]


def test_the_hub_sums_each_cameras_sizes_and_judges_them(store) -> None:
    conn, _, summed = store
    day = local_day(T0)
    rows = conn.execute(
        "SELECT camera_id, band, n FROM floor_camera_heights ORDER BY camera_id, band"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("cam-a", 1, summed[1]), ("cam-a", 2, summed[2])]
    table = ct.load_recall_table()
    (trust,) = ct.trust_by_camera(conn, [day], table)  # cam-b sent no sizes: not judged
    assert trust.camera_id == "cam-a" and trust.counted == sum(summed)
    r1, r2 = table.recall[1], table.recall[2]
    assert r1 is not None and r2 is not None
    expect = sum(summed) / (summed[1] / r1 + summed[2] / r2)
    assert trust.expected_recall == pytest.approx(expect)
    assert ct.trust_by_camera(conn, ["2001-01-01"], table) == []


def test_the_report_says_how_far_to_trust_each_camera(store, tmp_path: Path) -> None:
    conn, cfg, _ = store
    day = np.datetime64(local_day(T0)).astype(object)
    res = build_report(conn, cfg, day, tmp_path / "r")
    html = (tmp_path / "r" / "report.html").read_text()
    assert "How far to trust each camera&#39;s counts" in html or (
        "How far to trust each camera's counts" in html
    )
    (cam,) = res.doc["camera_trust"]["cameras"]
    assert cam["camera"] == "cam-a" and cam["sentence"].split(":")[0] in html
    assert f"{cam['expected_recall']:.0%}" in html
    # a store whose cameras send no sizes gets no such block (nothing to say)
    empty = db.migrate_db(tmp_path / "old.sqlite3")
    build_report(empty, cfg, day, tmp_path / "old")
    assert "How far to trust" not in (tmp_path / "old" / "report.html").read_text()
