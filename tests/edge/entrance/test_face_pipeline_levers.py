"""The pipeline's accuracy levers on real images: flip averaging and the second detection pass.

On dlib's ResNet, where the levers were measured (docs/accuracy.md, "Levers"); SFace's flip
mean is renormalised (tests/edge/entrance/test_face_embed_sface.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.entrance.face_pipeline import FacePipeline, load_rgb
from storesense.face_models import DLIB_RESNET

ORL_MISLOCATED = "faces/orl/s2/5.pgm"  # BlazeFace's box puts the landmarks off the face
COLIN = ("faces/lfw-dev/Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg")


@pytest.fixture(scope="module")
def plain() -> FacePipeline:
    return FacePipeline(flip=False, model=DLIB_RESNET)


def _usable(obs: list) -> list:
    return [o for o in obs if o.embedding is not None]


def test_flip_is_the_mean_of_the_chip_and_its_mirror(
    shared_data: Path, plain: FacePipeline
) -> None:
    flipped = FacePipeline(model=DLIB_RESNET)  # flip is on by default (docs/accuracy.md, "Levers")
    assert flipped.embedder.flip
    rgb = load_rgb(shared_data / COLIN[0])
    (obs,) = [o for o in plain.analyse_rgb(rgb) if o.chip is not None]
    a = plain.embedder.embed_chip(obs.chip)
    b = plain.embedder.embed_chip(np.ascontiguousarray(obs.chip[:, ::-1]))
    (f,) = _usable(flipped.process_rgb(rgb))
    np.testing.assert_allclose(f.embedding, (a + b) / 2, atol=1e-6)
    (p,) = _usable(plain.process_rgb(rgb))
    np.testing.assert_allclose(p.embedding, a, atol=1e-6)  # off: one pass
    # the mirror is the same person: the two passes are close, and not identical
    assert 0.0 < float(np.linalg.norm(a - b)) < 0.3


def test_flip_keeps_the_same_person_close(shared_data: Path) -> None:
    flipped = FacePipeline(flip=True, model=DLIB_RESNET)
    one = _usable(flipped.observations_from_image_file(shared_data / COLIN[0]))[0].embedding
    two_path = (shared_data / COLIN[0]).parent / COLIN[1]
    two = _usable(flipped.observations_from_image_file(two_path))[0].embedding
    assert float(np.linalg.norm(one - two)) < 0.5


def test_second_pass_rescues_a_mislocated_face(shared_data: Path, plain: FacePipeline) -> None:
    rgb = load_rgb(shared_data / ORL_MISLOCATED)
    first = plain.process_rgb(rgb)
    assert first and not _usable(first)  # found, but refused by the gate (bad landmarks)
    second = FacePipeline(second_pass=True)
    obs = second.process_rgb(rgb)
    usable = _usable(obs)
    assert len(usable) == 1 and second.second_pass_runs == 1
    assert usable[0].quality.frontalness > 0.7  # the HOG box gives landmarks on the face
    # the rescued face is the ORL subject: closer to s2's own usable image than to s1's
    own = _usable(second.observations_from_image_file(shared_data / "faces/orl/s2/1.pgm"))
    other = _usable(second.observations_from_image_file(shared_data / "faces/orl/s1/1.pgm"))
    e = usable[0].embedding
    assert np.linalg.norm(e - own[0].embedding) < np.linalg.norm(e - other[0].embedding)


def test_second_pass_is_skipped_when_the_first_look_is_usable(
    shared_data: Path,
) -> None:
    pipe = FacePipeline(second_pass=True)
    assert len(_usable(pipe.process_rgb(load_rgb(shared_data / COLIN[0])))) == 1
    assert pipe.second_pass_runs == 0
    # an empty frame does pay for it (why it is off on the door by default)
    assert pipe.process_rgb(np.full((240, 320, 3), 120, np.uint8)) == []
    assert pipe.second_pass_runs == 1


def test_second_pass_honours_the_roi(shared_data: Path) -> None:
    rgb = load_rgb(shared_data / ORL_MISLOCATED)
    h, w = rgb.shape[:2]
    canvas = np.zeros((h, w * 3, 3), np.uint8)
    canvas[:, w : 2 * w] = rgb
    inside = FacePipeline(second_pass=True, roi=(w, 0, 2 * w, h))
    got = _usable(inside.process_rgb(canvas))
    assert len(got) == 1
    x1, _, x2, _ = got[0].face.box
    assert w <= x1 < x2 <= 2 * w  # boxes come back in frame pixels
    outside = FacePipeline(second_pass=True, roi=(0, 0, w - 1, h))
    assert _usable(outside.process_rgb(canvas)) == []
