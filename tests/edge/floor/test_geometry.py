"""Floor homography: round trips, the PETS09 world ground truth, and refused calibrations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.floor.geometry import (
    CalibrationError,
    Homography,
    fit_homography,
    foot_points,
    load_calibration,
    read_points_csv,
    save_calibration,
)
from tests.conftest import shared_data_dir

REPO = Path(__file__).resolve().parents[3]
PETS_POINTS = REPO / "config" / "calibration" / "pets09-s2l1-points.csv"
PETS_YAML = REPO / "config" / "calibration" / "pets09-s2l1.yaml"


@pytest.fixture(scope="module")
def shared_mot() -> Path:
    path = shared_data_dir() / "mot"
    if not (path / "pets09-s2l1" / "gt" / "gt.txt").is_file():
        pytest.skip(f"MOT data not found at {path} (set STORESENSE_SHARED_DATA)")
    return path


# An oblique ceiling camera over a 12 x 8 m floor, as a projective matrix floor → image.
FLOOR_TO_IMAGE = np.array([[40.0, -8.0, 120.0], [2.0, 12.0, 60.0], [0.002, 0.03, 1.0]])


def _image_of(floor_xy: np.ndarray) -> np.ndarray:
    h = np.hstack([floor_xy, np.ones((len(floor_xy), 1))]) @ FLOOR_TO_IMAGE.T
    return h[:, :2] / h[:, 2:]


def test_fit_then_map_round_trips_pixels_and_metres() -> None:
    marks = np.array([[0, 0], [12, 0], [12, 8], [0, 8], [6, 4], [3, 6], [9, 2]], dtype=float)
    hom, rep = fit_homography(_image_of(marks), marks, (640, 480))
    assert rep.n_points == 7 and rep.rms_m < 1e-6 and rep.max_m < 1e-6
    rng = np.random.default_rng(1)
    floor = rng.uniform([0, 0], [12, 8], size=(200, 2))
    px = _image_of(floor)
    np.testing.assert_allclose(hom.to_floor(px), floor, atol=1e-6)
    np.testing.assert_allclose(hom.to_image(floor), px, atol=1e-4)
    # the same camera re-encoded at half size: pixels are scaled back before the map
    np.testing.assert_allclose(hom.to_floor(px / 2, frame_size=(320, 240)), floor, atol=1e-6)
    with pytest.raises(CalibrationError, match="not a scaled copy"):
        hom.to_floor(px, frame_size=(640, 360))


def test_noisy_marks_report_their_error_in_metres() -> None:
    marks = np.array([[0, 0], [12, 0], [12, 8], [0, 8], [6, 4], [3, 6], [9, 2], [2, 2]], float)
    px = _image_of(marks)
    px[4] += [6.0, -4.0]  # one badly clicked mark
    _, rep = fit_homography(px, marks, (640, 480))
    assert rep.max_m > 0.05
    assert rep.worst_index == 4


def test_points_beyond_the_horizon_map_to_nan_not_to_a_huge_number() -> None:
    marks = np.array([[0, 0], [12, 0], [12, 8], [0, 8], [6, 4]], dtype=float)
    hom, _ = fit_homography(_image_of(marks), marks, (640, 480))
    # the horizon line is where w = 0.002 x + 0.03 y + 1 vanishes in floor terms; find a pixel
    # far above the floor's image by following a floor ray towards it
    far = _image_of(np.array([[0.0, 10_000.0]]))
    above = far + (far - _image_of(np.array([[0.0, 8.0]]))) * 0.5
    out = hom.to_floor(np.vstack([_image_of(marks[:1]), above]))
    assert np.isfinite(out[0]).all()
    assert np.isnan(out[1]).all()


def test_pets09_example_calibration_matches_the_world_ground_truth(shared_mot: Path) -> None:
    from storesense_tools.mot_data import load_sequence

    hom = load_calibration(PETS_YAML)
    seq = load_sequence(shared_mot / "pets09-s2l1")
    ok = ~seq.gt.ignore
    feet = foot_points(seq.gt.boxes[ok], seq.video_size)
    err = np.linalg.norm(hom.to_floor(feet, seq.video_size) - seq.gt.world[ok], axis=1)
    # 12 marks fitted → all 4,476 evaluated gt foot points: planar within a few cm
    assert np.median(err) < 0.06
    assert np.percentile(err, 99) < 0.25


def test_example_yaml_is_what_calibrate_writes_for_the_example_points(tmp_path: Path) -> None:
    img, floor = read_points_csv(PETS_POINTS)
    assert len(img) == 12
    hom, rep = fit_homography(img, floor, (480, 360))
    out = tmp_path / "c.yaml"
    save_calibration(out, hom, rep, source="x")
    again = load_calibration(out)
    np.testing.assert_allclose(again.matrix, hom.matrix)
    np.testing.assert_allclose(load_calibration(PETS_YAML).matrix, hom.matrix, rtol=1e-9)
    assert again.image_size == (480, 360)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0, 0, 0, 0], [10, 0, 1, 0], [0, 10, 0, 1]], "at least 4"),
        ([[0, 0, 0, 0], [10, 0, 1, 0], [20, 0, 2, 0], [30, 0, 3, 0], [40, 0, 4, 0]], "one line"),
        ([[0, 0, 0, 0], [10, 0, 1, 0], [0, 10, 0, 1], [10, 0, 1, 0], [0, 0, 0, 0]], "distinct"),
        ([[0, 0, 0, 0], [10, 0, 1, 0], [5, 0.001, 0.5, 0], [0, 10, 0, 1]], "no 3 may be"),
        ([[0, 0, 0, 0], [10, 0, 1, 0], [0, 10, 0, 1], [10, 10, float("nan"), 1]], "NaN"),
    ],
)
def test_degenerate_calibrations_are_refused_with_a_reason(points: list, message: str) -> None:
    a = np.asarray(points, dtype=float)
    with pytest.raises(CalibrationError, match=message):
        fit_homography(a[:, :2], a[:, 2:], (640, 480))


def test_mirrored_marks_that_cannot_be_one_plane_are_refused() -> None:
    # image points in a square, floor points in an order that folds the square over itself
    img = np.array([[0, 0], [100, 0], [100, 100], [0, 100], [50, 50]], float)
    floor = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5]], float)
    with pytest.raises(CalibrationError):
        fit_homography(img, floor, (640, 480))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("u,v,x,y\n1,2,3\n", ":2: expected 4 values"),
        ("# marks\nu,v,x,y\n1,2,3,abc\n", ":3: not a number"),
        ("1,2,3,inf\n", ":1: NaN or infinite"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=message):
        read_points_csv(path)


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nimage_size: [480, 360]\nhomography: [[1, 0], [0, 1]]\n",
        "version: 1\nimage_size: [480, 360]\nhomography: [[0,0,0],[0,0,0],[0,0,0]]\n",
        "version: 2\n",
        "homography: [\n",
        "version: 1\nhomography: [[1,0,0],[0,1,0],[0,0,1]]\n",
    ],
)
def test_broken_calibration_yaml_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=str(path)):
        load_calibration(path)


def test_foot_point_is_bottom_centre_and_extends_boxes_cut_by_the_frame() -> None:
    size = (480, 360)
    boxes = np.array(
        [
            [100, 100, 140, 200],  # whole person: bottom centre
            [200, 300, 240, 360],  # cut at the bottom: 60 px tall but 40 wide → ~98 px person
            [0, 100, 20, 200],  # cut at the left edge: 20 px of a ~41 px wide person
            [460, 100, 480, 200],  # cut at the right edge
        ],
        dtype=float,
    )
    feet = foot_points(boxes, size)
    np.testing.assert_allclose(feet[0], [120, 200])
    assert feet[1, 0] == pytest.approx(220)
    assert feet[1, 1] == pytest.approx(300 + 40 / 0.41)
    assert feet[2, 0] == pytest.approx(10 - (41 - 20) / 2)
    assert feet[3, 0] == pytest.approx(470 + (41 - 20) / 2)
    np.testing.assert_allclose(feet[2:, 1], [200, 200])


def test_homography_type_keeps_its_image_size() -> None:
    hom = Homography(matrix=np.eye(3), image_size=(10, 20))
    np.testing.assert_allclose(hom.to_floor(np.array([[2.0, 3.0]])), [[2.0, 3.0]])


def _synthetic_camera(height_m: float = 4.0, f: float = 600.0, tilt_deg: float = 35.0):
    """A camera ``height_m`` above floor point (5, -3), looking along +y tilted down, 640x480."""
    from edge.floor.geometry import CameraModel

    k = np.array([[f, 0, 320], [0, f, 240], [0, 0, 1.0]])
    a = np.radians(tilt_deg)
    # camera axes in world: x right = world x; z forward = (0, cos a, -sin a); y down = z × x
    cz = np.array([0, np.cos(a), -np.sin(a)])
    cx = np.array([1.0, 0, 0])
    cy = np.cross(cz, cx)
    rot_wc = np.stack([cx, cy, cz])  # rows: camera axes in world coordinates
    centre = np.array([5.0, -3.0, height_m])
    return CameraModel(K=k, R=rot_wc, t=-rot_wc @ centre, image_size=(640, 480))


def test_the_camera_behind_a_homography_is_recovered_with_its_height_and_focal() -> None:
    from edge.floor.geometry import fit_homography, recover_camera

    cam = _synthetic_camera()
    floor = np.array([[x, y] for x in (2.0, 5.0, 8.0) for y in (2.0, 5.0, 9.0)])
    px = cam.project(np.c_[floor, np.zeros(len(floor))])
    hom, rep = fit_homography(px, floor, (640, 480))
    assert rep.max_m < 1e-6
    got = recover_camera(hom, (640, 480))
    assert got.height_m == pytest.approx(4.0, rel=1e-3)
    assert got.K[0, 0] == pytest.approx(600.0, rel=1e-3)
    # a 1.7 m person at (4, 6): the head pixel lands where the true camera puts it
    foot, head = got.person_px(np.array([[4.0, 6.0]]))[0]
    np.testing.assert_allclose(foot, cam.project(np.array([[4.0, 6.0, 0.0]]))[0], atol=0.05)
    np.testing.assert_allclose(head, cam.project(np.array([[4.0, 6.0, 1.7]]))[0], atol=0.05)
    # …and for frames at half the calibrated size the model scales with them
    half = recover_camera(hom, (320, 240))
    assert half.K[0, 0] == pytest.approx(300.0, rel=1e-3)
    assert half.height_m == pytest.approx(4.0, rel=1e-3)


def test_leave_one_out_catches_a_mistyped_mark_the_residuals_hide() -> None:
    """With few marks the least-squares map bends towards a wrong one: its residual looks
    fine, but predicted from the others it is far off — the installer's real error."""
    from edge.floor.geometry import check_calibration, leave_one_out_errors

    cam = _synthetic_camera()
    # four corners and a fifth mark off both diagonals (so any four of them define a map)
    floor = np.array([[2.0, 2.0], [8.0, 2.0], [8.0, 9.0], [2.0, 9.0], [4.5, 4.0]])
    px = cam.project(np.c_[floor, np.zeros(len(floor))])
    assert np.nanmax(leave_one_out_errors(px, floor)) < 1e-4  # exact marks: ~0 m
    typo = floor.copy()
    typo[4] = [4.5, 4.6]  # 0.6 m off (a tape read at the wrong mark)
    check = check_calibration(px, typo, (640, 480))
    assert check.residual_m[4] < 0.5  # the fit alone would have passed it
    assert check.loo_m[4] > 0.5 and not check.ok
    # with 5 marks every left-out one is predicted through the typo, so the worst need not be
    # mark 5 itself: the message names a mark and the limit, the picture shows them all
    assert any("a map fitted without it puts it" in p and "0.5 m" in p for p in check.problems)
    four = check_calibration(px[:4], floor[:4], (640, 480))
    assert not four.ok and "cross-check" in four.problems[0]  # 4 marks fit anything
    # four corners and the centre: leaving a corner out leaves three marks on a diagonal
    centre = np.vstack([floor[:4], [[5.0, 5.5]]])
    on_line = check_calibration(cam.project(np.c_[centre, np.zeros(5)]), centre, (640, 480))
    assert not on_line.ok and "cannot define the floor" in on_line.problems[-1]
