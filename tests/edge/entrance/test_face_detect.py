"""Detectors on real images: one face in ORL/LFW, frame-pixel boxes, robustness to odd input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.entrance.face_detect import (
    BlazeFaceDetector,
    DlibHogDetector,
    make_detector,
    ssd_anchor_centres,
)
from edge.entrance.face_pipeline import FacePipeline, load_rgb

ORL = [f"orl/s{i}/1.pgm" for i in range(1, 41, 4)]
LFW = [
    "lfw-dev/Tony_Blair/Tony_Blair_0002.jpg",
    "lfw-dev/Colin_Powell/Colin_Powell_0001.jpg",
    "lfw-dev/Tiger_Woods/Tiger_Woods_0001.jpg",
    "lfw-dev/Nelson_Mandela/Nelson_Mandela_0001.jpg",
    "lfw-dev/Bill_Gates/Bill_Gates_0001.jpg",
]


@pytest.fixture(scope="module")
def detectors() -> dict[str, object]:
    return {
        "blazeface-short": BlazeFaceDetector("short"),
        "blazeface-full": BlazeFaceDetector("full"),
        "dlib-hog": DlibHogDetector(upsample=1),
    }


def _faces(shared_data: Path, rel: list[str]) -> list[np.ndarray]:
    return [load_rgb(shared_data / "faces" / r) for r in rel]


def test_anchor_counts_match_the_models() -> None:
    short = ssd_anchor_centres(128, (8, 16, 16, 16), 1.0)
    full = ssd_anchor_centres(192, (4,), 0.0)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    assert short.min() > 0 and short.max() < 1
    # first anchors sit in the top-left cell of the stride-8 map, two per cell
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[1], short[0])


@pytest.mark.parametrize("name", ["blazeface-short", "dlib-hog"])
def test_detectors_find_the_one_orl_face(shared_data: Path, detectors: dict, name: str) -> None:
    for img in _faces(shared_data, ORL):
        assert len(detectors[name].detect(img)) == 1


@pytest.mark.parametrize("name", ["blazeface-short", "blazeface-full", "dlib-hog"])
def test_detectors_find_the_main_lfw_face(shared_data: Path, detectors: dict, name: str) -> None:
    for img in _faces(shared_data, LFW):
        faces = detectors[name].detect(img)
        assert faces, name
        # LFW is centred on the labelled person: the best box must contain the image centre
        x1, y1, x2, y2 = max(faces, key=lambda f: f.score).box
        assert x1 < 75 < x2 and y1 < 75 < y2


def test_full_range_needs_the_near_fallback_for_frame_filling_faces(shared_data: Path) -> None:
    """Full-range misses faces that fill the frame; the short-range retry finds them."""
    pipe = FacePipeline("blazeface-full", fallback="auto")
    for img in _faces(shared_data, ORL):
        assert len(pipe.detect(img)) == 1


def test_boxes_and_keypoints_are_in_frame_pixels(shared_data: Path, detectors: dict) -> None:
    img = _faces(shared_data, LFW[:1])[0]
    shifted = np.zeros((300, 400, 3), np.uint8)
    shifted[100:250, 200:350] = img
    det = detectors["blazeface-short"]
    a, b = det.detect(img)[0], det.detect(shifted)[0]
    np.testing.assert_allclose(np.array(b.box) - [200, 100, 200, 100], a.box, atol=6)
    eyes = b.keypoints[:2]
    assert (eyes[:, 0] > b.box[0]).all() and (eyes[:, 0] < b.box[2]).all()
    assert eyes[0, 0] < eyes[1, 0]  # keypoint 0 is the eye on the image's left


@pytest.mark.parametrize("name", ["blazeface-short", "blazeface-full", "dlib-hog"])
def test_odd_inputs_do_not_crash(detectors: dict, name: str, shared_data: Path) -> None:
    det = detectors[name]
    assert det.detect(np.zeros((0, 0, 3), np.uint8)) == []
    assert det.detect(np.zeros((4, 4, 3), np.uint8)) == []
    assert det.detect(np.zeros((1, 500, 3), np.uint8)) == []
    grey = load_rgb(shared_data / "faces" / LFW[0])[:, :, 0]
    assert len(det.detect(grey)) >= 1  # 2-D greyscale
    rgba = np.dstack([load_rgb(shared_data / "faces" / LFW[0]), np.full((150, 150), 255, np.uint8)])
    assert len(det.detect(rgba)) >= 1
    assert len(det.detect(np.random.default_rng(0).integers(0, 255, (64, 48, 3), np.uint8))) >= 0


def test_factory_names() -> None:
    assert make_detector("blazeface-short").name == "blazeface-short"
    assert make_detector("dlib-hog").name == "dlib-hog"
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("yolo")
