"""Tiles derived from a camera's calibration (edge.floor.tile_plan), on synthetic cameras whose
geometry is known in closed form, and on PETS09's real calibration against its ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge.floor.geometry import Homography, load_calibration
from edge.floor.tile_plan import (
    PersonScale,
    TilePlanError,
    fallback_windows,
    fit_level_camera,
    level_camera_homography,
    plan_windows,
)
from tests.conftest import shared_data_dir

CALIBRATION = Path(__file__).resolve().parents[3] / "config" / "calibration" / "pets09-s2l1.yaml"
F, PITCH, CAM_H, SIZE = 600.0, 0.35, 3.0, (640, 480)


def _image_row(distance_m: float, z_m: float) -> float:
    """Closed form: image row of a point ``distance_m`` ahead on the floor, ``z_m`` up, for the
    level camera F / PITCH / CAM_H (principal point at the centre)."""
    s, c = math.sin(PITCH), math.cos(PITCH)
    dz = CAM_H - z_m
    return SIZE[1] / 2 + F * (dz * c - distance_m * s) / (distance_m * c + dz * s)


def test_person_height_from_a_synthetic_homography_matches_the_closed_form() -> None:
    hom = level_camera_homography(F, PITCH, CAM_H, SIZE)
    scale = PersonScale(hom, SIZE, 1.7)
    assert scale.focal_px == pytest.approx(F, rel=1e-6)
    assert scale.camera_height_m == pytest.approx(CAM_H, rel=1e-6)
    for d in (2.0, 5.0, 12.0):
        foot, head = _image_row(d, 0.0), _image_row(d, 1.7)
        got = scale.height_px(np.array([[SIZE[0] / 2, foot]]))[0]
        assert got == pytest.approx(foot - head, rel=1e-6)
    # above the horizon there is no floor, so no person size
    horizon = SIZE[1] / 2 - F * math.tan(PITCH)
    assert np.isnan(scale.height_px(np.array([[320.0, horizon - 5]]))[0])
    # half the frame size: half the pixels, same geometry
    half = PersonScale(hom, (320, 240), 1.7)
    row = _image_row(5.0, 0.0)
    assert half.height_px(np.array([[160.0, row / 2]]))[0] == pytest.approx(
        (row - _image_row(5.0, 1.7)) / 2, rel=1e-6
    )


def test_far_band_lands_where_the_geometry_says() -> None:
    """Every foot row from the far limit (people ``min_source_px`` tall) to where the full frame
    suffices is in some band, each band's tiles hold its nearest and farthest person whole, and
    its magnification shows the farthest one at the plan's network-pixel target."""
    hom = level_camera_homography(F, PITCH, CAM_H, SIZE)
    scale = PersonScale(hom, SIZE, 1.7)
    plan = plan_windows(scale, min_person_px=80, min_source_px=28, max_windows=8)
    assert plan.source == "calibration" and plan.bands and plan.person_px is not None
    h = scale.row_heights()
    far = int(np.flatnonzero(h >= 28)[0])
    assert plan.far_limit_row == far
    # the far limit is where a 1.7 m person is 28 px tall, found in closed form by bisection
    lo, hi = 1.0, 200.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _image_row(mid, 0) - _image_row(mid, 1.7) > 28 else (lo, mid)
    assert abs(_image_row(lo, 0) - far) <= 1.5
    covered = np.zeros(SIZE[1], bool)
    for band in plan.bands:
        top, bottom = band.foot_rows
        covered[top : bottom + 1] = True
        for v in (top, bottom):
            assert band.y1 <= v - h[v] and v <= band.y2  # head and feet inside the tile
        assert h[top] * band.magnification >= plan.person_px - 1e-6
    assert covered[far : plan.full_frame_from_row].all()
    # the full frame alone shows people below full_frame_from_row at the target size
    full_from = plan.full_frame_from_row
    assert full_from is not None and h[full_from] * 300 / SIZE[1] >= plan.person_px - 1e-6
    assert plan.uncovered_rows is None or plan.uncovered_rows[1] <= far


def test_a_tight_budget_lowers_the_target_instead_of_dropping_the_far_floor() -> None:
    scale = PersonScale(level_camera_homography(F, PITCH, CAM_H, SIZE), SIZE)
    roomy = plan_windows(scale, max_windows=10)
    tight = plan_windows(scale, max_windows=4)
    assert len(tight.windows) <= 4 < len(roomy.windows)
    assert tight.person_px is not None and roomy.person_px is not None
    assert tight.person_px < roomy.person_px
    assert tight.bands[-1].foot_rows[0] <= tight.far_limit_row  # still reaches the far limit


def test_a_camera_whose_people_are_all_big_needs_no_tiles() -> None:
    near = level_camera_homography(500.0, 0.9, 2.5, SIZE)  # steep, low: nobody is small
    plan = plan_windows(PersonScale(near, SIZE), min_person_px=60, min_source_px=28)
    assert plan.windows == [(0, 0, 640, 480)] and not plan.bands


def test_no_calibration_fallback_is_documented_layout() -> None:
    plan = fallback_windows(480, 360)
    assert plan.source == "fallback" and len(plan.windows) == 5
    assert plan.windows[0] == (0, 0, 480, 360)


