"""MOTChallenge reader and detection scoring: the real PETS09/TUD files plus crafted edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storesense_tools.mot_data import gt_roi, load_sequence, read_gt, read_seqinfo, score_frame


@pytest.fixture(scope="module")
def mot(shared_data: Path) -> Path:
    root = shared_data / "mot"
    if not (root / "pets09-s2l1" / "gt" / "gt.txt").is_file():
        pytest.skip(f"MOT data not found at {root}")
    return root


def test_pets09_is_scaled_to_the_avi(mot: Path) -> None:
    seq = load_sequence(mot / "pets09-s2l1")
    assert seq.info.frame_rate == 7.0 and (seq.info.width, seq.info.height) == (768, 576)
    assert seq.video_size == (480, 360) and seq.scale == pytest.approx(0.625)
    assert len(seq.gt) == 4650 and int(seq.gt.ignore.sum()) == 174
    assert set(seq.gt.ids[seq.gt.ignore].tolist()) == {11, 12, 16}
    # first gt row: frame 1 -> video frame 0, box 499,158,31.03,75.17 at 768x576
    boxes, ids, _ = seq.gt.at(0)
    row = boxes[ids == 9][0]
    assert np.allclose(row, np.array([499, 158, 499 + 31.03, 158 + 75.17]) * 0.625, atol=1e-3)
    assert np.allclose(seq.gt.world[0], [-4.1554, -7.3591])
    h = seq.gt.boxes[:, 3] - seq.gt.boxes[:, 1]
    assert h.min() > 32 and h.max() < 97  # README: 33-96 px in the avi
    assert seq.frame(3).shape == (360, 480, 3)


def test_tud_has_no_world_and_unit_scale(mot: Path) -> None:
    seq = load_sequence(mot / "tud-campus")
    assert seq.scale == pytest.approx(1.0) and len(seq.gt) == 359
    assert np.isnan(seq.gt.world).all() and not seq.gt.ignore.any()
    assert seq.gt.at(9999)[0].shape == (0, 4)


def test_bad_files_name_the_line(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,10,5,9,1,-1,-1,-1\n2,1,10,10,five,9,1\n")
    with pytest.raises(ValueError, match=r"gt.txt:2"):
        read_gt(gt)
    gt.write_text("0,1,10,10,5,9,1\n")
    with pytest.raises(ValueError, match=r"gt.txt:1: frame must be >= 1"):
        read_gt(gt)
    ini = tmp_path / "seqinfo.ini"
    ini.write_text("[Sequence]\nname=x\nframeRate=7\n")
    with pytest.raises(ValueError, match="seqLength"):
        read_seqinfo(ini)
    with pytest.raises(ValueError, match="cannot read"):
        read_seqinfo(tmp_path / "missing.ini")


def test_score_frame_counts_ignore_and_roi_as_dont_care() -> None:
    gt = np.array([[0, 0, 10, 20], [100, 0, 110, 20], [200, 0, 210, 20]], np.float32)
    ignore = np.array([False, False, True])
    det = np.array(
        [
            [1, 1, 11, 21],  # hit on gt 0
            [0, 0, 10, 20],  # duplicate of gt 0 -> false positive
            [200, 0, 210, 20],  # on the ignore box -> don't care
            [300, 50, 310, 70],  # nothing there, outside the roi -> don't care with roi
        ],
        np.float32,
    )
    s = score_frame(det, gt, ignore)
    assert (s.tp, s.fp, s.fn, s.dont_care) == (1, 2, 1, 1)
    roi = np.array([[0, 0], [250, 0], [250, 40], [0, 40]], np.float32)
    s = score_frame(det, gt, ignore, roi=roi)
    assert (s.tp, s.fp, s.fn, s.dont_care) == (1, 1, 1, 2)
    assert s.matched_gt.tolist() == [True, False]
    s = score_frame(np.zeros((0, 4)), gt, ignore)
    assert (s.tp, s.fp, s.fn) == (0, 0, 2)


def test_gt_roi_holds_every_foot_point(mot: Path) -> None:
    import cv2

    seq = load_sequence(mot / "pets09-s2l1")
    roi = gt_roi(seq.gt, margin=1.0).reshape(-1, 1, 2)
    b = seq.gt.boxes[~seq.gt.ignore]
    feet = np.stack([(b[:, 0] + b[:, 2]) / 2, b[:, 3]], axis=1)
    inside = [cv2.pointPolygonTest(roi, (float(x), float(y)), False) >= 0 for x, y in feet]
    assert all(inside)
