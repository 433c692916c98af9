"""`storesense calibrate`, `track` and `occupancy` as an installer and an evaluator use them."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from storesense_tools.cli import main
from tests.conftest import shared_data_dir

REPO = Path(__file__).resolve().parents[2]
POINTS = REPO / "config" / "calibration" / "pets09-s2l1-points.csv"
CALIBRATION = REPO / "config" / "calibration" / "pets09-s2l1.yaml"


@pytest.fixture(scope="module")
def pets_dir() -> Path:
    root = shared_data_dir() / "mot" / "pets09-s2l1"
    if not (root / "vtest.avi").is_file():
        pytest.skip(f"MOT data not found at {root} (set STORESENSE_SHARED_DATA)")
    return root


def test_calibrate_writes_the_yaml_and_prints_the_error_in_metres(tmp_path: Path, capsys) -> None:
    from edge.floor.geometry import load_calibration

    out = tmp_path / "cal" / "floor-1.yaml"
    rc = main(["calibrate", "--points", str(POINTS), "--image-size", "480x360", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "12 points, image 480x360 px: reprojection error RMS 0.028 m, max 0.058 m" in text
    hom = load_calibration(out)
    assert hom.image_size == (480, 360)
    np.testing.assert_allclose(hom.matrix, load_calibration(CALIBRATION).matrix, rtol=1e-9)


def test_calibrate_with_only_points_and_out_fits_the_same_map_and_says_what_it_skips(
    tmp_path: Path, capsys
) -> None:
    """The contract as the issue wrote it: ``calibrate --points F.csv --out F.yaml``."""
    from edge.floor.geometry import load_calibration

    out = tmp_path / "floor-1.yaml"
    assert main(["calibrate", "--points", str(POINTS), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12 points, image size not given: reprojection error RMS 0.028 m, max 0.058 m" in text
    assert "frame-size check is skipped" in text and "--image-size WxH" in text
    hom = load_calibration(out)
    assert hom.image_size is None
    np.testing.assert_allclose(hom.matrix, load_calibration(CALIBRATION).matrix, rtol=1e-9)
    # with no size to compare against, a frame of another view is mapped as it comes, unscaled
    px = np.array([[240.0, 300.0]])
    np.testing.assert_allclose(hom.to_floor(px, frame_size=(640, 360)), hom.to_floor(px))
    # ...whereas the sized calibration still refuses it: only the size-less file skips the check
    from edge.floor.geometry import CalibrationError

    with pytest.raises(CalibrationError, match="not a scaled copy"):
        load_calibration(CALIBRATION).to_floor(px, frame_size=(640, 360))


@pytest.mark.parametrize("size_args", [[], ["--image-size", "640x480"]], ids=["bare", "sized"])
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("u,v,x,y\n1,1,0,0\n100,1,1,0\n1,100,0,1\n", "at least 4"),
        ("0,0,0,0\n10,10,1,1\n20,20,2,2\n30,30,3,3\n40,40,4,4\n", "one line"),
        ("0,0,0,0\n10,0,1,0\n0,10,0,1\nten,10,1,1\n", ":4: not a number"),
        ("0,0,0,0\n10,0,1,0\n0,10,0,1\n10,10,1\n", ":4: expected 4 values"),
    ],
)
def test_calibrate_refuses_bad_points_with_one_clear_line(
    tmp_path: Path, capsys, rows: str, message: str, size_args: list[str]
) -> None:
    pts = tmp_path / "p.csv"
    pts.write_text(rows)
    out = tmp_path / "c.yaml"
    rc = main(["calibrate", "--points", str(pts), *size_args, "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "calibration refused" in err and message in err and "Traceback" not in err
    assert not out.exists()


def test_calibrate_refuses_a_missing_points_file_without_a_traceback(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "c.yaml"
    assert main(["calibrate", "--points", str(tmp_path / "nope.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "calibration refused" in err and "cannot read" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("size", "message"),
    [("0x360", "must be positive"), ("480", "is not WIDTHxHEIGHT"), ("wide", "not WIDTHxHEIGHT")],
)
def test_calibrate_refuses_a_bad_image_size(
    tmp_path: Path, capsys, size: str, message: str
) -> None:
    out = tmp_path / "c.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--points", str(POINTS), "--image-size", size, "--out", str(out)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_calibrate_warns_about_a_badly_measured_mark(tmp_path: Path, capsys) -> None:
    lines = POINTS.read_text().splitlines()
    u, v, x, y = lines[5].split(",")
    lines[5] = f"{u},{v},{float(x) + 1.5},{y}"  # a mark 1.5 m off
    pts = tmp_path / "p.csv"
    pts.write_text("\n".join(lines) + "\n")
    rc = main(
        ["calibrate", "--points", str(pts), "--image-size", "480x360", "--out", str(tmp_path / "c")]
    )
    assert rc == 0
    assert "warning: max error above 0.25 m" in capsys.readouterr().out


def test_track_writes_motchallenge_rows_that_match_the_ground_truth(
    pets_dir: Path, tmp_path: Path, capsys
) -> None:
    from edge.boxes import iou_matrix
    from storesense_tools.mot_data import load_sequence

    out = tmp_path / "tracks.txt"
    video = pets_dir / "vtest.avi"
    rc = main(
        ["track", "--video", str(video), "--out", str(out), "--fps", "7", "--max-frames", "30"]
    )
    assert rc == 0
    assert "30 frames" in capsys.readouterr().out
    rows = [r for r in csv.reader(out.open())]
    assert len(rows) > 60  # gt: ~6 walkers x 30 frames; the detector finds ~70 % of them
    frames = {int(r[0]) for r in rows}
    assert min(frames) >= 1 and max(frames) == 30
    for r in rows:
        assert len(r) == 10 and r[7:] == ["-1", "-1", "-1"]
        assert float(r[4]) > 0 and float(r[5]) > 0 and 0 < float(r[6]) <= 1
    gt = load_sequence(pets_dir).gt
    hits = 0
    for f in range(1, 31):
        mine = np.array([[float(v) for v in r[2:6]] for r in rows if int(r[0]) == f])
        boxes, _, _ = gt.at(f - 1)
        if len(mine):
            xyxy = np.hstack([mine[:, :2], mine[:, :2] + mine[:, 2:]])
            hits += int((iou_matrix(xyxy, boxes).max(axis=1) >= 0.5).sum())
    assert hits / len(rows) > 0.7  # boxes in pixels of the video, frame numbers from 1


def test_occupancy_counts_people_per_cell_per_interval(
    pets_dir: Path, tmp_path: Path, capsys
) -> None:
    from storesense_tools.mot_data import load_sequence

    out = tmp_path / "occ.csv"
    rc = main(
        ["occupancy", "--video", str(pets_dir / "vtest.avi"), "--calibration", str(CALIBRATION),
         "--cell-m", "2", "--interval-s", "1", "--out", str(out), "--fps", "7",
         "--max-frames", "28"]
    )  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["interval_start_s", "cell_x", "cell_y", "mean_persons"]
    starts = sorted({float(r["interval_start_s"]) for r in rows})
    assert starts == [0.0, 1.0, 2.0, 3.0]  # 28 frames at 7 fps = 4 s
    gt = load_sequence(pets_dir).gt
    for s in starts:
        mine = sum(float(r["mean_persons"]) for r in rows if float(r["interval_start_s"]) == s)
        truth = np.mean([len(gt.rows(f)) for f in range(int(s * 7), int(s * 7) + 7)])
        assert abs(mine - truth) < 2.5, (s, mine, truth)
    assert all(float(r["mean_persons"]) > 0 for r in rows)


def test_occupancy_refuses_a_calibration_of_another_view(
    pets_dir: Path, tmp_path: Path, capsys
) -> None:
    other = tmp_path / "wide.yaml"
    other.write_text(CALIBRATION.read_text().replace("- 360", "- 270"))  # 16:9, not 4:3
    rc = main(
        ["occupancy", "--video", str(pets_dir / "vtest.avi"), "--calibration", str(other),
         "--out", str(tmp_path / "o.csv"), "--max-frames", "3"]
    )  # fmt: skip
    assert rc == 2
    assert "not a scaled copy" in capsys.readouterr().err


def test_track_on_a_missing_video_and_bad_fps(tmp_path: Path, capsys) -> None:
    assert main(["track", "--video", str(tmp_path / "no.avi"), "--out", str(tmp_path / "t")]) == 2
    assert "no video file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["track", "--video", "x.avi", "--out", "t", "--fps", "0"])
    assert "must be a positive number" in capsys.readouterr().err


def test_occupancy_with_a_calibration_made_without_image_size(
    pets_dir: Path, tmp_path: Path, capsys
) -> None:
    """The bare ``calibrate`` output serves a camera of the resolution the marks were clicked
    in exactly as the sized one does (vtest.avi is that 480x360 frame)."""
    bare = tmp_path / "bare.yaml"
    assert main(["calibrate", "--points", str(POINTS), "--out", str(bare)]) == 0
    outs = []
    for cal in (bare, CALIBRATION):
        out = tmp_path / f"occ-{cal.stem}.csv"
        rc = main(
            ["occupancy", "--video", str(pets_dir / "vtest.avi"), "--calibration", str(cal),
             "--cell-m", "2", "--out", str(out), "--fps", "7", "--max-frames", "7"]
        )  # fmt: skip
        assert rc == 0
        outs.append(out.read_text())
    assert outs[0] == outs[1] and len(outs[0].splitlines()) > 1


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so the progress bar draws into it."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True], ids=["tty", "tty-quiet"])
def test_track_progress_goes_to_stderr_and_leaves_stdout_and_rows_alone(
    pets_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    video = str(pets_dir / "vtest.avi")
    args = ["--fps", "7", "--max-frames", "5"]
    plain = tmp_path / "plain.txt"
    assert main(["track", "--video", video, "--out", str(plain), *args]) == 0  # no TTY: no bar
    plain_io = capsys.readouterr()
    assert plain_io.err == ""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    drawn = tmp_path / "drawn.txt"
    extra = ["--quiet"] if quiet else []
    assert main(["track", "--video", video, "--out", str(drawn), *args, *extra]) == 0
    monkeypatch.undo()
    assert capsys.readouterr().out == plain_io.out.replace(str(plain), str(drawn))
    assert drawn.read_text() == plain.read_text()
    if quiet:
        assert term.getvalue() == ""
    else:
        assert "track vtest.avi" in term.getvalue()  # the bar was drawn, on stderr only


# -- calibrate-check: the installer's picture and verdict, on PETS09's real frame -----------

GRID_BGR = (255, 220, 0)  # storesense_tools.calibration_check colours
BAD_BGR = (40, 40, 230)


@pytest.fixture(scope="module")
def pets_still(pets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Frame 150 of vtest.avi as a PNG and the gt boxes of its people (x1,y1,x2,y2 CSV)."""
    import cv2

    from storesense_tools.mot_data import load_sequence

    seq = load_sequence(pets_dir)
    d = tmp_path_factory.mktemp("still")
    cv2.imwrite(str(d / "still.png"), seq.frame(150))
    rows = seq.gt.rows(150)
    boxes = seq.gt.boxes[rows][~seq.gt.ignore[rows]]
    assert len(boxes) >= 4
    (d / "boxes.csv").write_text(
        "x1,y1,x2,y2\n" + "".join(",".join(f"{v:.1f}" for v in b) + "\n" for b in boxes)
    )
    return d / "still.png", d / "boxes.csv"


