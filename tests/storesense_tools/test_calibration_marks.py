"""The installer's marking page in Chromium: marks clicked on a real PETS09 still, metres
typed, the CSVs saved from the page and checked by ``storesense calibrate-check``.

The page is drawn narrower than the still (a phone-width window), so every click goes
through the page's conversion back to the still's own pixels; the marks are the repo's 12
PETS09 points, so the check must accept them with the example's accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storesense_tools.calibration_marks import write_marking_page
from storesense_tools.cli import main
from tests.browser import chromium
from tests.conftest import shared_data_dir

REPO = Path(__file__).resolve().parents[2]
POINTS = REPO / "config" / "calibration" / "pets09-s2l1-points.csv"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def still(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Frame 150 of PETS09's vtest.avi and the gt boxes of the people standing in it."""
    root = shared_data_dir() / "mot" / "pets09-s2l1"
    if not (root / "vtest.avi").is_file():
        pytest.skip(f"MOT data not found at {root} (set STORESENSE_SHARED_DATA)")
    import cv2

    from storesense_tools.mot_data import load_sequence

    seq = load_sequence(root)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), seq.frame(150))
    rows = seq.gt.rows(150)
    return path, seq.gt.boxes[rows][~seq.gt.ignore[rows]]


def _page_xy(box: dict, size: tuple[int, int], u: float, v: float) -> tuple[float, float]:
    return box["x"] + u * box["width"] / size[0], box["y"] + v * box["height"] / size[1]


def test_marks_clicked_and_typed_on_the_page_pass_calibrate_check(
    browser: Any, still: tuple[Path, np.ndarray], tmp_path: Path, capsys: Any
) -> None:
    from edge.floor.geometry import read_number_csv, read_points_csv

    image, people = still
    page_file = tmp_path / "marks.html"
    size = write_marking_page(image, page_file)
    assert size == (480, 360)
    px, metres = read_points_csv(POINTS)
    context = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(page_file.as_uri())
        box = page.locator("#still").bounding_box()
        assert box is not None and box["width"] < 480  # drawn smaller than the still
        for u, v in px:
            page.mouse.click(*_page_xy(box, size, u, v))
        assert page.locator("#marks tbody tr").count() == len(px)
        status = page.locator("#marks-status")
        assert "without both metres" in (status.text_content() or "")
        for i, (x, y) in enumerate(metres, start=1):
            page.get_by_label(f"mark {i} x metres").fill(f"{x}")
            page.get_by_label(f"mark {i} y metres").fill(f"{y}")
        assert (status.text_content() or "") == ""
        page.click("#mode-people")
        page.evaluate("window.scrollTo(0, 0)")  # typing the metres scrolled the table up
        box = page.locator("#still").bounding_box()
        assert box is not None
        for x1, y1, x2, y2 in people:
            page.mouse.move(*_page_xy(box, size, x1, y1))
            page.mouse.down()
            page.mouse.move(*_page_xy(box, size, x2, y2), steps=3)
            page.mouse.up()
        assert page.locator("#people tbody tr").count() == len(people)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "calibration-marks.png"), full_page=True)
        with page.expect_download() as got:
            page.click("#save-marks")
        marks_csv = tmp_path / "marks.csv"
        got.value.save_as(marks_csv)
        with page.expect_download() as got:
            page.click("#save-people")
        people_csv = tmp_path / "people.csv"
        got.value.save_as(people_csv)
    finally:
        context.close()

    clicked_px, typed_m = read_points_csv(marks_csv)
    np.testing.assert_allclose(typed_m, metres)
    # back in the still's pixels: within a page pixel of the marks (the page is 0.8x)
    assert np.abs(clicked_px - px).max() < 1.5
    assert read_number_csv(people_csv, ("x1", "y1", "x2", "y2")).shape == people.shape

    args = ["calibrate-check", "--image", str(image), "--points", str(marks_csv),
            "--boxes", str(people_csv), "--out", str(tmp_path / "check.png"),
            "--calibration-out", str(tmp_path / "cam.yaml")]  # fmt: skip
    rc = main(args)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "12 marks on a 480x360 still" in out and "accepted: wrote" in out
    rms = float(out.split("residual RMS ")[1].split(" m")[0])
    assert rms < 0.05, out  # the example's 0.028 m, give or take the clicks' rounding


def test_a_page_is_not_written_for_an_unreadable_still(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "still.png"
    bad.write_bytes(b"not an image")
    rc = main(["calibrate-marks", "--image", str(bad), "--out", str(tmp_path / "m.html")])
    assert rc == 2
    assert "not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "m.html").exists()


def test_the_marks_save_refuses_fewer_than_five_marks(
    browser: Any, still: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    image, _ = still
    page_file = tmp_path / "marks.html"
    write_marking_page(image, page_file)
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        box = page.locator("#still").bounding_box()
        assert box is not None
        for u, v in ((100, 300), (300, 300), (200, 200)):
            page.mouse.click(box["x"] + u, box["y"] + v)
        assert "2 more mark(s) needed" in (page.locator("#marks-status").text_content() or "")
        downloads: list[object] = []
        page.on("download", lambda d: downloads.append(d))
        page.click("#save-marks")
        page.wait_for_timeout(300)
        assert downloads == []  # nothing saved that calibrate-check would refuse anyway
    finally:
        page.close()
