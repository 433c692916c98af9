"""SFace (OpenCV Zoo, Apache-2.0) behind the same front end as the ResNet, on real faces.

What a user of the door relies on: the vectors are unit length and say which model made them,
the crop is SFace's own 112 px framing, one person's photos land closer than different
people's (well inside / outside SFace's default threshold), and the flip mean stays a unit
vector (the hub compares unit vectors at SFace's distances).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.entrance.face_embed import (
    DLIB_IN_SFACE,
    SFACE_SIZE,
    SFaceEmbedder,
    make_embedder,
    similarity,
)
from edge.entrance.face_pipeline import FacePipeline, load_rgb
from storesense.face_models import DECISION_DEFAULTS, DLIB_RESNET, SFACE

LFW = "faces/lfw-dev"
SAME = ("Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell/Colin_Powell_0002.jpg")
OTHERS = ("Tony_Blair/Tony_Blair_0002.jpg", "Bill_Gates/Bill_Gates_0001.jpg")


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline.for_photos(model=SFACE)


def _embedding(pipe: FacePipeline, path: Path) -> np.ndarray:
    faces = [o for o in pipe.observations_from_image_file(path) if o.embedding is not None]
    assert len(faces) == 1, path
    assert faces[0].embedding is not None
    return faces[0].embedding


def test_sface_vectors_are_unit_and_separate_people(shared_data: Path, pipe: FacePipeline) -> None:
    assert pipe.model_id == SFACE
    a, b = (_embedding(pipe, shared_data / LFW / p) for p in SAME)
    others = [_embedding(pipe, shared_data / LFW / p) for p in OTHERS]
    for v in (a, b, *others):
        assert v.shape == (128,) and v.dtype == np.float32
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)
    threshold = DECISION_DEFAULTS[SFACE].threshold
    same = float(np.linalg.norm(a - b))
    different = [float(np.linalg.norm(a - o)) for o in others]
    assert same < threshold < min(different), (same, different)


def test_the_crop_puts_dlib_points_where_sface_expects_them(
    shared_data: Path, pipe: FacePipeline
) -> None:
    rgb = load_rgb(shared_data / LFW / SAME[0])
    obs = pipe.analyse_rgb(rgb)[0]
    assert obs.chip is not None and obs.chip.shape == (SFACE_SIZE, SFACE_SIZE, 3)
    m = similarity(obs.landmarks, DLIB_IN_SFACE)
    mapped = obs.landmarks @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - DLIB_IN_SFACE).max() < 6.0  # a least-squares fit of 5 real points


def test_flip_mean_is_a_unit_vector_between_the_two(shared_data: Path) -> None:
    emb = SFaceEmbedder(flip=True)
    pipe = FacePipeline(model=SFACE, flip=False)
    obs = pipe.analyse_rgb(load_rgb(shared_data / LFW / SAME[0]))[0]
    assert obs.chip is not None
    plain = emb.embed_chip(obs.chip)
    mirrored = emb.embed_chip(np.ascontiguousarray(obs.chip[:, ::-1]))
    both = emb.describe(obs.chip)
    assert np.linalg.norm(both) == pytest.approx(1.0, abs=1e-4)
    assert float(both @ plain) > float(mirrored @ plain) - 1e-6


def test_a_wrong_input_or_model_is_refused() -> None:
    emb = make_embedder(SFACE)
    with pytest.raises(ValueError, match="112x112x3"):
        emb.embed_chip(np.zeros((150, 150, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown face model"):
        make_embedder("facenet")
    assert make_embedder(DLIB_RESNET).model_id == DLIB_RESNET