@pytest.mark.parametrize(
    ("matrix", "msg"),
    [
        (np.diag([0.01, 0.01, 1.0]), "straight down"),  # affine: no perspective at all
        # x in metres but y in centimetres: an absurd focal length
        (
            np.diag([1.0, 100.0, 1.0]) @ level_camera_homography(F, PITCH, CAM_H, SIZE).matrix,
            "field of view",
        ),
    ],
)
def test_bad_calibration_gives_a_clear_error(matrix: np.ndarray, msg: str) -> None:
    with pytest.raises(TilePlanError, match=msg) as err:
        PersonScale(Homography(matrix, SIZE), SIZE)
    assert "calibration" in str(err.value)


def test_another_view_and_bad_options_are_refused() -> None:
    hom = level_camera_homography(F, PITCH, CAM_H, SIZE)
    with pytest.raises(TilePlanError, match="not a scaled copy"):
        PersonScale(hom, (640, 360))
    with pytest.raises(TilePlanError, match="height"):
        PersonScale(hom, SIZE, 0.0)
    with pytest.raises(TilePlanError, match="max_windows"):
        plan_windows(PersonScale(hom, SIZE), max_windows=0)
    up = level_camera_homography(F, -0.6, CAM_H, SIZE)  # looks up: the floor is out of view
    with pytest.raises(TilePlanError):
        plan_windows(PersonScale(up, SIZE))


def test_level_camera_fitted_to_boxes_recovers_person_sizes() -> None:
    """Boxes of 1.7 m people seen by a known camera -> a fitted camera predicting the same
    heights (focal length and pitch are not separately identifiable, person sizes are)."""
    hom = level_camera_homography(F, PITCH, CAM_H, SIZE)
    truth = PersonScale(hom, SIZE)
    rng = np.random.default_rng(1)
    feet = np.column_stack([rng.uniform(50, 590, 60), rng.uniform(250, 470, 60)])
    hts = truth.height_px(feet)
    boxes = np.column_stack(
        [feet[:, 0] - 0.2 * hts, feet[:, 1] - hts, feet[:, 0] + 0.2 * hts, feet[:, 1]]
    )
    fitted, err = fit_level_camera(boxes, SIZE)
    assert err < 0.01
    probe = np.array([[320.0, 300.0], [100.0, 420.0]])
    np.testing.assert_allclose(
        PersonScale(fitted, SIZE).height_px(probe), truth.height_px(probe), rtol=0.02
    )
    with pytest.raises(TilePlanError, match="at least 3"):
        fit_level_camera(boxes[:2], SIZE)


def test_pets09_calibration_predicts_the_ground_truth_heights() -> None:
    """The repo's 12-mark PETS09 calibration, 1.7 m people: the gt boxes are within 10 % of
    the predicted heights for most people (measured: median ratio 1.03, 10-90 % 0.96-1.10)."""
    root = shared_data_dir() / "mot" / "pets09-s2l1"
    if not (root / "gt" / "gt.txt").is_file():
        pytest.skip(f"MOT data not found at {root}")
    from storesense_tools.mot_data import load_sequence

    seq = load_sequence(root)
    b = seq.gt.boxes[~seq.gt.ignore]
    scale = PersonScale(load_calibration(CALIBRATION), seq.video_size)
    ratio = (b[:, 3] - b[:, 1]) / scale.height_px(
        np.column_stack([(b[:, 0] + b[:, 2]) / 2, b[:, 3]])
    )
    assert 0.97 < np.median(ratio) < 1.09
    assert np.mean(np.abs(ratio - 1.03) < 0.1) > 0.75


def test_calibrate_check_and_the_tile_plan_see_the_same_camera() -> None:
    """One derivation (geometry.recover_camera) serves both. A camera tilted slightly up (as the
    level camera fitted to TUD-Campus's boxes is) has its floor origin, right below it, behind
    it: the pose's sign must come from floor the camera sees (the old calibrate-check copy took
    it from the origin and put every person on TUD behind the camera)."""
    from edge.floor.geometry import CalibrationError, recover_camera

    pitch = -0.05  # floor visible below row ~270 only
    hom = level_camera_homography(F, pitch, CAM_H, SIZE)
    cam = recover_camera(hom, SIZE)
    assert cam.height_m == pytest.approx(CAM_H, rel=1e-6)
    assert cam.K[0, 0] == pytest.approx(PersonScale(hom, SIZE).focal_px, rel=1e-12)
    s, c = math.sin(pitch), math.cos(pitch)
    for d in (12.0, 20.0, 40.0):
        foot, head = cam.person_px(np.array([[0.0, d]]), 1.7)[0]
        for got, z in ((foot, 0.0), (head, 1.7)):
            row = SIZE[1] / 2 + F * ((CAM_H - z) * c - d * s) / (d * c + (CAM_H - z) * s)
            assert got[1] == pytest.approx(row, rel=1e-6)
    # an impossible map: the same reason for calibrate-check and for the tile plan
    bad = Homography(np.diag([0.01, 0.01, 1.0]), SIZE)
    with pytest.raises(CalibrationError, match="straight down"):
        recover_camera(bad, SIZE)
    with pytest.raises(TilePlanError, match="straight down"):
        PersonScale(bad, SIZE)
