"""Alignment + embedding on real faces: shape, box mapping, identity separation, licence."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import edge.entrance.face_embed
from edge.entrance.face_detect import BlazeFaceDetector, DlibHogDetector
from edge.entrance.face_embed import FaceEmbedder, dlib_box
from edge.entrance.face_pipeline import FacePipeline, load_rgb
from edge.entrance.face_types import EMBEDDING_DIM


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline("blazeface-full")


def test_descriptor_shape_and_type(shared_data: Path, embedder: FaceEmbedder) -> None:
    rgb = load_rgb(shared_data / "faces/lfw-dev/Colin_Powell/Colin_Powell_0001.jpg")
    face = DlibHogDetector(1).detect(rgb)[0]
    vec = embedder.embed(rgb, face, "dlib-hog")
    assert vec.shape == (EMBEDDING_DIM,) and vec.dtype == np.float32
    assert np.isfinite(vec).all() and 0.5 < np.linalg.norm(vec) < 1.5


def test_mapped_blazeface_box_aligns_like_hog(shared_data: Path, embedder: FaceEmbedder) -> None:
    """The 5-point predictor was trained on dlib boxes; the mapped BlazeFace box must give
    nearly the embedding the HOG box gives (far below the 0.45 match threshold)."""
    hog, blaze = DlibHogDetector(1), BlazeFaceDetector("full")
    dists = []
    for name in ["Colin_Powell_0001", "Colin_Powell_0002", "Tony_Blair_0002", "Bill_Gates_0001"]:
        person = name.rsplit("_", 1)[0]
        rgb = load_rgb(shared_data / f"faces/lfw-dev/{person}/{name}.jpg")
        e_hog = embedder.embed(rgb, hog.detect(rgb)[0], "dlib-hog")
        bf = max(blaze.detect(rgb), key=lambda f: f.score)
        dists.append(float(np.linalg.norm(e_hog - embedder.embed(rgb, bf, "blazeface-full"))))
    assert max(dists) < 0.12, dists


def test_box_mapping_is_square_and_centred_near_the_detector_box() -> None:
    from edge.entrance.face_types import DetectedFace

    x1, y1, x2, y2 = dlib_box(DetectedFace((100, 100, 200, 200), 0.9), "blazeface-full")
    assert x2 - x1 == pytest.approx(y2 - y1)
    assert abs((x1 + x2) / 2 - 150) < 5 and abs((y1 + y2) / 2 - 150) < 5


def test_same_identity_closer_than_different_on_orl(
    shared_data: Path, pipeline: FacePipeline
) -> None:
    """Gallery = image 1, probe = image 2 of ten subjects: every probe's nearest is its own id.

    s2 is skipped: that subject sat far from the camera (13 px between the eyes), so the gate
    rightly rejects the face for size.
    """
    ids = [1, *range(3, 12)]

    def emb(i: int, j: int) -> np.ndarray:
        obs = pipeline.observations_from_image_file(shared_data / f"faces/orl/s{i}/{j}.pgm")
        assert len(obs) == 1 and obs[0].embedding is not None, (i, j, obs)
        return obs[0].embedding

    gallery = np.stack([emb(i, 1) for i in ids])
    for k, i in enumerate(ids):
        d = np.linalg.norm(gallery - emb(i, 2), axis=1)
        assert int(np.argmin(d)) == k
        assert d[k] < 0.6 < np.delete(d, k).min() + 0.2  # genuine well inside dlib's radius


def test_never_loads_the_non_commercial_68_point_model() -> None:
    src = Path(edge.entrance.face_embed.__file__).read_text()
    assert "shape_predictor_68" not in src
    assert re.search(r"shape_predictor_5_face_landmarks\.dat", src)