def _marks(tmp_path: Path, change) -> Path:
    """The example marks (PETS09 gt foot points → gt world metres), with ``change`` applied
    to the metres array."""
    from edge.floor.geometry import read_points_csv

    px, m = read_points_csv(POINTS)
    m = change(m.copy())
    out = tmp_path / "marks.csv"
    rows = [f"{a},{b},{c},{d}\n" for (a, b), (c, d) in zip(px, m, strict=True)]
    out.write_text("u,v,x,y\n" + "".join(rows))
    return out


def _share(png: Path, bgr: tuple[int, int, int]) -> float:
    import cv2

    img = cv2.imread(str(png)).astype(int)
    return float((np.abs(img - np.array(bgr)).sum(axis=2) < 40).mean())


def test_calibrate_check_accepts_the_pets09_marks_and_draws_the_check(
    pets_still: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    from PIL import Image

    from edge.floor.geometry import load_calibration

    still, boxes = pets_still
    png, cal = tmp_path / "check.png", tmp_path / "cam.yaml"
    rc = main(
        ["calibrate-check", "--image", str(still), "--points", str(POINTS), "--boxes",
         str(boxes), "--out", str(png), "--calibration-out", str(cal)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "12 marks on a 480x360 still: residual RMS 0.028 m, max 0.058 m" in out
    assert "leave-one-out max 0.137 m (mark 3)" in out
    heights = [float(x) for x in out.split("people in the still: ")[1].split(" m")[0:1]]
    assert 1.6 < heights[0] < 1.95  # real walkers, by the map's own camera
    assert "accepted: wrote" in out
    np.testing.assert_allclose(
        load_calibration(cal).matrix, load_calibration(CALIBRATION).matrix, rtol=1e-9
    )
    w, h = Image.open(png).size
    assert w >= 960 and h == round(360 * w / 480)
    assert _share(png, GRID_BGR) > 0.01  # the floor grid is drawn
    assert _share(png, BAD_BGR) < 0.001  # nothing flagged


def test_calibrate_check_rejects_a_mismeasured_mark_and_marks_it_red(
    pets_still: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    def one_off(m):
        m[4, 0] += 1.0  # mark 5 typed 1 m off
        return m

    still, boxes = pets_still
    png, cal = tmp_path / "check.png", tmp_path / "cam.yaml"
    rc = main(
        ["calibrate-check", "--image", str(still), "--points", str(_marks(tmp_path, one_off)),
         "--boxes", str(boxes), "--out", str(png), "--calibration-out", str(cal)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 1
    assert "rejected: mark 5 is 0.83 m from where the fitted map puts it (limit 0.5 m)" in out
    assert "rejected: mark 5: a map fitted without it puts it 1.04 m away" in out
    assert not cal.exists()  # nothing for a camera to use
    assert png.exists() and _share(png, BAD_BGR) > 0.001  # the verdict and mark 5 in red


def test_calibrate_check_rejects_metres_at_the_wrong_scale_by_peoples_heights(
    pets_still: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """Every mark 25 % too far out fits perfectly (same residuals) and misplaces everyone by
    metres: only the people in the still give it away."""
    still, boxes = pets_still
    marks = _marks(tmp_path, lambda m: m * 1.25)
    args = ["calibrate-check", "--image", str(still), "--points", str(marks)]
    assert main([*args, "--out", str(tmp_path / "a.png")]) == 0  # without people: no way to tell
    assert "heights were not checked" in capsys.readouterr().out
    assert main([*args, "--boxes", str(boxes), "--out", str(tmp_path / "b.png")]) == 1
    out = capsys.readouterr().out
    assert "people in the still are 2.2" in out and "wrong scale" in out


@pytest.mark.parametrize(
    ("what", "message"),
    [("image", "not a readable image"), ("boxes", "expected 4 values x1,y1,x2,y2, got 3")],
)
def test_calibrate_check_refuses_unusable_input_without_a_traceback(
    pets_still: tuple[Path, Path], tmp_path: Path, capsys, what: str, message: str
) -> None:
    still, _ = pets_still
    bad = tmp_path / "bad.txt"
    bad.write_text("1,2,3\n")
    image, boxes = (bad, None) if what == "image" else (still, bad)
    args = ["calibrate-check", "--image", str(image), "--points", str(POINTS)]
    args += ["--boxes", str(boxes)] if boxes else []
    assert main([*args, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_boxes_csv_is_read_like_the_marks_csv_and_refuses_inverted_boxes(tmp_path: Path) -> None:
    """The boxes file uses the marks file's reader: header, comments, blank rows, line numbers."""
    from storesense.errors import CliError
    from storesense_tools.cli_floor import _read_boxes

    path = tmp_path / "boxes.csv"
    path.write_text("# people in the still\nX1,y1,x2,y2\n\n10,20,30,90\n 5 , 6 , 7 , 8 \n")
    assert _read_boxes(path).tolist() == [[10, 20, 30, 90], [5, 6, 7, 8]]
    path.write_text("x1,y1,x2,y2\n10,20,30,90\n30,20,10,90\n")
    with pytest.raises(CliError, match=r"boxes.csv:3: a box needs x2 > x1 and y2 > y1"):
        _read_boxes(path)
    path.write_text("10,20,30,nan\n")
    with pytest.raises(CliError, match=r"boxes.csv:1: NaN or infinite"):
        _read_boxes(path)
    with pytest.raises(CliError, match="cannot read"):
        _read_boxes(tmp_path / "missing.csv")
